"""What `--precision auto` decides on a CPU with AVX-512 BF16 but no AMX: the probe's ratio and
choice for the default model (2x256) and a 2x512 one, and how long the probe took.

    ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 taskset -c 0,1 python benchmarks/bf16_probe.py

On a host with AMX, ONEDNN_MAX_CPU_ISA holds oneDNN to AVX-512 BF16 and the script tells
songgen the CPU has no AMX, so that it stands in for an AVX-512 BF16-only CPU.
"""

import time

import torch

from songgen.config import ModelConfig
from songgen.devices import resolve_precision
from songgen.model import bf16_speedup

torch.set_num_threads(2)
torch.cpu._is_amx_tile_supported = lambda: False  # noqa: SLF001 - stand in for a CPU without AMX
for hidden in (256, 512):
    config = ModelConfig(vocab_size=62, hidden_size=hidden)
    began = time.perf_counter()
    dtype, why = resolve_precision("auto", torch.device("cpu"), lambda: bf16_speedup(config))
    print(f"2x{hidden}: {why} (probe and choice {time.perf_counter() - began:.2f} s)")
