"""Stopping a training run on a signal: a first Ctrl-C or SIGTERM finishes the step, saves and
stops; a second stops at once (never in the middle of a checkpoint write)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

from tqdm import tqdm

from ..errors import TrainingInterrupted


class StopSignals:
    """While active, a first SIGINT/SIGTERM only sets `signum`: the loop finishes its step,
    saves, and stops. It is acknowledged on stderr at once, even while the main thread is deep
    in a long PyTorch operation (where Python runs no signal handler): a thread reads the
    signal wake-up file descriptor and says it. A second signal stops at once: the handler
    raises KeyboardInterrupt, and the step in progress is not saved; during a checkpoint write
    (`writing()`) it waits for the write to end, so a save is never torn."""

    HANDLED = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, speak: bool = True):
        self.signum: int | None = None
        self.speak = speak
        self._previous = {}
        self._writing = self._pending = False
        self._wakeup: tuple[int, int, int] | None = None  # read end, write end, previous fd
        self._watcher: threading.Thread | None = None

    @staticmethod
    def acknowledgement(signum: int) -> str:
        if signum == signal.SIGINT:
            return "stopping after this step; Ctrl-C again to stop now without saving this step"
        return (f"{signal.Signals(signum).name} received: stopping after this step; send it "
                "again to stop now without saving this step")

    def _say(self, signum: int) -> None:
        if self.speak:
            try:
                tqdm.write(self.acknowledgement(signum), file=sys.stderr)
            except (OSError, ValueError):  # stderr closed: nothing to tell
                pass

    def _handle(self, signum, frame):
        if self.signum is None:
            self.signum = signum
            if self._watcher is None:
                self._say(signum)
        elif self._writing:
            self._pending = True
        else:
            raise KeyboardInterrupt

    def _watch(self, fd: int) -> None:
        seen = False
        while True:
            try:
                data = os.read(fd, 64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum in self.HANDLED and not seen:
                    seen = True
                    self._say(signum)

    @contextlib.contextmanager
    def writing(self):
        """A checkpoint write: a second signal during it stops the run only once it is done."""
        self._writing = True
        try:
            yield
        finally:
            self._writing = False
        if self._pending:
            self._pending = False
            raise KeyboardInterrupt

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.HANDLED:
                self._previous[sig] = signal.signal(sig, self._handle)
            read, write = os.pipe()
            os.set_blocking(write, False)
            try:
                self._wakeup = (read, write, signal.set_wakeup_fd(write,
                                                                  warn_on_full_buffer=False))
            except (ValueError, OSError):
                os.close(read)
                os.close(write)
            else:
                self._watcher = threading.Thread(target=self._watch, args=(read,), daemon=True,
                                                 name="songgen-signals")
                self._watcher.start()
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self._wakeup is not None:
            read, write, previous = self._wakeup
            signal.set_wakeup_fd(previous)
            os.close(write)  # the watcher reads the end of the pipe and returns
            self._watcher.join(timeout=5)
            os.close(read)
            self._wakeup = self._watcher = None
        return False


def interrupted(signum: int, step: int, saved: Path, main: bool) -> TrainingInterrupted:
    """The error a run stopped by a signal ends with, once `saved` holds its `step`."""
    name = signal.Signals(signum).name
    error = TrainingInterrupted(f"{name} received: training stopped at step {step}, "
                                f"saved {saved}", signum)
    error.silent = not main  # process 0 speaks for a distributed run
    return error


def stopped_at_once(signum: int, step: int, saved_step: int | None, last: Path,
                    main: bool) -> TrainingInterrupted:
    """A second signal stopped the run in the middle of a step (or of an evaluation)."""
    if saved_step == step:
        return interrupted(signum, step, last, main)
    name = signal.Signals(signum).name
    if saved_step is None:
        error = TrainingInterrupted(f"{name} received again: training stopped at once, "
                                    "before any checkpoint was saved", signum, resumable=False)
    else:
        error = TrainingInterrupted(
            f"{name} received again: training stopped at once at step {step}, not "
            f"saved; {last} holds step {saved_step}", signum)
    error.silent = not main
    return error
