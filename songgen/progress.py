"""What a training run shows on stderr: a progress bar, and one-line messages above it."""

from __future__ import annotations

import math
import sys
import time

from tqdm import tqdm

from .evaluation import LN2


def say(message: str, quiet: bool) -> None:
    if not quiet:
        tqdm.write(message, file=sys.stderr)


def epochs_done(epochs: int) -> str:
    return f"{epochs} epoch{'' if epochs == 1 else 's'} done"


def describe_loss(loss: float | None) -> str:
    return "n/a" if loss is None else f"{loss:.4f} nats/char ({loss / LN2:.3f} bits/char)"


class Progress:
    """Steps towards the step or epoch limit, or through the current epoch when there is none;
    the latest training and validation loss and the characters per second beside it."""

    def __init__(self, steps_per_epoch: int, target: float | None, chars_per_step: int,
                 quiet: bool, step: int, epoch: int, position: int):
        self.by_epoch = target in (None, math.inf)
        self.chars_per_step = chars_per_step
        # Into a log file rather than a terminal, redraw every 30 s, not 10 times a second.
        self.bar = tqdm(total=steps_per_epoch if self.by_epoch else int(target), unit=" steps",
                        initial=position if self.by_epoch else step,
                        desc=f"epoch {epoch + 1}" if self.by_epoch else None,
                        file=sys.stderr, disable=quiet, dynamic_ncols=True, smoothing=0.1,
                        mininterval=0.1 if sys.stderr.isatty() else 30)
        self.window_start, self.window_steps = time.monotonic(), 0

    def show(self, step: int, epoch: int, position: int) -> None:
        """Draw the bar afresh at this point (a new epoch, a roll-back)."""
        if self.by_epoch:
            self.bar.set_description_str(f"epoch {epoch + 1}", refresh=False)
        self.bar.reset(total=self.bar.total)
        self.bar.update(position if self.by_epoch else step)

    def advance(self, step: int, epoch: int, position: int) -> None:
        self.window_steps += 1
        if self.by_epoch and position == 0:
            self.show(step, epoch, position)
        else:
            self.bar.update(1)

    def report(self, train: float | None, val: float | None) -> None:
        """Put the losses and the speed since the last report beside the bar. Called when the
        loss is read, not every step: formatting costs time in the hot loop."""
        now = time.monotonic()
        speed = self.window_steps * self.chars_per_step / max(now - self.window_start, 1e-9)
        self.window_start, self.window_steps = now, 0
        parts = [f"loss={train:.3f}" if train is not None else "loss=?",
                 f"val={val:.3f}" if val is not None else "val=-", f"{speed:,.0f} chars/s"]
        self.bar.set_postfix_str(" ".join(parts), refresh=False)

    def close(self) -> None:
        self.bar.close()
