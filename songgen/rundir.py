"""The checkpoint folder of a training run: lock, resume candidates, saving, rotation, metrics."""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .atomicfile import write_atomically
from .errors import CheckpointError, SonggenError, SonggenWarning

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a second run is not detected there
    fcntl = None


class CheckpointFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.last = self.path / "last.pt"
        self.best = self.path / "best.pt"
        self.metrics = self.path / "metrics.jsonl"
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(f"checkpoint folder {self.path} is a file; give a folder path")

    @contextlib.contextmanager
    def lock(self):
        """Hold an exclusive lock for the run. The OS drops it when the process dies, so a
        crashed or killed run never leaves the folder locked."""
        created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(f"cannot create checkpoint folder {self.path}: "
                                  f"{exc.strerror or exc}") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise CheckpointError(f"checkpoint folder {self.path} is not writable; "
                                  "fix its permissions or choose another folder")
        try:
            with self._locked():
                yield
        except BaseException:
            if created:
                self._remove_if_empty()
            raise

    def _remove_if_empty(self) -> None:
        """A run that failed before saving anything leaves no new folder behind."""
        leftovers = [p for p in self.path.iterdir() if p.name != ".lock"]
        if not leftovers:
            (self.path / ".lock").unlink(missing_ok=True)
            self.path.rmdir()

    @contextlib.contextmanager
    def _locked(self):
        if fcntl is None:
            yield
            return
        handle = open(self.path / ".lock", "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                owner = handle.read().strip() or "another process"
                raise CheckpointError(f"another training run ({owner}) is using {self.path}; "
                                      "wait for it to finish or choose another folder") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            yield
        finally:
            handle.close()

    def check_fresh(self) -> None:
        """A new run must not overwrite an earlier one's checkpoints."""
        if self.last.exists() or self.best.exists():
            corpus = self._recorded_corpus()
            what = f"{self.path} already holds a training run" + (f" (on {corpus})" if corpus else "")
            raise CheckpointError(f"{what}; resume it, or choose another checkpoint folder",
                                  what=what, hint="existing-run")

    def _recorded_corpus(self) -> str | None:
        """The corpus path the run in this folder recorded, if a checkpoint can tell."""
        for path in (self.last, self.best):
            try:  # mapped, not read: only one small entry is wanted
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
                return state.get("corpus") if isinstance(state, dict) else None
            except Exception:  # unreadable: the error is only a little less specific
                continue
        return None

    def load_for_resume(self) -> dict:
        """last.pt, or else the newest readable older checkpoint (with a warning)."""
        candidates = [self.last] + [p for _, p in reversed(ckpt.numbered(self.path))] + [self.best]
        candidates = [p for p in candidates if p.exists()]
        if not candidates:
            raise CheckpointError(f"nothing to resume: {self.path} holds no checkpoint "
                                  "(no last.pt); start a new run instead")
        first_error = None
        loaded = []
        for path in candidates:
            try:
                loaded.append((path, ckpt.load(path)))
            except CheckpointError as exc:
                first_error = first_error or exc
                continue
            if path == self.last:
                return loaded[0][1]
        if not loaded:
            if first_error.hint != "unreadable":  # e.g. a newer format: its own advice holds
                raise first_error
            raise CheckpointError(f"{first_error.what}, and no other checkpoint in {self.path} "
                                  "can be read; start a new run in another folder")
        path, state = max(loaded, key=lambda item: item[1]["step"])
        why = f"unusable ({first_error.what})" if first_error else "missing"
        warnings.warn(f"{self.last} is {why}; resuming from {path.name} at step {state['step']}",
                      SonggenWarning)
        return state

    def save(self, state: dict, step: int, best: bool, keep: int) -> None:
        """Write last.pt; copy it to step-N.pt (rotated to `keep`) and to best.pt if it is."""
        try:
            ckpt.save(state, self.last)
            if keep > 0:
                _copy(self.last, ckpt.numbered_path(self.path, step))
                ckpt.rotate(self.path, keep)
            if best:
                _copy(self.last, self.best)
        except OSError as exc:
            raise SonggenError(f"could not write a checkpoint in {self.path}: "
                               f"{exc.strerror or exc}; the previous checkpoint is intact. "
                               "Free space or fix the folder, then resume") from None

    def append_metrics(self, line: str) -> None:
        try:
            with open(self.metrics, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as exc:
            raise SonggenError(f"could not write {self.metrics}: {exc.strerror or exc}; "
                               "free space or fix the folder, then resume") from None


def _copy(src: Path, dst: Path) -> None:
    """Make `dst` an independent copy of `src`, atomically (temporary file, fsync, rename).
    Not a hard link: damage to one file on disk must not reach the others."""
    with open(src, "rb") as source:
        write_atomically(dst, lambda f: shutil.copyfileobj(source, f), suffix=".copy")
