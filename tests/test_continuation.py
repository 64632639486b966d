"""How a call to songgen.train goes on with the run in its folder, through the Python API
(songgen.training.continuation): steps more counted from where the run stands, the demo run
going on, a run complete already that trains and writes nothing, a step limit the run has
passed, a folder to fine-tune from. `songgen train` makes the same call (tests/test_same_command.py,
tests/test_first_hour.py)."""

import os

import pytest
import torch

import songgen
from songgen.errors import ConfigError
from songgen.run import checkpoint as ckpt
from songgen.training.continuation import StepLimitPassed
from songgen.training.schedule import LOWEST

MODEL = {"embed_dim": 8, "hidden_size": 16, "layers": 1}


def step_of(folder) -> int:
    return torch.load(os.path.join(folder, "last.pt"), weights_only=True)["step"]


def snapshot(folder):
    """Every file under `folder`: its bytes and modification time."""
    return {os.path.join(root, name): (open(os.path.join(root, name), "rb").read(),
                                       os.stat(os.path.join(root, name)).st_mtime_ns)
            for root, _, names in os.walk(folder) for name in names}


def test_more_steps_count_from_where_the_run_stands(songs_file, tiny_config):
    fresh = songgen.train(songs_file, model=MODEL, config=tiny_config(), more_steps=3,
                          quiet=True)
    assert fresh.step == 3 and not fresh.complete_already  # a new run counts from 0
    more = songgen.train(songs_file, model=MODEL, config=tiny_config(), resume=True,
                         more_steps=2, quiet=True)
    assert (more.step, more.stopped_because) == (5, "reached the step limit")
    assert step_of(tiny_config().checkpoint_dir) == 5
    with pytest.raises(ConfigError, match="a step limit and a number of steps more cannot be "
                                          "combined"):
        songgen.train(songs_file, config=tiny_config(steps=9), resume=True, more_steps=2)
    with pytest.raises(ConfigError, match="steps more must be a whole number, at least 1"):
        songgen.train(songs_file, config=tiny_config(), resume=True, more_steps=0)


def test_the_same_call_again_on_a_finished_run_is_complete_and_writes_nothing(
        songs_file, tiny_config, capsys):
    config = tiny_config(steps=4)
    first = songgen.train(songs_file, model=MODEL, config=config, quiet=True)
    before = snapshot(config.checkpoint_dir)
    capsys.readouterr()
    again = songgen.train(songs_file, model=MODEL, config=config, resume=True, quiet=True)
    assert again.complete_already and again.limit == "steps"
    assert (again.step, again.epoch, again.best_val_loss, again.last_val_loss) == (
        first.step, first.epoch, first.best_val_loss, first.last_val_loss)
    assert again.stopped_because == "reached the step limit" and again.loop_seconds == 0
    assert capsys.readouterr() == ("", "")  # the caller says it, in its own words
    assert snapshot(config.checkpoint_dir) == before
    # A step limit the run has passed counts from the run's start: refused, in plain words.
    with pytest.raises(StepLimitPassed) as refused:
        songgen.train(songs_file, model=MODEL, config=tiny_config(steps=3), resume=True)
    assert (refused.value.at, refused.value.steps) == (4, 3)
    assert str(refused.value) == (
        f"the run in {config.checkpoint_dir} is at step 4 already, and a step limit of 3 "
        "counts from the run's start; to train 3 steps more, ask for 3 more steps (or a step "
        "limit of 7)")
    assert snapshot(config.checkpoint_dir) == before


def test_a_run_whose_early_stop_holds_is_complete_until_asked_for_more(songs_file,
                                                                       tiny_config):
    config = tiny_config(steps=4)
    songgen.train(songs_file, model=MODEL, config=config, quiet=True)
    last = os.path.join(config.checkpoint_dir, "last.pt")
    saved = ckpt.load(last)
    saved.schedule = {**(saved.schedule or {}), "scale": LOWEST, "bad": 5}
    ckpt.save(saved, last)
    unlimited = tiny_config(patience=5)
    again = songgen.train(songs_file, config=unlimited, resume=True, quiet=True)
    assert again.complete_already and again.limit is None and again.step == 4
    assert again.stopped_because == ("validation loss stopped improving for 5 evaluations at "
                                     "the lowest learning rate")
    # More patience than the run ran out of is more training.
    more = songgen.train(songs_file, config=tiny_config(patience=6, steps=5), resume=True,
                         quiet=True)
    assert not more.complete_already and more.step == 5


def test_the_demo_run_goes_on_when_trained_again(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = songgen.TrainConfig(seq_len=16, batch_size=4, device="cpu", threads=1, steps=2)
    first = songgen.train(model=MODEL, config=config, quiet=True)
    assert first.step == 2
    again = songgen.train(model=MODEL, config=config, quiet=True)
    assert again.complete_already and again.step == 2
    capsys.readouterr()
    more = songgen.train(model=MODEL, config=songgen.TrainConfig(
        seq_len=16, batch_size=4, device="cpu", threads=1), more_steps=1, quiet=True)
    assert more.step == 3 and step_of("checkpoints") == 3
    # Said even when quiet: the caller did not ask for the resume by name.
    assert capsys.readouterr().err == ("checkpoints holds the demo run: going on with it (as "
                                       "with --resume)\n")


def test_init_from_a_folder_starts_from_its_best_checkpoint(songs_file, tiny_config,
                                                            tmp_path):
    songgen.train(songs_file, model=MODEL, config=tiny_config(steps=2), quiet=True)
    tuned = tiny_config(steps=1, checkpoint_dir=str(tmp_path / "tuned"))
    songgen.train(songs_file, config=tuned, init_from=tiny_config().checkpoint_dir,
                  quiet=True)
    recorded = ckpt.load(tmp_path / "tuned" / "last.pt").init_from["path"]
    assert recorded == str((tmp_path / "ckpt" / "best.pt").resolve())


def test_leaving_the_worker_is_for_torchrun_workers_only(monkeypatch):
    from songgen.training.team import leave_worker

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert leave_worker() is None  # this process goes on (under torchrun it would end here)
