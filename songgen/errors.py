"""Errors the library raises. Messages are plain sentences: what is wrong, and what to do.

Errors a caller may want to handle on their own are their own types; each keeps `what`, the
problem alone, so that the command line can put its own advice (naming its options) after it.
"""

from __future__ import annotations


class SonggenError(Exception):
    """Base class: anything a user can fix by changing input, options or files."""

    silent = False  # already reported (by another process of a distributed run)

    def __init__(self, message: str, *, what: str | None = None):
        super().__init__(message)
        self.what = what or message


class CorpusError(SonggenError):
    """The training or evaluation text cannot be used."""


class CorpusMissing(CorpusError):
    """A resume was asked for without a text, and the run's recorded text cannot be found."""


class CheckpointError(SonggenError):
    """A checkpoint is missing, or does not fit the request."""


class UnreadableCheckpoint(CheckpointError):
    """A file that cannot be read as a checkpoint: damaged, truncated, or something else."""


class DamagedCheckpoint(UnreadableCheckpoint):
    """A checkpoint whose contents do not match the checksum it was saved with."""


class ExistingRun(CheckpointError):
    """A new run was asked for in a folder that already holds one."""


class DiskFull(SonggenError):
    """A write found no room left on its disk (or in the user's quota there); `what` says which
    disk and what is intact, `resumable` whether the run has a checkpoint to resume from."""

    def __init__(self, message: str, *, what: str | None = None, resumable: bool = True):
        super().__init__(message, what=what)
        self.resumable = resumable


class ConfigError(SonggenError):
    """An option value or combination that cannot work."""


class DeviceError(SonggenError):
    """The requested device or precision is not available here."""


class TrainingInterrupted(SonggenError):
    """Training stopped on a signal; `signum` tells which one, `resumable` whether a checkpoint
    of the run was saved to continue from."""

    def __init__(self, message: str, signum: int, resumable: bool = True):
        super().__init__(message)
        self.signum = signum
        self.resumable = resumable


class SonggenWarning(UserWarning):
    """Something worth telling the user that does not stop the run."""
