"""Defaults that adapt: what a run chooses for the options it was not given, and why.

Four kinds of choice, all pure functions of what the run is given (and, for the size, of a
measured step time), so they can be tested without training:

- the model size (hidden units a layer), when a budget is set (`--time-limit`, `--steps`,
  `--epochs`): the largest size the budget can train, that is, whose parameters each see at
  least SEEN_PER_PARAMETER characters of training within it. A time limit is turned into
  characters by timing a training step of each size on the run's device, so a fast machine gets
  a bigger model than a slow one for the same minutes. Without a budget a run trains until
  its validation loss stops improving, and keeps the default size.
- the learning rate from the size: BASE_LR, lower for models above the default size
  (LR_POWER).
- regularisation (dropout, weight decay) from the corpus size: characters of training text
  per model parameter. Few characters a parameter means the model can learn the text by heart
  (it overfits within minutes), so it needs more dropout and weight decay; many mean it
  underfits and regularisation only slows it down. A budget that reads the text only a few
  times lowers dropout further (_BUDGET_CAPS).
- the learning-rate schedule a run follows (`choose_schedule`): with a time limit, one that
  also falls over the budget's end; the schedule itself, a function of the step, is
  songgen.training.schedule.

Every choice comes with its reason, which the training header prints and the checkpoint keeps.
"""

from __future__ import annotations

from dataclasses import dataclass

from .schedule import DECAY, FLOOR, LOWEST, PLATEAU, SCHEDULES

SIZES = (128, 256, 512, 1024)  # hidden units a layer a budget may choose from
DEFAULT_SIZE = 256             # without a budget (and the size a choice falls back to)
SEEN_PER_PARAMETER = 1.5       # characters of training each parameter needs within the budget
BASE_LR = 6e-3                 # the learning rate up to DEFAULT_SIZE units; less above...
LR_POWER = 1.5                 # ...as (DEFAULT_SIZE / size) ** LR_POWER: 0.0021 at 512, 0.00075 at 1024

# (passes over the training text a budget allows, below which dropout is at most this): a run
# that reads its text only a few times cannot learn it by heart, so dropout would only slow it.
_BUDGET_CAPS = ((4, 0.1), (15, 0.2), (40, 0.3))

# (characters a parameter below which the tier applies, name, dropout, weight decay)
_TIERS = (
    (0.15, "very small corpus", 0.4, 0.05),
    (0.5, "small corpus", 0.3, 0.05),
    (2.0, "medium corpus", 0.2, 0.02),
    (20.0, "large corpus", 0.1, 0.01),
    (float("inf"), "very large corpus", 0.0, 0.01),
)


@dataclass(frozen=True)
class Choice:
    """An option's value and why it has it: "auto" reasons say what they follow from."""

    name: str
    value: object
    reason: str

    def line(self) -> str:
        return f"{self.name} {self.value}: {self.reason}"

    def to_dict(self) -> dict:
        return {"value": self.value, "reason": self.reason}


def _millions(n: float) -> str:
    if n >= 1e7:
        return f"{n / 1e6:.0f} M"
    if n >= 1e5:
        return f"{n / 1e6:.2g} M"
    return f"{n / 1e3:.3g} k" if n >= 1e3 else f"{n:.0f}"


def corpus_tier(train_chars: int, parameters: int) -> tuple[str, float, float, str]:
    """(tier name, dropout, weight decay, the sizes in words) for a corpus of `train_chars`
    training characters and a model of `parameters` parameters."""
    per = train_chars / max(parameters, 1)
    for below, name, dropout, decay in _TIERS:
        if per < below:
            sizes = (f"{_millions(train_chars)} characters for {_millions(parameters)} "
                     f"parameters ({per:.2g} a parameter)")
            return name, dropout, decay, sizes
    raise AssertionError("the last tier has no upper bound")


def choose_dropout(train_chars: int, parameters: int, passes: float | None = None) -> Choice:
    """Dropout for the corpus size, lowered when the run's budget reads the text only
    `passes` times (None: no budget, the run goes on until it stops improving)."""
    name, dropout, _, sizes = corpus_tier(train_chars, parameters)
    reason = f"{name}, {sizes}"
    if passes is not None:
        cap = next((cap for below, cap in _BUDGET_CAPS if passes < below), None)
        if cap is not None and cap < dropout:
            dropout = cap
            reason += f"; but the budget reads the text only about {passes:.2g} times"
    return Choice("dropout", dropout, reason)


def choose_weight_decay(train_chars: int, parameters: int) -> Choice:
    name, _, decay, sizes = corpus_tier(train_chars, parameters)
    return Choice("weight decay", decay, f"{name}, {sizes}")


def choose_size(parameters: dict[int, int], *, chars_per_step: int,
                steps: int | None = None, seconds: float | None = None,
                step_seconds=None) -> Choice:
    """The hidden size for a budget of `steps` training steps and/or `seconds` of training at
    `step_seconds(size)` seconds a step (timed from the smallest size up, only while needed).
    `parameters` maps each candidate size to the model's parameter count."""
    name = "hidden size"
    if steps is None and seconds is None:
        return Choice(name, DEFAULT_SIZE, "no time or step limit: the default size")
    timed: dict[int, float] = {}

    def trained(size: int) -> float:
        """Characters of training each parameter gets within the budget at this size."""
        if seconds is not None:
            timed[size] = step_seconds(size)
        return budget_characters(chars_per_step, steps=steps, seconds=seconds,
                                 step_seconds=timed.get(size)) / parameters[size]

    sizes = sorted(parameters)
    chosen, seen = sizes[0], trained(sizes[0])
    for size in sizes[1:]:
        more = trained(size)
        if more < SEEN_PER_PARAMETER:
            break
        chosen, seen = size, more
    budget = [f"{steps:,} steps"] if steps is not None else []
    if seconds is not None:
        budget.append(f"{_duration(seconds)} at {timed[chosen] * 1000:.0f} ms a step")
    return Choice(name, chosen, f"{' or '.join(budget)} train about "
                                f"{_millions(seen * parameters[chosen])} characters, {seen:.2g} "
                                f"for each of its {_millions(parameters[chosen])} parameters "
                                f"(at least {SEEN_PER_PARAMETER:g} wanted)")


def choose_lr(hidden_size: int) -> Choice:
    """The base learning rate: BASE_LR up to DEFAULT_SIZE units a layer, and for larger models
    less, as the ratio of sizes to the power LR_POWER (2x1024 at 3e-3 failed to learn on a GPU,
    1e-3 learnt well; 2x512 learnt at 2e-3)."""
    if hidden_size <= DEFAULT_SIZE:
        return Choice("learning rate", BASE_LR, f"for a model of {hidden_size} units a layer")
    lr = float(f"{BASE_LR * (DEFAULT_SIZE / hidden_size) ** LR_POWER:.2g}")
    return Choice("learning rate", lr, f"{BASE_LR:g} for 256 units, lower for {hidden_size}: "
                                       "a larger model needs smaller steps")


def budget_characters(chars_per_step: int, *, steps: int | None, seconds: float | None,
                      step_seconds: float | None) -> float | None:
    """Characters of training a budget of `steps` and/or `seconds` (at `step_seconds` a step)
    allows; None without a budget."""
    counts = [steps] if steps is not None else []
    if seconds is not None:
        counts.append(seconds / max(step_seconds, 1e-9))
    return min(counts) * chars_per_step if counts else None


def _duration(seconds: float) -> str:
    from .progress import format_duration

    return format_duration(seconds)


def choose_schedule(requested: str, *, time_limit: float | None, steps: int | None,
                    patience: int) -> Choice:
    """The schedule a run follows in this invocation. `auto` is `budget` when a time limit is
    set, else `plateau`. Step and epoch limits count from the run's start and are often raised
    on resume, so `auto` does not bend the schedule to them (a run stopped at step k and
    resumed to N stays the run of N steps straight); `budget` asked for by name does. `steps`:
    the run's step limit (from --steps or --epochs), or None."""
    if requested not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {requested!r}")
    name = "learning-rate schedule"
    stop = ("never stopping early" if not patience else
            f"stopping after {patience} evaluations without improvement")
    if requested == "none":
        return Choice(name, "none", f"as asked: a fixed learning rate, {stop}")
    halving = (f"halved after {PLATEAU} evaluations without improvement, down to "
               f"1/{round(1 / LOWEST)}")
    if patience:
        stop += " at the lowest"
    budgets = []
    if time_limit is not None and requested != "plateau":
        budgets.append(f"the {_duration(time_limit)} time limit")
    if steps is not None and requested == "budget":
        budgets.append(f"the {steps:,}-step limit")
    if budgets:
        why = "as asked" if requested == "budget" else f"a time limit of {_duration(time_limit)}"
        return Choice(name, "budget", f"{why}: constant, then down to {FLOOR:.0%} over the last "
                                      f"{DECAY:.0%} of {' or '.join(budgets)}; {halving}; {stop}")
    why = {"auto": "no time limit", "plateau": "as asked",
           "budget": "as asked, but with no time or step limit to end with"}[requested]
    if requested == "auto" and steps is not None:
        why = (f"no time limit (auto falls only over a time limit, not over the {steps:,}-step "
               "limit, which a resume often raises; the budget schedule falls over steps too)")
    return Choice(name, "plateau", f"{why}: {halving}; {stop}")
