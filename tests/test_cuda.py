"""CUDA behaviour; every test here skips on a machine without a CUDA GPU."""

import os
import subprocess
import sys

import pytest
import torch

from songgen.checkpoint import load_checkpoint
from songgen.devices import resolve_precision
from songgen.training import Run as TrainingLoop
from songgen.generate import generate
from songgen.training import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_precision_auto_is_bf16_from_ampere_on():
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    assert resolve_precision("auto", torch.device("cuda")) == expected


def test_the_training_step_never_waits_for_the_gpu(songs_file, tiny_model, tiny_config,
                                                   monkeypatch):
    step = TrainingLoop._train_step

    def checked(self):
        torch.cuda.set_sync_debug_mode("error")  # any host synchronisation raises
        try:
            return step(self)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    monkeypatch.setattr(TrainingLoop, "_train_step", checked)
    result = train(songs_file, model=tiny_model, config=tiny_config(steps=12, device="cuda",
                                                                    log_every=1000), quiet=True)
    assert result.step == 12


def test_a_gpu_checkpoint_resumes_and_samples_on_the_cpu(songs_file, tiny_model, tiny_config):
    first = train(songs_file, model=tiny_model, config=tiny_config(steps=10, device="cuda"),
                  quiet=True)
    more = train(songs_file, model=tiny_model, config=tiny_config(steps=15, device="cpu"),
                 resume=True, quiet=True)
    assert (first.step, more.step) == (10, 15)
    trained = load_checkpoint(first.checkpoint_dir / "last.pt", device="cpu")
    assert generate(trained, seed=1, length=200)[0].text


def test_sampling_on_the_gpu_matches_the_cpu(songs_file, tiny_model, tiny_config):
    result = train(songs_file, model=tiny_model, config=tiny_config(steps=30, device="cuda",
                                                                    precision="fp32"),
                   quiet=True)
    path = result.checkpoint_dir / "last.pt"
    on_gpu = generate(path, device="cuda", temperature=0, length=300)[0]
    on_cpu = generate(path, device="cpu", precision="fp32", temperature=0, length=300)[0]
    # Greedy decoding of the same weights: the same text unless two logits tie within rounding.
    assert on_gpu.text[:100] == on_cpu.text[:100]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_gpus_with_nccl_train_like_one(songs_file, tmp_path):
    args = [str(songs_file), "--seq-len", "16", "--hidden-size", "16", "--embed-dim", "8",
            "--batch-size", "8", "--dropout", "0", "--steps", "12", "--eval-every", "6",
            "--precision", "fp32", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc-per-node", "2", "-m", "songgen", "train", *args,
                          "--checkpoint-dir", str(tmp_path / "two")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert two.returncode == 0, two.stderr
    one = subprocess.run([sys.executable, "-m", "songgen", "train", *args, "--device", "cuda",
                          "--checkpoint-dir", str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert one.returncode == 0, one.stderr
    a = torch.load(tmp_path / "two" / "last.pt", weights_only=True)["model_state"]
    b = torch.load(tmp_path / "one" / "last.pt", weights_only=True)["model_state"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-3, atol=1e-4)
