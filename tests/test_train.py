import errno
import json
import warnings

import pytest
import torch

from songgen.run import checkpoint as ckpt
from songgen.errors import CheckpointError, CorpusError, SonggenError, SonggenWarning
from songgen.run.folder import RunFolder as CheckpointFolder, numbered
from songgen.training.loop import train


def weights(folder):
    return torch.load(folder / "last.pt", weights_only=True)["model_state"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_resume_is_bit_identical_to_an_uninterrupted_run(straight_and_resumed):
    a, b = straight_and_resumed  # 13 steps an epoch
    assert_same_weights(a["model_state"], b["model_state"])
    assert a["step"] == b["step"] == 30 and a["epoch"] == b["epoch"]
    assert torch.equal(a["optimizer_state"]["state"][0]["exp_avg"],
                       b["optimizer_state"]["state"][0]["exp_avg"])


def test_checkpoint_is_self_contained_and_loads_with_weights_only(songs_file, tiny_model,
                                                                 tiny_config):
    cfg = tiny_config(steps=10)
    result = train(songs_file, model=tiny_model, config=cfg, quiet=True)
    state = torch.load(result.checkpoint_dir / "last.pt", weights_only=True)
    for key in ("format", "version", "songgen_version", "model_config", "train_config", "vocab",
                "model_state", "optimizer_state", "step", "epoch", "position", "rng",
                "best_val_loss", "history", "fingerprint", "stream_state"):
        assert key in state, key
    assert state["step"] == 10 and state["model_config"]["hidden_size"] == 16
    assert (result.checkpoint_dir / "best.pt").exists()
    lines = (result.checkpoint_dir / "metrics.jsonl").read_text().splitlines()
    record = json.loads(lines[-1])
    assert set(record) >= {"step", "epoch", "train_loss", "val_loss", "val_bpc",
                           "chars_per_sec", "lr", "elapsed"}
    assert [json.loads(line)["step"] for line in lines] == [5, 10]


def test_training_lowers_the_validation_loss(songs_file, tiny_model, tiny_config):
    result = train(songs_file, model=tiny_model, config=tiny_config(steps=60, lr=1e-2),
                   quiet=True)
    history = torch.load(result.checkpoint_dir / "last.pt", weights_only=True)["history"]
    assert history[-1]["val_loss"] < history[0]["val_loss"] - 0.5


def test_keep_last_rotates_numbered_checkpoints(songs_file, tiny_model, tiny_config):
    result = train(songs_file, model=tiny_model, config=tiny_config(steps=25, keep_last=2),
                   quiet=True)
    assert [s for s, _ in numbered(result.checkpoint_dir)] == [20, 25]


def test_resume_warns_on_conflicting_architecture_and_keeps_checkpoint(songs_file, tiny_model,
                                                                       tiny_config):
    train(songs_file, model=tiny_model, config=tiny_config(steps=5), quiet=True)
    with pytest.warns(SonggenWarning, match="hidden size = 32 differs from the checkpoint's 16"):
        train(songs_file, model={**tiny_model, "hidden_size": 32},
              config=tiny_config(steps=10), resume=True, explicit={"hidden_size"}, quiet=True)


def test_resume_with_another_corpus_is_refused(songs_file, tiny_model, tiny_config, tmp_path):
    train(songs_file, model=tiny_model, config=tiny_config(steps=5), quiet=True)
    other = tmp_path / "other.txt"
    other.write_text(songs_file.read_text().replace("love", "LOVE"))
    with pytest.raises(CorpusError, match="not the text the checkpoint was trained on"):
        train(other, model=tiny_model, config=tiny_config(steps=10), resume=True, quiet=True)


def test_new_run_does_not_overwrite_an_old_one(songs_file, tiny_model, tiny_config):
    result = train(songs_file, model=tiny_model, config=tiny_config(steps=5), quiet=True)
    before = (result.checkpoint_dir / "last.pt").read_bytes()
    with pytest.raises(CheckpointError, match="already holds a training run"):
        train(songs_file, model=tiny_model, config=tiny_config(steps=5), quiet=True)
    assert (result.checkpoint_dir / "last.pt").read_bytes() == before


def test_resume_without_checkpoint_is_an_error(songs_file, tiny_model, tiny_config):
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(songs_file, model=tiny_model, config=tiny_config(steps=5), resume=True, quiet=True)


def test_unreadable_last_falls_back_to_older_checkpoint(songs_file, tiny_model, tiny_config):
    result = train(songs_file, model=tiny_model, config=tiny_config(steps=10), quiet=True)
    last = result.checkpoint_dir / "last.pt"
    last.write_bytes(b"garbage")  # damaged on disk; step-10.pt is an independent copy
    with pytest.warns(SonggenWarning, match=r"resuming from step-000000010.pt at step 10"):
        again = train(songs_file, model=tiny_model, config=tiny_config(steps=15), resume=True,
                      quiet=True)
    assert again.step == 15
    assert ckpt.load(result.checkpoint_dir / "best.pt").step == 15


def test_missing_last_falls_back_to_older_checkpoint(songs_file, tiny_model, tiny_config):
    result = train(songs_file, model=tiny_model, config=tiny_config(steps=10), quiet=True)
    (result.checkpoint_dir / "last.pt").unlink()
    with pytest.warns(SonggenWarning, match=r"last.pt is missing; resuming from "
                                            r"step-000000010.pt at step 10"):
        again = train(songs_file, model=tiny_model, config=tiny_config(steps=15), resume=True,
                      quiet=True)
    assert again.step == 15


def test_resume_with_every_checkpoint_unreadable_says_so(songs_file, tiny_model, tiny_config):
    result = train(songs_file, model=tiny_model, config=tiny_config(steps=10), quiet=True)
    for path in result.checkpoint_dir.glob("*.pt"):
        path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"last.pt is corrupt .*, and no other checkpoint "
                                              r"in .* can be read; start a new run"):
        train(songs_file, model=tiny_model, config=tiny_config(steps=15), resume=True, quiet=True)


def test_full_disk_keeps_previous_checkpoint_and_stops(songs_file, tiny_model, tiny_config,
                                                       monkeypatch):
    result = train(songs_file, model=tiny_model, config=tiny_config(steps=5), quiet=True)
    before = (result.checkpoint_dir / "last.pt").read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", full)
    with pytest.raises(SonggenError, match=r"the disk holding .*ckpt is full: step 10 could not "
                                           r"be saved, last.pt \(step 5\) is intact"):
        train(songs_file, model=tiny_model, config=tiny_config(steps=10), resume=True, quiet=True)
    assert (result.checkpoint_dir / "last.pt").read_bytes() == before
    assert not [p for p in result.checkpoint_dir.iterdir() if p.name.endswith(".tmp")]


def test_second_run_in_the_same_folder_is_refused(tmp_path):
    folder = CheckpointFolder(tmp_path / "c")
    with folder.lock():
        with pytest.raises(CheckpointError, match="another training run .* is using"):
            with CheckpointFolder(tmp_path / "c").lock():
                pass
    with folder.lock():  # released once the first run ends
        pass


def test_too_high_learning_rate_stops_with_advice(songs_file, tiny_model, tiny_config):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SonggenError, match=r"again after 3 roll-backs, with the learning rate "
                                               r"down to .*; start again with a lower"):
            train(songs_file, model=tiny_model,
                  config=tiny_config(steps=200, lr=1e9, grad_clip=0, log_every=1), quiet=True)
    assert sum("rolled back to step" in str(w.message) for w in caught) == 3


def test_non_finite_loss_rolls_back_and_lowers_the_learning_rate(songs_file, tiny_model,
                                                                 tiny_config, monkeypatch):
    from songgen.training import loop as train_module

    real_step = train_module.Run._train_step
    poisoned = []

    def step_once_nan(self):
        loss = real_step(self)
        if self.step == 12 and not poisoned:
            poisoned.append(self.step)
            return loss * float("nan")
        return loss

    monkeypatch.setattr(train_module.Run, "_train_step", step_once_nan)
    with pytest.warns(SonggenWarning, match="the training loss became nan at step 12; rolled "
                                            "back to step 10 and halved the learning rate"):
        result = train(songs_file, model=tiny_model, config=tiny_config(steps=20, log_every=1),
                       quiet=True)
    state = torch.load(result.checkpoint_dir / "last.pt", weights_only=True)
    assert result.step == 20 and state["optimizer_state"]["param_groups"][0]["lr"] == 3e-3
    assert all(h["val_loss"] == h["val_loss"] for h in state["history"])  # no NaN saved


def test_public_train_can_be_called_twice(songs_file, tiny_model, tiny_config, tmp_path):
    import songgen

    for name in ("a", "b"):
        result = songgen.train(songs_file, model=tiny_model, quiet=True,
                               config=tiny_config(steps=2, checkpoint_dir=str(tmp_path / name)))
        assert result.step == 2


def test_sampling_starts_from_the_end_of_the_last_song_even_far_back():
    from songgen.training.loop import song_start_context

    text = torch.full((3_000_000,), 5, dtype=torch.uint8)
    text[500_000 - 1000:500_000] = 7
    text[500_000] = 0  # the only end of song, 2.5 M characters before the end
    assert torch.equal(song_start_context(text), torch.full((1000,), 7, dtype=torch.uint8))


def test_a_model_too_big_for_the_free_memory_is_refused_before_it_is_built(
        songs_file, tiny_config, tmp_path, monkeypatch):
    import songgen.training.plan
    import songgen.training.loop

    monkeypatch.setattr(songgen.training.plan, "available_memory", lambda: 200_000_000)
    built = []
    monkeypatch.setattr(songgen.training.loop, "Run", lambda *a, **k: built.append(1))
    cfg = tiny_config(steps=1, checkpoint_dir=str(tmp_path / "big"), device="cpu")
    with pytest.raises(SonggenError, match=r"training a 3x1024 model with batch .* needs about "
                                           r"0\.[2-9] GB of memory but cpu has 0\.2 GB free"):
        train(songs_file, model={"hidden_size": 1024, "layers": 3}, config=cfg, quiet=True)
    assert not built
    # A model that fits the same memory trains.
    monkeypatch.undo()
    monkeypatch.setattr(songgen.training.plan, "available_memory", lambda: 200_000_000)
    result = train(songs_file, model={"hidden_size": 32, "layers": 1}, config=cfg, quiet=True)
    assert result.step == 1


def test_a_diverging_run_is_told_to_lower_the_learning_rate(songs_file, tiny_model,
                                                            tiny_config, tmp_path):
    cfg = tiny_config(steps=40, eval_every=10, lr=10.0, grad_clip=0.0, precision="fp32",
                      checkpoint_dir=str(tmp_path / "wild"))
    with pytest.warns(SonggenWarning, match=r"worse than guessing at random \(\d\.\d\d\): "
                                            r"training is diverging; lower the learning rate "
                                            r"\(now 10\)") as caught:
        train(songs_file, model=tiny_model, config=cfg, quiet=True)
    assert sum("diverging" in str(w.message) for w in caught) == 1  # once, not every evaluation
    with warnings.catch_warnings():
        warnings.simplefilter("error", SonggenWarning)  # a sane run stays silent
        train(songs_file, model=tiny_model, config=tiny_config(
            steps=40, eval_every=10, checkpoint_dir=str(tmp_path / "calm")), quiet=True)


@pytest.mark.parametrize("amx, avx512_bf16, speedup, expected", [
    (True, False, None, "bf16: this CPU computes in bf16 natively (AMX)"),
    (False, True, 1.45, "bf16: this CPU has AVX-512 BF16 and a training step of this model ran "
                        "1.45x as fast in it"),
    (False, True, 0.63, "fp32: this CPU has AVX-512 BF16, but a training step of this model ran "
                        "0.63x as fast in bf16, not faster"),
    (False, False, None, "fp32: this CPU has no native bf16 (no AMX or AVX-512 BF16)")])
def test_auto_precision_on_the_cpu_follows_what_it_computes_fast(monkeypatch, amx, avx512_bf16,
                                                                 speedup, expected):
    """The choice itself, whatever this machine's CPU: its instructions and the probe are
    stood in for."""
    from songgen.model.devices import resolve_precision

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16,
                        raising=False)
    probed = []
    dtype, why = resolve_precision("auto", torch.device("cpu"),
                                   lambda: probed.append(1) or speedup)
    assert why == expected
    assert dtype == (torch.bfloat16 if expected.startswith("bf16") else torch.float32)
    assert len(probed) == (speedup is not None)  # probed only where the instructions leave doubt
    assert resolve_precision("fp32", torch.device("cpu")) == (torch.float32, "fp32: as asked")


def test_the_bf16_probe_times_the_model_and_leaves_the_random_state_alone():
    import math

    from songgen.config import ModelConfig
    from songgen.model.probes import bf16_speedup

    before = torch.get_rng_state()
    probe = bf16_speedup(ModelConfig(vocab_size=20, hidden_size=16, embed_dim=8), rows=4,
                         seq_len=8, rounds=1)
    assert torch.equal(torch.get_rng_state(), before)
    ratio = probe.value
    assert ratio == 0 or (math.isfinite(ratio) and 0.01 < ratio < 100)  # 0: bf16 cannot run


@pytest.mark.parametrize("bf16_seconds, expected", [(1.5, 2.0), (6.0, 0.5), (None, 0.0)])
def test_the_bf16_probe_reports_fp32_time_over_bf16_time(monkeypatch, bf16_seconds, expected):
    """The ratio itself, with the step's cost stood in for: fp32 steps take 3 s on a made-up
    clock, bf16 steps bf16_seconds (None: bf16 refuses to run, as oneDNN does on a CPU without
    bf16 instructions)."""
    import time

    from songgen.model import probes as model_module
    from songgen.config import ModelConfig

    clock, steps = [0.0], []

    def step(model, x, bf16=False):
        steps.append((bf16, tuple(x.shape)))
        if bf16 and bf16_seconds is None:
            raise RuntimeError("bf16 LSTM is not supported here")
        clock[0] += bf16_seconds if bf16 else 3.0

    monkeypatch.setattr(model_module, "_forward_backward", step)
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    probe = model_module.bf16_speedup(ModelConfig(vocab_size=20, hidden_size=16, embed_dim=8),
                                      rows=4, seq_len=8, rounds=3, check_cores=False,
                                      budget=float("inf"))  # the stand-in clock is no budget
    assert probe.value == pytest.approx(expected)
    assert {shape for _, shape in steps} == {(4, 8)}
    if bf16_seconds is not None:  # a warm-up of each, then both in every round
        assert [bf16 for bf16, _ in steps].count(True) == 4
