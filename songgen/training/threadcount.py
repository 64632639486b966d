"""How many CPU threads a training run uses, and whether that count may change.

Whether a training step gives the same bits at every thread count depends on the CPU, its
kernels and the run's shapes: MKL's matrix products in their reproducible mode (set in
songgen.model.devices) do, but oneDNN's LSTM at AVX2 (AMD CPUs before Zen 4; any CPU capped with
ONEDNN_MAX_CPU_ISA=AVX2) and MKL outside that mode split some sums by thread count, for some
shapes only (a 32-unit LSTM, not a 256-unit one). So a run checks its own step rather than
assuming (`step_changes_with_threads`: its model and batch shape, one step at each thread
count it could use, the bits compared), and then

- where no bit changes, follows the free cores while training (devices.ThreadTuner), which
  keeps most of its speed beside another busy program;
- where some bit changes, keeps one count for the whole run: recorded in the checkpoint's
  choices (`"kept": true`), so every resume computes with it, busy machine or not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch

from .plan import Plan
from .state import TrainState
from .team import Team


@dataclass
class Threads:
    """A run's thread count on the CPU: how many, whether the tuner may change it, what the
    checkpoint records, and the header's line about it."""

    count: int
    tune: bool
    record: dict
    line: str


def _threads(n: int) -> str:
    return f"{n} thread{'' if n == 1 else 's'}"


def decide_threads(asked: int | None, recorded: dict | None, step: int, most: int, free: int,
                   differ: Callable[[list[int]], tuple[int, int] | None]) -> Threads:
    """The thread count of a run (new, or resumed at `step` with the choice `recorded` at its
    start), with `most` cores and `free` of them free now. `differ(counts)` runs the probe: the
    first two of those counts whose steps give other bits, or None; it runs only where the
    count is not asked for and not already kept."""
    kept = recorded if recorded and recorded.get("kept") else None
    if asked is not None:
        if kept and kept["value"] != asked:
            return Threads(asked, False, {
                "value": asked, "reason": f"as asked on resuming at step {step:,} (was "
                                          f"{kept['value']})", "kept": True}, (
                f"threads changed on resume: {kept['value']} -> {asked}, as asked; on this CPU "
                "the thread count changes the numbers, so the run computes differently from "
                "here on"))
        return Threads(asked, False, kept or {"value": asked, "reason": "as asked"},
                       f"threads: {asked}, as asked")
    if kept:
        count = kept["value"]
        busy = ""
        if free < count:
            busy = (f"; other programs keep {most - free} of {most} cores busy now, so steps "
                    f"may be much slower (--threads {free} is faster but computes differently "
                    "from here on)")
        return Threads(count, False, kept, f"threads: {count}, {kept['reason']}{busy}")
    if most == 1:
        return Threads(1, False, {"value": 1, "reason": "the one core this process may use"},
                       "threads: 1 (the one core this process may use)")
    # A count asked for earlier in the run is the one to keep, should the count matter.
    earlier = recorded.get("value") if recorded else None
    count = earlier if isinstance(earlier, int) else free
    pair = differ(sorted({1, free, most, count}))
    if pair is None:
        return Threads(free, True, {
            "value": "tuned", "reason": "the cores free, changed while training: on this CPU "
                                        f"the run's step computes the same bits at 1 to {most} "
                                        "threads"},
            f"threads: {free} ({free} of {most} cores free; fewer if another process takes one "
            "while training)")
    reason = (f"kept for the whole run: on this CPU its step computes other bits at "
              f"{_threads(pair[0])} than at {pair[1]}")
    return Threads(count, False, {"value": count, "reason": reason, "kept": True},
                   f"threads: {count} ({free} of {most} cores free), {reason}")


class _FixedBatch:
    """The batch source a probe step reads: one random batch, whatever the position."""

    def __init__(self, vocab_size: int, rows: int, seq_len: int):
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randint(0, vocab_size, (rows, seq_len), generator=gen)
        self.y = torch.randint(0, vocab_size, (rows, seq_len), generator=gen)

    def batch(self, position: int, device: torch.device):
        return self.x, self.y

    def style_batch(self, position: int, device: torch.device):
        return None


def step_changes_with_threads(plan: Plan, counts: list[int],
                              step: Callable) -> tuple[int, int] | None:
    """Whether the run's training step (`step`, songgen.training.loop.train_step: forward,
    backward, clipping, AdamW) of its model, on a random batch of this process's shape (its
    rows x seq_len) from the same new weights, gives other bits at any of `counts` threads than
    at the first: the first such pair of counts, or None. Costs one step a count; the random
    state and the thread count are left as they were."""
    before = torch.get_num_threads()
    rows = plan.row_count
    # The run's plan for one process alone, of this process's rows, starting from new weights.
    probe = replace(plan, config=replace(plan.config, batch_size=rows), team=Team(),
                    rows=slice(0, rows), device=torch.device("cpu"), steps_an_epoch=2,
                    schedule="none", budget_steps=None, base=None, base_path=None,
                    init_from=None, choices={})
    batch = _FixedBatch(plan.model_config.vocab_size, rows, plan.config.seq_len)
    first = None
    try:
        with torch.random.fork_rng(devices=[]):
            for count in counts:
                torch.set_num_threads(count)
                state = TrainState(probe).start()
                loss = step(state, batch, state.model)
                bits = [loss, *state.stream] + [t for p in state.model.parameters()
                                                for t in (p.grad, p.detach()) if t is not None]
                if first is None:
                    first = bits
                elif any(not torch.equal(a, b) for a, b in zip(first, bits)):
                    return counts[0], count
    finally:
        torch.set_num_threads(before)
    return None
