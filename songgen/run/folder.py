"""The run folder: where a training run keeps its checkpoints (last.pt, best.pt, numbered
step-N.pt, rotated), its metrics.jsonl and its corpus cache, under a lock that keeps a second
run out; what a new run may write there, what a resume reads, and which checkpoint of a folder
is used when a folder is named.

A run writes only into a new or its own folder, and deletes or replaces only numbered files
that record its id (made when it starts, kept by every resume). No link is followed there.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import stat
import warnings
from pathlib import Path

from .. import files
from ..errors import (CheckpointError, DiskFull, ExistingRun, SonggenError, SonggenWarning,
                      UnreadableCheckpoint)
from .checkpoint import Checkpoint, load, writer
from .finding import METRICS
from .safeload import read_dict


def find_default(folder: str | Path = "checkpoints") -> Path:
    """best.pt of the folder, else last.pt."""
    return best_then_last(Path(folder))[0]


def best_then_last(folder: Path) -> list[Path]:
    """The checkpoints a folder offers when it is named instead of a file, in the order they
    are tried: best.pt, then last.pt (those that are there); neither is an error."""
    found = [folder / name for name in ("best.pt", "last.pt") if (folder / name).exists()]
    if not found:
        raise CheckpointError(f"no checkpoint in {folder} (no best.pt or last.pt); train a model "
                              "first or give a checkpoint path")
    return found


def numbered(folder: str | Path) -> list[tuple[int, Path]]:
    """Numbered checkpoints (step-000123.pt) in `folder`, oldest first."""
    found = []
    for p in Path(folder).glob("step-*.pt"):
        m = _NUMBERED.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def numbered_path(folder: str | Path, step: int) -> Path:
    return Path(folder) / f"step-{step:09d}.pt"


_NUMBERED = re.compile(r"^step-(\d+)\.pt$")
_MANIFEST = ".run"  # hidden: the id of the run started in the folder, and if it made metrics


def _read_manifest(path: Path) -> dict:
    try:
        found = json.loads(files.read_regular(path))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) and isinstance(found.get("run_id"), str) else {}


def _foreign(run: "RunFolder", manifest: dict) -> list[str]:
    """What a folder holds that a new run must not touch: anything not hidden (a run's
    temporary files and lock are), but the corpus cache and what the run recorded in
    `manifest` left there before its first save (its metrics.jsonl, its numbered files)."""
    found = []
    for p in sorted(run.path.iterdir()):
        if p.name.startswith(".") or (p == run.cache and p.is_dir() and not p.is_symlink()):
            continue
        if manifest and ((p == run.metrics and manifest.get("metrics")) or
                         (_NUMBERED.match(p.name) and run.owns(p))):
            continue
        found.append(p.name)
    return found


class _Owned:
    """Which numbered checkpoints a run wrote: those that record its id, or none where it
    resumed a run written before ids. Read once per version of a file (mapped, not read)."""

    def __init__(self):
        self.run_id: str | None = None
        self.legacy = False
        self.known: dict[Path, tuple] = {}  # path -> (its stat, whether ours)

    def __call__(self, path: Path) -> bool:
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            return False
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        known = self.known.get(path)
        if known is not None and known[0] == key:
            return known[1]
        mine = False
        if stat.S_ISREG(st.st_mode):  # a link, even to one of ours, is not the run's file
            try:
                state = read_dict(path, mmap=True)
                found = state.get("run_id", "?") if isinstance(state, dict) else "?"
                mine = found == self.run_id or (found is None and self.legacy)
            except (SonggenError, OSError):  # unreadable: not known to be ours, so kept
                pass
        self.known[path] = (key, mine)
        return mine

    def wrote(self, path: Path) -> None:
        with contextlib.suppress(OSError):
            st = os.stat(path, follow_symlinks=False)
            self.known[path] = ((st.st_mtime_ns, st.st_size, st.st_ino), True)


class RunFolder:
    """The checkpoint folder of a training run: last.pt, best.pt, numbered step-N.pt,
    metrics.jsonl, the corpus cache (corpus-cache/, unless the run keeps it elsewhere), and a
    lock file that keeps a second run out."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.last = self.path / "last.pt"
        self.best = self.path / "best.pt"
        self.metrics = self.path / METRICS
        self.cache = self.path / "corpus-cache"
        self._metrics_checked = False
        self.owns = _Owned()  # its run id is set by check_fresh or load_for_resume
        self._new_metrics = self._fresh = False  # it made metrics.jsonl; it is a new run
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(f"checkpoint folder {self.path} is a file; give a folder path")

    @contextlib.contextmanager
    def lock(self):
        """Hold an exclusive lock for the run, on every OS. The OS drops it when the process
        dies, so a crashed or killed run never leaves the folder locked."""
        created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if files.is_disk_full(exc):
                raise _write_error(self.path, exc, "the folder could not be made", None) from None
            raise CheckpointError(f"cannot create checkpoint folder {self.path}: "
                                  f"{files.reason(exc)}") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise CheckpointError(f"checkpoint folder {self.path} is not writable; "
                                  "fix its permissions or choose another folder")
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(files.exclusive(self.path / ".lock", wait=False, note=True))
            except files.Busy as busy:
                raise CheckpointError(f"another training run ({busy.owner or 'another process'})"
                                      f" is using {self.path}; wait for it to finish or choose "
                                      "another folder") from None
            except OSError as exc:
                if created:
                    self._remove_if_empty()
                raise _write_error(self.path, exc, "its lock file could not be made",
                                   self._intact()) from None
            try:
                yield
            except BaseException:
                self._forget_unsaved()
                if created:
                    self._remove_if_empty()
                raise

    def _forget_unsaved(self) -> None:
        """A new run that ends before its first last.pt (a full disk, say) takes back what it
        wrote, so that the folder is new again to start the run again in."""
        if not self._fresh or self.last.exists():
            return
        written = [p for p, (_, mine) in self.owns.known.items() if mine]
        for path in written + ([self.metrics] if self._new_metrics else []):
            with contextlib.suppress(OSError):
                path.unlink()

    def _remove_if_empty(self) -> None:
        """A run that failed before saving anything leaves no new folder behind (nor the corpus
        cache it may have written there). Done while the lock is held: no other run is in it."""
        leftovers = [p for p in self.path.iterdir() if p.name not in (".lock", _MANIFEST)]
        if leftovers == [self.cache] and self.cache.is_dir():
            shutil.rmtree(self.cache, ignore_errors=True)
            leftovers = [p for p in leftovers if p.exists()]
        if not leftovers:
            with contextlib.suppress(OSError):  # Windows keeps a held file: the folder stays
                (self.path / _MANIFEST).unlink(missing_ok=True)
                (self.path / ".lock").unlink(missing_ok=True)
                self.path.rmdir()

    def check_fresh(self) -> None:
        """A new run must not overwrite an earlier one's checkpoints."""
        if self.last.exists() or self.best.exists():
            corpus = self.recorded_corpus()
            what = f"{self.path} already holds a training run" + (f" (on {corpus})" if corpus else "")
            raise ExistingRun(f"{what}; resume it, or choose another checkpoint folder", what=what)
        # A run that started here and was stopped before its first last.pt: this one goes on
        # as that run, over what it left (its manifest says what that is).
        manifest = _read_manifest(self.path / _MANIFEST)
        self.owns.run_id = manifest.get("run_id")
        foreign = _foreign(self, manifest)
        if foreign:
            self.owns.run_id = None
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise CheckpointError(f"{self.path} is not empty (it holds {shown}); a new run "
                                  "writes only into a new or empty folder: choose another "
                                  "checkpoint folder")
        self.owns.run_id, self._fresh = self.owns.run_id or secrets.token_hex(8), True
        self._note(bool(manifest.get("metrics")))

    def _note(self, metrics: bool) -> None:
        """Write the manifest: the run's id, and whether it made metrics.jsonl."""
        files.write_atomically(self.path / _MANIFEST, lambda f: f.write(json.dumps(
            {"run_id": self.owns.run_id, "metrics": metrics}).encode()), sync=False)

    def recorded_corpus(self) -> str | None:
        """The corpus path the run in this folder recorded, if a checkpoint can tell."""
        for path in (self.last, self.best):
            try:  # mapped, not read: only one small entry is wanted
                state = read_dict(path, mmap=True)
                return state.get("corpus") if isinstance(state, dict) else None
            except (SonggenError, OSError):  # unreadable: the error is only a little less specific
                continue
        return None

    def load_for_resume(self) -> Checkpoint:
        """last.pt, or else the newest readable older checkpoint (with a warning)."""
        candidates = [self.last] + [p for _, p in reversed(numbered(self.path))] + [self.best]
        candidates = [p for p in candidates if p.exists()]
        if not candidates:
            raise CheckpointError(f"nothing to resume: {self.path} holds no checkpoint "
                                  "(no last.pt); start a new run instead")
        first_error = None
        loaded = []
        for path in candidates:
            try:
                loaded.append((path, load(path)))
            except CheckpointError as exc:
                first_error = first_error or exc
                continue
            if path == self.last:
                return self._adopt(loaded[0][1])
        if not loaded:
            if not isinstance(first_error, UnreadableCheckpoint):  # its own advice holds
                raise first_error
            raise CheckpointError(f"{first_error.what}, and no other checkpoint in {self.path} "
                                  "can be read; start a new run in another folder")
        path, checkpoint = max(loaded, key=lambda item: item[1].step)
        why = f"unusable ({first_error.what})" if first_error else "missing"
        warnings.warn(f"{self.last} is {why}; resuming from {path.name} at step "
                      f"{checkpoint.step}", SonggenWarning)
        return self._adopt(checkpoint)

    def _adopt(self, checkpoint: Checkpoint) -> Checkpoint:
        """Go on as the run that wrote `checkpoint`."""
        self.owns.run_id = checkpoint.run_id or secrets.token_hex(8)
        self.owns.legacy = checkpoint.run_id is None
        return checkpoint

    def save(self, checkpoint: Checkpoint, best: bool, keep: int) -> None:
        """Write step-N.pt (rotated to `keep`), best.pt if it is, and last.pt, in that order:
        last.pt, renamed into place last, is what a resume reads, so a crash or a full disk on
        the way leaves the run where its previous last.pt says, and the resume writes the
        copies again. Each file is written whole under a temporary name, then renamed."""
        if self.owns.run_id is None:
            self.owns.run_id = secrets.token_hex(8)
        checkpoint.run_id = self.owns.run_id
        staged = None
        try:
            staged = files.stage(self.last, writer(checkpoint))
            copies = [numbered_path(self.path, checkpoint.step)] if keep > 0 else []
            # Never over another run's file of the same name (a folder's own last.pt and
            # best.pt are the run's).
            copies = [p for p in copies if not os.path.lexists(p) or self.owns(p)]
            for target in copies + ([self.best] if best else []):
                files.commit([(_copy(staged, target), target)])
                self.owns.wrote(target)
            files.commit([(staged, self.last)])
        except OSError as exc:
            if staged is not None:
                staged.unlink(missing_ok=True)
            raise _write_error(self.path, exc, f"step {checkpoint.step} could not be saved",
                               self._intact()) from None
        old = [p for _, p in numbered(self.path) if self.owns(p)]
        for p in old[: max(0, len(old) - keep)]:
            p.unlink(missing_ok=True)

    def _intact(self) -> str | None:
        """What a failed write left: the run's latest saved checkpoint, as it was (None: the
        run has none yet)."""
        try:  # mapped, not read: only the step is wanted
            step = read_dict(self.last, mmap=True).get("step")
        except (SonggenError, OSError, AttributeError):
            return None
        return f"last.pt (step {step}) is intact"

    def append_metrics(self, line: str) -> None:
        """Add an evaluation's record (a JSON line with its "step") to metrics.jsonl. Before
        the first one a run writes, records of that step or later are dropped: they are from a
        save that did not complete (the process was killed, or the disk was full, between the
        record and its checkpoint), which this run now makes again."""
        try:
            if not self._metrics_checked:
                self._new_metrics = not os.path.lexists(self.metrics)
                if self._new_metrics:
                    self._note(True)  # before it exists: a kill after leaves it known
                _forget_records_from(self.metrics, json.loads(line)["step"])
                self._metrics_checked = True
            files.append_line(self.metrics, line)
        except OSError as exc:
            raise _write_error(self.path, exc, f"{self.metrics.name} could not be written",
                               self._intact()) from None


def _write_error(folder: Path, exc: OSError, failed: str, kept: str | None) -> SonggenError:
    """The error for a write in a run's `folder` that failed: a full disk says so, and where."""
    then = "resume the run" if kept else "start the run again"
    kept = kept or "no checkpoint of this run is saved yet"
    if files.is_disk_full(exc):
        what = f"the disk holding {folder} is full: {failed}, {kept}"
        return DiskFull(f"{what}; free some space, then {then}", what=what,
                        resumable=kept != "no checkpoint of this run is saved yet")
    what = f"{failed} in {folder}: {files.reason(exc)}, {kept}"
    return SonggenError(f"{what}; fix the folder, then {then}", what=what)


def _forget_records_from(metrics: Path, step: int) -> None:
    """Drop the records of `step` and later from metrics.jsonl (and a torn last line)."""
    try:
        text = files.read_regular(metrics)
    except FileNotFoundError:
        return
    lines = text.split(b"\n")
    complete, torn = lines[:-1], lines[-1]  # a last line without its newline is torn
    kept = [line for line in complete if not _record_from(line, step)]
    if len(kept) != len(complete) or torn:
        files.write_atomically(metrics, lambda f: f.write(b"".join(
            line + b"\n" for line in kept)))


def _record_from(line: bytes, step: int) -> bool:
    """Whether a metrics line is the record of `step` or a later one."""
    try:
        record = json.loads(line)
    except ValueError:
        return False  # not ours to judge: kept as it is
    return isinstance(record, dict) and isinstance(record.get("step"), int) and \
        record["step"] >= step


def _copy(src: Path, dst: Path) -> Path:
    """Stage an independent copy of `src` for `dst` (never a hard link: damage to one file on
    disk must not reach the others)."""
    with open(src, "rb") as source:
        return files.stage(dst, lambda f: shutil.copyfileobj(source, f), suffix=".copy")
