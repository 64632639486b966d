"""Turning Ctrl-C and SIGTERM into a flag the training loop checks between steps."""

from __future__ import annotations

import signal
import threading


class StopSignals:
    """While active, SIGINT/SIGTERM only set `signum`; the loop finishes its step, saves, and
    stops. A second signal during the save changes nothing, so the save is never torn."""

    HANDLED = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is None:
            self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.HANDLED:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False
