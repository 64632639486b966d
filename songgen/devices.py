"""Choosing the device and the numeric precision."""

from __future__ import annotations

import contextlib
import ctypes
import sys

import torch

from .errors import DeviceError


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


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """The autocast dtype: float32 means no autocast. auto: see `auto_precision`."""
    name = (name or "auto").lower()
    if name == "auto":
        return auto_precision(device)[0]
    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in table:
        raise DeviceError(f"unknown precision {name!r}; use auto, fp32, bf16 or fp16")
    if name == "fp16" and device.type != "cuda":
        raise DeviceError("fp16 training needs a CUDA GPU; use fp32 or bf16 on this device")
    return table[name]


def auto_precision(device: torch.device) -> tuple[torch.dtype, str]:
    """bf16 mixed precision where the hardware computes in it natively, and why: CUDA GPUs
    from Ampere on, and CPUs with the instructions oneDNN runs bf16 on (AMX tiles, AVX-512
    BF16), where training runs faster at the same loss per step (benchmarks/RESULTS.md).
    Elsewhere bf16 is emulated and slower than float32."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "bf16: this GPU computes in bf16 natively"
        return torch.float32, "fp32: this GPU has no native bf16"
    if device.type == "cpu":
        native = cpu_bf16_instructions()
        if native:
            return torch.bfloat16, f"bf16: this CPU computes in bf16 natively ({native})"
        return torch.float32, "fp32: this CPU has no native bf16 (no AMX or AVX-512 BF16)"
    return torch.float32, f"fp32 on {device.type}"


def cpu_bf16_instructions() -> str | None:
    """The CPU's native bf16 instructions that oneDNN uses, by name, or None."""
    for name, check in (("AMX", "_is_amx_tile_supported"), ("AVX-512 BF16", "_is_avx512_bf16_supported")):
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
