"""Shared by the torchrun tests: `songgen train` launched under torchrun (CPU processes, gloo)
and as one process, as a user launches them, and the comparison of what the two saved."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

needs_gloo = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="this PyTorch has no gloo backend")

TINY = ["--seq-len", "16", "--hidden-size", "16", "--embed-dim", "8", "--eval-every", "5",
        "--device", "cpu", "--precision", "fp32", "--patience", "0", "-q"]


def torchrun(*args, procs=2, **kwargs):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", str(procs), "-m", "songgen", "train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, **kwargs)


def single(*args):
    command = [sys.executable, "-m", "songgen", "train", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def load(folder):
    return torch.load(folder / "last.pt", weights_only=True)


def two_and_one(options: list[str], folder: Path) -> tuple[dict, dict]:
    """`songgen train` with `options` on two torchrun processes (into folder/two) and on one
    (folder/one), both succeeding: the last.pt of each, as raw dicts."""
    run = torchrun(*options, "--checkpoint-dir", str(folder / "two"))
    assert run.returncode == 0, run.stderr
    alone = single(*options, "--checkpoint-dir", str(folder / "one"))
    assert alone.returncode == 0, alone.stderr
    return load(folder / "two"), load(folder / "one")


def assert_same_weights(two: dict, one: dict) -> None:
    """Two processes trained the weights one process did, to float rounding (the gradients of
    the halves of a batch are summed in another order)."""
    for name, value in one["model_state"].items():
        torch.testing.assert_close(two["model_state"][name], value, rtol=1e-4, atol=1e-5)
