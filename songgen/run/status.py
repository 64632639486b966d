"""A run's status: whether a training run is running in a folder now (the lock it holds),
and what its metrics say of how far it got (what the studio's runs list shows).

No PyTorch here: the studio asks this of every run it lists, again and again.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import files
from .curves import LN2, read_metrics
from .finding import METRICS


def running_pid(folder: str | Path) -> int | None:
    """The process id of the `songgen train` running in `folder` now, else None.

    A running train holds an flock on the folder's .lock file and writes `pid N` into it; the
    file stays when the run ends. The lock is never taken here (a train starting at that
    instant would fail): /proc/locks tells whether anyone holds one on that file, and where
    there is no /proc/locks, whether the recorded process is alive.
    """
    lock = Path(folder) / ".lock"
    try:  # a training run writes a regular file: anything else (a pipe, a link) is no lock
        text = files.read_regular(lock).decode("utf-8", "replace").strip()
        st = lock.stat()
    except OSError:
        return None
    pid = int(text[4:]) if text.startswith("pid ") and text[4:].isdigit() else None
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            table = f.read()
    except OSError:
        table = None
    if table is not None:
        for line in table.splitlines():
            parts = line.split()
            # "1: FLOCK  ADVISORY  WRITE 1234 00:2a:56789 0 EOF" (a blocked waiter adds "->")
            if "->" in parts or len(parts) < 6 or parts[1] != "FLOCK":
                continue
            try:  # device major and minor in hex, then the inode
                major, minor, inode = parts[5].split(":")
                where = (int(major, 16), int(minor, 16), int(inode))
            except ValueError:
                continue
            if where == (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino):
                return pid or int(parts[4])
        return None
    if pid is None:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, owned by someone else
        pass
    return pid


def run_summary(folder: str | Path, records: list[dict] | None = None) -> dict:
    """What the metrics say about a run: last step and epoch, best loss, speed, running now."""
    records = read_metrics(Path(folder) / METRICS) if records is None else records
    last = records[-1] if records else {}
    best = min((r["val_loss"] for r in records), default=None)
    pid = running_pid(folder)
    return {"step": last.get("step"), "epoch": last.get("epoch"), "best_val_loss": best,
            "best_val_bpc": None if best is None else best / LN2,
            "chars_per_sec": last.get("chars_per_sec"), "elapsed": last.get("elapsed"),
            "evaluations": len(records), "running": pid is not None, "pid": pid}
