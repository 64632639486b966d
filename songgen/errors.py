"""Errors the library raises. Messages are plain sentences: what is wrong, and what to do."""

from __future__ import annotations


class SonggenError(Exception):
    """Base class: anything a user can fix by changing input, options or files.

    Some errors also carry `what` (the problem alone) and a `hint` key, so that the command
    line can give its own advice, naming its options, in place of the library's.
    """

    silent = False  # already reported (by another process of a distributed run)

    def __init__(self, message: str, *, what: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.what, self.hint = what or message, hint


class CorpusError(SonggenError):
    """The training or evaluation text cannot be used."""


class CheckpointError(SonggenError):
    """A checkpoint is missing, unreadable, or does not fit the request."""


class ConfigError(SonggenError):
    """An option value or combination that cannot work."""


class DeviceError(SonggenError):
    """The requested device or precision is not available here."""


class TrainingInterrupted(SonggenError):
    """Training stopped on a signal after saving; `signum` tells which one."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class SonggenWarning(UserWarning):
    """Something worth telling the user that does not stop the run."""
