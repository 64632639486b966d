"""What a training run shows on stderr: a progress bar (in a terminal) or a status line every
LOG_SECONDS (into a file or a pipe), and one-line messages."""

from __future__ import annotations

import math
import sys
import time

from tqdm import tqdm

LOG_SECONDS = 30.0
LN2 = math.log(2)  # nats per bit: a loss in nats / LN2 is in bits


def say(message: str, quiet: bool) -> None:
    if not quiet:
        tqdm.write(message, file=sys.stderr)


def epochs_done(epochs: int) -> str:
    return f"{epochs} epoch{'' if epochs == 1 else 's'} done"


def format_duration(seconds: float) -> str:
    """A time as people say it: "1 h 30 min", "5 min 30 s", "45 s", "0.5 s"."""
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else "",
             f"{secs} s" if secs or not whole else ""]
    return " ".join(p for p in parts if p)


def format_clock(seconds: float) -> str:
    """A countdown: 1:05:09, 4:32."""
    minutes, secs = divmod(max(0, int(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class _Bar(tqdm):
    """tqdm with the rate in words: "3.21 steps/s" when fast, "8.44s/step" when slow."""

    @staticmethod
    def format_meter(*args, **kwargs):
        return tqdm.format_meter(*args, **kwargs).replace("step/s", "steps/s")


def describe_loss(loss: float | None) -> str:
    return "n/a" if loss is None else f"{loss:.4f} nats/char ({loss / LN2:.3f} bits/char)"


class Progress:
    """Steps towards the step or epoch limit, or through the current epoch when there is none;
    the latest training and validation loss and the characters per second beside it.

    A bar only makes sense in a terminal: in a log file every redraw is a new line, and each
    new epoch's bar would start with a line at 0%. There, a plain line is written instead,
    at a loss reading at least LOG_SECONDS after the last one."""

    def __init__(self, steps_per_epoch: int, target: float | None, chars_per_step: int,
                 quiet: bool, step: int, epoch: int, position: int,
                 time_limit: float | None = None):
        self.by_epoch = target in (None, math.inf)
        self.steps_per_epoch, self.target = steps_per_epoch, target
        self.chars_per_step = chars_per_step
        self.logging = not quiet and not sys.stderr.isatty()
        self.time_limit, self.started = time_limit, time.monotonic()
        self.bar = _Bar(total=steps_per_epoch if self.by_epoch else int(target), unit="step",
                        initial=position if self.by_epoch else step,
                        desc=f"epoch {epoch + 1}" if self.by_epoch else None,
                        file=sys.stderr, disable=quiet or self.logging, dynamic_ncols=True,
                        smoothing=0.1, mininterval=0.1)
        self.window_start, self.window_steps = time.monotonic(), 0
        self.at = (step, epoch, position)
        self.last_line = time.monotonic()

    def show(self, step: int, epoch: int, position: int) -> None:
        """Draw the bar afresh at this point (a new epoch, a roll-back)."""
        if self.by_epoch:
            self.bar.set_description_str(f"epoch {epoch + 1}", refresh=False)
        self.bar.reset(total=self.bar.total)
        self.bar.update(position if self.by_epoch else step)

    def advance(self, step: int, epoch: int, position: int) -> None:
        self.window_steps += 1
        self.at = (step, epoch, position)
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
        if self.time_limit is not None:
            parts.append(f"{format_clock(self.time_limit - (now - self.started))} left")
        self.bar.set_postfix_str(" ".join(parts), refresh=False)
        if self.logging and now - self.last_line >= LOG_SECONDS:
            self.last_line = now
            step, epoch, position = self.at
            where = (f"epoch {epoch + 1}, {100 * position / self.steps_per_epoch:.0f}%"
                     if self.by_epoch else f"{100 * step / self.target:.0f}%, epoch {epoch + 1}")
            say(f"step {step} ({where}): {' '.join(parts)}", False)

    def close(self) -> None:
        """Leave the bar on screen where it shows progress; an epoch's bar that had not begun
        (the run stopped at an epoch's end) goes."""
        if self.bar.n == 0:
            self.bar.leave = False
        self.bar.close()
