"""Choosing the device and the numeric precision."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import time
import warnings
from typing import Callable

import torch

from ..errors import DeviceError, SonggenWarning

# Intel MKL's matrix products split their sums differently at different thread counts, so the
# same step at 1 and at 2 threads gave weights a rounding apart; in its strict reproducible
# mode they do not (`python -m benchmarks exact`). It is read when MKL first runs: set here,
# before any songgen computation, unless the user chose a mode of their own. Other kernels
# (oneDNN's LSTM at AVX2) have no such mode: songgen.training.threadcount checks each run's own step.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")


def resolve_device(name: str = "auto") -> torch.device:
    """auto picks CUDA, then Apple MPS, then the CPU; an explicit choice must exist here."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise DeviceError("device mps (Apple GPU) is not available on this machine; "
                              "use cpu or auto")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name} asked for, but CUDA is not available here "
                              "(no NVIDIA GPU, or a CPU-only PyTorch); use cpu or auto")
        if ":" in name:
            index = name.split(":", 1)[1]
            if not index.isdigit() or int(index) >= torch.cuda.device_count():
                raise DeviceError(f"device {name} does not exist; this machine has "
                                  f"{torch.cuda.device_count()} CUDA device(s), cuda:0 upwards")
        return torch.device(name)
    raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(name: str, device: torch.device) -> str:
    """The precision's name if it exists and this device can run it ("auto" always can), else
    DeviceError: a bad choice fails before the corpus is read."""
    name = (name or "auto").lower()
    if name != "auto" and name not in DTYPES:
        raise DeviceError(f"unknown precision {name!r}; use auto, fp32, bf16 or fp16")
    if name != "auto" and (problem := cannot_run(name, device)):
        raise DeviceError(f"{problem}; use fp32" + (" or auto" if name != "fp32" else ""))
    return name


def cannot_run(name: str, device: torch.device) -> str | None:
    """Why `device` cannot compute in precision `name`, or None where it can."""
    if name == "fp16" and device.type != "cuda":
        return "fp16 training needs a CUDA GPU"
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "this GPU has no native bf16"
    if name == "bf16" and device.type == "cpu" and cpu_bf16_instructions() is None:
        # oneDNN refuses a bf16 LSTM there ("could not create a primitive descriptor").
        return (f"this CPU has no native bf16 (no AMX or AVX-512 BF16{_capped()}), so its "
                "LSTM cannot run in bf16")
    return None


def resolve_precision(name: str, device: torch.device,
                      speedup: Callable[[], float] | None = None) -> tuple[torch.dtype, str]:
    """The autocast dtype (float32 means no autocast) and why. auto: see `auto_precision`."""
    name = check_precision(name, device)
    if name == "auto":
        return auto_precision(device, speedup)
    return DTYPES[name], f"{name}: as asked"


def auto_precision(device: torch.device,
                   speedup: Callable[[], float] | None = None) -> tuple[torch.dtype, str]:
    """bf16 mixed precision where it trains faster than float32, and why.

    CUDA GPUs from Ampere on compute in bf16 natively, and so do CPUs with AMX tiles. On a CPU
    with AVX-512 BF16 but no AMX, whether oneDNN's bf16 LSTM beats float32 differs from one
    machine to another (faster on some AMD EPYCs, slower on an Intel Xeon held to AVX-512:
    benchmarks/RESULTS.md), so `speedup()` measures it for the model at hand (about a second,
    songgen.model.probes.bf16_speedup) and bf16 is taken only where it is clearly faster. Elsewhere
    float32. A run makes this choice once, when it is created (see `decide_precision`)."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "bf16: this GPU computes in bf16 natively"
        return torch.float32, "fp32: this GPU has no native bf16"
    if device.type != "cpu":
        return torch.float32, f"fp32: bf16 is not used on {device.type}"
    native = cpu_bf16_instructions()
    if native == "AMX":
        return torch.bfloat16, "bf16: this CPU computes in bf16 natively (AMX)"
    if native is None:
        return torch.float32, ("fp32: this CPU has no native bf16 (no AMX or AVX-512 "
                               f"BF16{_capped()})")
    if speedup is None:
        return torch.float32, "fp32: this CPU has AVX-512 BF16 but bf16 was not measured here"
    probe = speedup()
    ratio = getattr(probe, "value", probe)  # a model.Probe, or a bare ratio
    busy = getattr(probe, "disturbed", None)
    note = f" ({busy}; the fastest timings were compared)" if busy else ""
    if ratio >= BF16_GAIN:
        return torch.bfloat16, (f"bf16: this CPU has AVX-512 BF16 and a training step of this "
                                f"model ran {ratio:.2f}x as fast in it{note}")
    return torch.float32, (f"fp32: this CPU has AVX-512 BF16, but a training step of this model "
                           f"ran {ratio:.2f}x as fast in bf16, not faster{note}")


BF16_GAIN = 1.1  # bf16 must be this much faster to be worth its rounding


def decide_precision(requested: str, device: torch.device, *, recorded: dict | None = None,
                     resumed: bool = False, asked: bool = False, step: int = 0,
                     speedup: Callable[[], float] | None = None
                     ) -> tuple[str, str, str | None]:
    """The precision a run computes in: (name, reason, a line to say about a change or None).

    A new run chooses (`auto`: see auto_precision, probe included). A resumed run keeps the
    precision `recorded` at its creation (its checkpoint's choice), whatever a probe would say
    today, so that it goes on computing exactly as it began; `asked` (a precision given on
    purpose that differs) changes it deliberately. Where this machine cannot run the recorded
    precision the run goes on in fp32, with a warning. A checkpoint from before the
    choice was recorded chooses now, once."""
    requested = check_precision(requested, device)
    if not resumed or recorded is None:
        dtype, why = resolve_precision(requested, device, speedup)
        name, reason = why.split(": ", 1)
        if resumed:
            return name, reason, (f"precision {name}: {reason}; the run's checkpoint did not "
                                  "record its precision (an older songgen), so it is chosen "
                                  "now and kept from here on")
        return name, reason, None
    before, before_why = recorded["value"], recorded.get("reason", "")
    if asked and requested not in ("auto", before):
        return requested, f"as asked on resuming at step {step:,} (was {before})", (
            f"precision changed on resume: {before} -> {requested}, as asked; the run "
            "computes differently from here on")
    problem = cannot_run(before, device)
    if problem is None:
        return before, before_why, None
    warnings.warn(f"the run computed in {before}, but {problem}; it goes on in fp32, so it "
                  f"will not match what it would have computed in {before}", SonggenWarning)
    return "fp32", (f"the run computed in {before} until step {step:,}, which "
                    f"{_where(device)} cannot run"), None


def _where(device: torch.device) -> str:
    return {"cpu": "the CPU it was resumed on", "cuda": "the GPU it was resumed on"}.get(
        device.type, f"the {device.type} device it was resumed on")


# oneDNN's instruction-set caps (ONEDNN_MAX_CPU_ISA, or DNNL_MAX_CPU_ISA in older releases)
# that still allow each kind of native bf16. A cap oneDNN does not know leaves it uncapped.
_ISA_WITH_AMX = ("AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX",
                 "AVX10_1_512_AMX_FP16", "AVX10_2_512_AMX_2")
_ISA_WITH_AVX512_BF16 = _ISA_WITH_AMX + ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512",
                                         "AVX10_2_512")
_ISA_WITHOUT = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                "AVX512_CORE_VNNI")


def onednn_isa_cap() -> str | None:
    """The instruction set oneDNN is capped at by the environment (upper case), or None."""
    for variable in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        value = os.environ.get(variable, "").strip().upper()
        if value in _ISA_WITH_AVX512_BF16 + _ISA_WITHOUT:
            return value
    return None


def _capped() -> str:
    cap = onednn_isa_cap()
    return f"; ONEDNN_MAX_CPU_ISA caps oneDNN at {cap}" if cap else ""


def cpu_bf16_instructions() -> str | None:
    """The CPU's native bf16 instructions that oneDNN uses, by name, or None. A cap set with
    ONEDNN_MAX_CPU_ISA (oneDNN's own variable) is honoured: at AVX512_CORE_BF16 there is no
    AMX, at AVX2 no native bf16 at all, as oneDNN will see it."""
    cap = onednn_isa_cap()
    for name, check, allowed in (("AMX", "_is_amx_tile_supported", _ISA_WITH_AMX),
                                 ("AVX-512 BF16", "_is_avx512_bf16_supported",
                                  _ISA_WITH_AVX512_BF16)):
        if cap is not None and cap not in allowed:
            continue
        probe = getattr(torch.cpu, check, None)  # private; absent in older releases
        try:
            if probe and probe():
                return name
        except RuntimeError:
            pass
    return None


def autocast(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def keep_freed_memory() -> None:
    """Ask glibc to keep freed memory instead of returning it to the OS at once.

    The LSTM's backward pass allocates and frees the same large buffers every step; with glibc's
    defaults each one is a fresh mmap whose pages fault in again, a sizeable share of CPU
    training time (benchmarks/RESULTS.md). Same as MALLOC_MMAP_THRESHOLD_ and
    MALLOC_TRIM_THRESHOLD_ in the environment.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 << 20)   # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)     # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        pass


# -- CPU threads on a busy machine -------------------------------------------------------------

def cpu_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def free_cores(sample: float = 0.1) -> int:
    """Cores not kept busy by other processes, from the system's CPU counters over `sample`
    seconds (Linux); all of them where that cannot be read."""
    cores = cpu_cores()

    def counters():
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return sum(values), values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait

    try:
        total0, idle0 = counters()
        time.sleep(sample)
        total1, idle1 = counters()
    except (OSError, ValueError, IndexError):
        return cores
    if total1 <= total0:
        return cores
    busy = (1 - (idle1 - idle0) / (total1 - total0)) * (os.cpu_count() or cores)
    return max(1, min(cores, cores - int(busy + 0.5)))


class ThreadTuner:
    """Keeps PyTorch's CPU thread count at what trains fastest now.

    PyTorch's CPU threads spin-wait for each other, so when another busy process takes a core,
    a run on one thread per core does not slow by half, it collapses (two default runs on two
    cores: each at a tenth of its speed alone). It starts with the cores free at the start,
    and, timing the training steps only, now and then tries one thread fewer (or, after it
    went down, one more) for a short while, keeping whichever ran faster. A collapse is found
    at once: a window much slower than the best seen at that count triggers a try.

    A run uses it only where its own step computes the same bits at every count it could use
    (songgen.training.threadcount checks, at the run's start), so a run tuned mid-way, or resumed
    beside a busy process, equals the run alone; elsewhere the run keeps one count."""

    WINDOW = 2.0     # seconds of steps per measurement
    EVERY = 60.0     # seconds between tries while nothing changes
    BETTER = 1.1     # a try wins when it is this much faster

    def __init__(self, threads: int, most: int):
        self.threads, self.most = threads, most
        self.before = torch.get_num_threads()
        self.best: dict[int, float] = {}     # fastest steps/s seen at each thread count
        self.trying: int | None = None       # the count on trial, with the rate it must beat
        self.to_beat = 0.0
        self.window_steps, self.window_time = 0, 0.0
        self.since_try = 0.0
        self.warm_up = 1  # windows not counted: the first steps allocate and fault memory in
        torch.set_num_threads(threads)

    def step_took(self, seconds: float) -> None:
        """Count one training step of `seconds`; may change the thread count."""
        self.window_steps += 1
        self.window_time += seconds
        self.since_try += seconds
        if self.window_time < self.WINDOW or self.window_steps < 3:
            return
        rate = self.window_steps / self.window_time
        self.window_steps, self.window_time = 0, 0.0
        if self.warm_up:
            self.warm_up -= 1
            return
        now = torch.get_num_threads()
        self.best[now] = max(self.best.get(now, 0.0), rate)
        if self.trying is not None:  # a trial window ends: keep the faster count
            if rate < self.to_beat * self.BETTER:
                torch.set_num_threads(self.threads)
            else:
                self.threads = now
            self.trying = None
            return
        collapsed = rate < 0.6 * self.best[now]
        first = len(self.best) == 1 and self.since_try >= self.WINDOW
        if self.most > 1 and (collapsed or first or self.since_try >= self.EVERY):
            other = now - 1 if now > 1 else now + 1
            # A try must beat what this count does at its best, unless the machine changed
            # under it (a collapse): then what it does now.
            self.to_beat = rate if collapsed else self.best[now]
            self.trying, self.since_try = other, 0.0
            torch.set_num_threads(other)

    def close(self) -> None:
        """Give the process back the thread count it had."""
        torch.set_num_threads(self.before)
