"""The learning-rate schedule: what multiplies a run's base learning rate at each step.

The rate is halved after PLATEAU evaluations without a better validation loss, down to LOWEST of
the base rate, and early stopping counts its patience only at that lowest rate (`plateau`).
With a budget (`budget`) it also falls, over the last DECAY share of the budget, to FLOOR of the
rate: a run ends at a low learning rate, where the loss is lowest, instead of being cut off at a
high one. `none` keeps the rate fixed. Which schedule a run follows, and why, is a choice made
by songgen.training.defaults (`choose_schedule`); its state (`LrSchedule`) travels in every
checkpoint, so that a resume goes on exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

PLATEAU = 2       # evaluations without improvement before the learning rate is halved
LOWEST = 1 / 8    # of the base learning rate: three halvings at most
DECAY = 0.3       # with a budget: the learning rate falls over its last 30%...
FLOOR = 0.05      # ...down to 5% of the rate

SCHEDULES = ("auto", "plateau", "budget", "none")


def budget_factor(progress: float) -> float:
    """The share of the learning rate at `progress` (0 to 1) through a budget: 1 until the
    last DECAY of it, then falling in a straight line to FLOOR at its end."""
    start = 1 - DECAY
    if progress <= start:
        return 1.0
    through = min(1.0, (progress - start) / DECAY)
    return 1.0 - (1.0 - FLOOR) * through


@dataclass
class LrSchedule:
    """The learning-rate schedule's state, saved in every checkpoint so that a resume goes on
    exactly: the multiplier of the base learning rate, the evaluations since the last better
    one (or since the last halving) and the best validation loss seen at a scheduled
    evaluation (an evaluation made only because a run stopped between two does not count, so
    a run stopped and resumed sees the evaluations an uninterrupted one does)."""

    kind: str = "plateau"     # plateau, budget or none (budget adds the decay, `budget_factor`)
    scale: float = 1.0
    bad: int = 0
    best: float | None = None

    def evaluated(self, val: float) -> str | None:
        """Count one scheduled evaluation. Returns "better", "halved" or None."""
        if self.best is None or val < self.best:
            self.best, self.bad = val, 0
            return "better"
        self.bad += 1
        if self.kind != "none" and self.bad >= PLATEAU and self.scale > LOWEST:
            self.scale, self.bad = max(LOWEST, self.scale / 2), 0
            return "halved"
        return None

    def exhausted(self, patience: int) -> bool:
        """Early stopping: `patience` evaluations without improvement, at the lowest rate."""
        return bool(patience) and self.bad >= patience and (
            self.kind == "none" or self.scale <= LOWEST)

    def factor(self, progress: float | None) -> float:
        """The multiplier of the base learning rate now (`progress` through the budget)."""
        decay = budget_factor(progress) if self.kind == "budget" and progress is not None else 1
        return self.scale * decay

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None, kind: str, *, bad: int = 0,
                  best: float | None = None) -> "LrSchedule":
        """The saved state (its kind replaced: each invocation chooses its own); a checkpoint
        from before schedules were saved starts from its early-stopping count."""
        data = data or {}
        number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
        scale, bad, best = data.get("scale", 1.0), data.get("bad", bad), data.get("best", best)
        return cls(kind=kind, scale=float(scale) if number(scale) and 0 < scale <= 1 else 1.0,
                   bad=int(bad) if number(bad) and bad >= 0 else 0,
                   best=float(best) if number(best) else None)
