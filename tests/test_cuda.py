"""CUDA behaviour; every test here skips on a machine without a CUDA GPU."""

import os
import subprocess
import sys

import pytest
import torch

from songgen.run.trained import load_checkpoint
from songgen.model.devices import resolve_precision
from songgen.training.loop import Run as TrainingLoop
from songgen.writing.sampling import generate
from songgen.training.loop import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_precision_auto_is_bf16_from_ampere_on():
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    assert resolve_precision("auto", torch.device("cuda"))[0] == expected


def test_the_training_step_never_waits_for_the_gpu(songs_file, tiny_model, tiny_config,
                                                   monkeypatch):
    step = TrainingLoop._train_step

    def checked(self):
        if self.step < 2:  # cuDNN sets up its workspaces in the first steps
            return step(self)
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


def _graph_model(layers=2, hidden=32, vocab=17):
    from songgen.config import ModelConfig
    from songgen.model.lstm import CharLSTM

    torch.manual_seed(3)
    return CharLSTM(ModelConfig(vocab_size=vocab, embed_dim=8, hidden_size=hidden,
                                layers=layers)).cuda().eval()


@pytest.mark.parametrize("n", [1, 64])
def test_the_cuda_graph_step_equals_the_eager_step_and_nn_lstm(n, monkeypatch):
    from songgen.model.stepper import StepState, Stepper

    model = _graph_model()
    x = torch.randint(0, 17, (n, 40), device="cuda")
    start = tuple(0.1 * torch.randn(2, n, 32, device="cuda") for _ in range(2))
    with torch.inference_mode():
        full, _ = model(x, start)
        eager_stepper = Stepper(model)
        eager_stepper.cuda_graphs = False
        eager_state = StepState(start)
        eager = torch.stack([eager_stepper.step(x[:, t], eager_state) for t in range(40)], 1)

        stepper, state = Stepper(model), StepState(start)
        calls = []
        step = Stepper._step
        monkeypatch.setattr(Stepper, "_step", lambda self, *a, **k: calls.append(1)
                            or step(self, *a, **k))
        # The way sample._steps uses it: the previous logits are held during the next step.
        graphed, logits = [], None
        for t in range(40):
            logits = stepper.step(x[:, t], state)
            graphed.append(logits.clone())
        graphed = torch.stack(graphed, 1)
    assert stepper.cuda_graph_error is None
    assert len(calls) == 4  # two warm-up steps, two captures; every step after is a replay
    torch.testing.assert_close(graphed, eager, rtol=1e-5, atol=1e-5)
    # cuDNN may use TF32 for float32: a looser check against the full-sequence forward.
    torch.testing.assert_close(graphed, full, rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(state.hs, eager_state.hs, rtol=1e-5, atol=1e-5)


def test_cuda_graph_logits_held_by_the_caller_are_never_overwritten():
    from songgen.model.stepper import StepState, Stepper

    model = _graph_model()
    x = torch.randint(0, 17, (3, 12), device="cuda")
    start = (torch.zeros(2, 3, 32, device="cuda"), torch.zeros(2, 3, 32, device="cuda"))
    with torch.inference_mode():
        eager_stepper = Stepper(model)
        eager_stepper.cuda_graphs = False
        eager_state = StepState(start)
        eager = [eager_stepper.step(x[:, t], eager_state) for t in range(12)]
        stepper, state = Stepper(model), StepState(start)
        kept = [stepper.step(x[:, t], state) for t in range(12)]      # every one held
        views = [stepper.step(x[:, 0], StepState(start))[0] for _ in range(3)]  # views only
    assert stepper.cuda_graph_error is None
    for a, b in zip(kept, eager):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for v in views:
        torch.testing.assert_close(v, eager[0][0], rtol=1e-5, atol=1e-5)


def test_sampling_with_cuda_graphs_writes_the_same_songs_as_eager(songs_file, tiny_model,
                                                                 tiny_config):
    result = train(songs_file, model=tiny_model, config=tiny_config(steps=20, device="cuda"),
                   quiet=True)
    trained = load_checkpoint(result.checkpoint_dir / "last.pt", device="cuda")
    stepper = trained.stepper()
    graphed = generate(trained, num_songs=5, seed=9, length=300, temperature=1.0)
    assert stepper.cuda_graph_error is None and 5 in stepper._warm  # captured, no error
    stepper.cuda_graphs = False
    eager = generate(trained, num_songs=5, seed=9, length=300, temperature=1.0)
    # The same draws from logits equal up to rounding: the same text, bar a near-tie.
    same = sum(a.text[:150] == b.text[:150] for a, b in zip(graphed, eager))
    assert same >= 4
