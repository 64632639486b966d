"""What a model of a given shape costs, found before a run is set up: its parameters, the
memory a training process needs for it, and the probes that time it on this machine (seconds a
training step, and how much faster bf16 autocast runs on the CPU). The run's plan chooses a
model size, a precision and a time-limited size from these (songgen.training.plan).

The timings answer alike on the same idle machine, and say when another busy program looks
to have disturbed them.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, replace

import torch

from ..config import ModelConfig
from .lstm import CharLSTM, weight_shapes


def parameter_count(config: ModelConfig) -> int:
    """The weights a CharLSTM(config) holds."""
    return sum(math.prod(shape) for shape in weight_shapes(config).values())


def training_bytes(config: ModelConfig, rows: int, seq_len: int) -> int:
    """A rough estimate of the memory one training process needs for the model: fp32 weights,
    gradients and AdamW's two moments (16 bytes a parameter), a low-precision weight copy (2),
    and what backpropagation keeps (about 12 values per unit, layer and character, and three
    copies of the logits). It is checked against measured peaks in benchmarks/RESULTS.md; the
    check it serves only has to catch models that are far too big, before they are built."""
    per_char = 4 * (12 * config.hidden_size * config.layers + 3 * config.vocab_size)
    return 18 * parameter_count(config) + rows * seq_len * per_char


def _forward_backward(model: CharLSTM, x: torch.Tensor, bf16: bool = False) -> None:
    """What the timing probes time: one training step's forward and backward (on the CPU, under
    bf16 autocast if asked), its gradients then dropped."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits, _ = model(x)
    logits.float().logsumexp(-1).mean().backward()
    model.zero_grad(set_to_none=True)


@dataclass(frozen=True)
class Probe:
    """A timing probe's answer: `value` (seconds a step, or a speed ratio) from the fastest
    timings, and, where the timings look disturbed by another busy program, why (else None)."""

    value: float
    disturbed: str | None = None


SPREAD = 1.25   # timings whose median is this much above their fastest were disturbed


def _disturbance(spreads: list[float], free: int | None, cores: int) -> str | None:
    """Why timings with these spreads (median over fastest, per kind timed), taken while
    `free` of `cores` cores were free, look disturbed; None where they do not."""
    if free is not None and free < cores:
        return f"timed while other programs kept {cores - free} of {cores} cores busy"
    worst = max(spreads, default=1.0)
    if worst > SPREAD:
        return f"timed while the machine was busy: its timings varied by {worst:.1f}x"
    return None


def _spread(times: list[float]) -> float:
    import statistics

    return statistics.median(times) / max(min(times), 1e-12)


def _free_cores(check: bool) -> tuple[int | None, int]:
    from .devices import cpu_cores, free_cores

    cores = cpu_cores()
    return (free_cores(0.05) if check and cores > 1 else None), cores


@contextlib.contextmanager
def _threads_at_most(free: int | None):
    """Time on the cores free, as the run will train (its thread tuner starts there): threads
    that spin-wait for a core another program holds would time a collapse, not the model."""
    before = torch.get_num_threads()
    if free is not None and free < before:
        torch.set_num_threads(free)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def bf16_speedup(config: ModelConfig, rows: int = 16, seq_len: int = 64, rounds: int = 5,
                 budget: float = 0.8, check_cores: bool = True) -> Probe:
    """How many times as fast a training step (forward and backward) of a model of this shape
    runs on the CPU under bf16 autocast as in float32: the fastest of each, from `rounds`
    interleaved pairs after a warm-up (more while the answer is within 5% of BF16_GAIN or the
    timings spread; fewer, but two, where they take over `budget` seconds), so that the same
    model on the same idle machine gets the same answer every time. 0 where bf16 does not run
    at all (oneDNN refuses a bf16 LSTM on a CPU without bf16 instructions). Timed on the
    cores free; the answer says if it looks disturbed (another busy program: its timings
    spread, or cores not free). The global random state is left as it was."""
    import time

    from .devices import BF16_GAIN

    free, cores = _free_cores(check_cores)
    with torch.random.fork_rng(devices=[]), _threads_at_most(free):
        model = CharLSTM(config)
        x = torch.randint(0, config.vocab_size, (rows, seq_len))

        def step(bf16: bool) -> float:
            began = time.perf_counter()
            _forward_backward(model, x, bf16)
            return time.perf_counter() - began

        step(False)
        try:
            step(True)
        except RuntimeError:
            return Probe(0.0)
        times: dict[bool, list[float]] = {False: [], True: []}
        began = time.perf_counter()
        for i in range(8 * rounds):
            for bf16 in ((False, True) if i % 2 == 0 else (True, False)):
                times[bf16].append(step(bf16))
            ratio = min(times[False]) / min(times[True])
            settled = (abs(ratio / BF16_GAIN - 1) > 0.05 and
                       max(_spread(times[False]), _spread(times[True])) <= SPREAD)
            spent = time.perf_counter() - began
            if (i + 1 >= rounds and settled) or (i + 1 >= 2 and spent > budget):
                break  # a large model's steps are long: two pairs must do within the budget
    return Probe(ratio, _disturbance([_spread(times[False]), _spread(times[True])], free, cores))


def step_seconds(config: ModelConfig, rows: int, seq_len: int, device: torch.device,
                 rounds: int = 2, budget: float = 3.0, check_cores: bool = True) -> Probe:
    """Seconds a training step (forward and backward over a batch of `rows` x `seq_len`) of a
    model of this shape takes on `device`: the fastest of `rounds` timings after a warm-up,
    more (within about `budget` seconds) while they spread, on the cores free, and whether
    they look disturbed by another busy program. What the size chosen for a time limit rests on
    (songgen.training.defaults.choose_size); the global random state is left as it was."""
    import time

    def wait() -> None:  # GPU kernels run ahead of the host: time them to their end
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elif device.type == "mps":
            torch.mps.synchronize()

    free, cores = _free_cores(check_cores and device.type == "cpu")
    with torch.random.fork_rng(devices=[]), _threads_at_most(free):
        # Without dropout, and with the batch drawn on the CPU: no GPU random numbers are used.
        model = CharLSTM(replace(config, dropout=0.0)).to(device)
        x = torch.randint(0, config.vocab_size, (rows, seq_len)).to(device)
        times: list[float] = []
        began = time.perf_counter()
        for i in range(8 * rounds + 1):
            wait()
            start = time.perf_counter()
            _forward_backward(model, x)
            wait()
            times.append(time.perf_counter() - start)
            timed = times[1:]  # the first allocates and faults memory in
            if len(timed) >= rounds and (_spread(timed) <= SPREAD or
                                         time.perf_counter() - began > budget):
                break
    return Probe(min(timed), _disturbance([_spread(timed)], free, cores))
