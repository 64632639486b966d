"""Issue #14: defaults that adapt to the corpus and the time given. The choices as pure
functions, the header lines that say them, flags that win over them, the schedule's state
across a resume, and checkpoints from before."""

from __future__ import annotations

import json
import os

import pytest
import torch
from click.testing import CliRunner

from songgen import checkpoint as ckpt
from songgen.cli import cli
from songgen.defaults import (FLOOR, LOWEST, LrSchedule, budget_factor, choose_dropout,
                              choose_schedule, choose_weight_decay, corpus_tier)
from songgen.training import train

from .conftest import make_songs

OLD = os.path.join(os.path.dirname(__file__), "fixtures", "checkpoint-v1-0.1.0.pt")

MODEL = ["--embed-dim", "8", "--hidden-size", "16", "--layers", "1", "--device", "cpu"]
TINY = [*MODEL, "--seq-len", "16", "--batch-size", "4"]


# -- the choices, as pure functions -------------------------------------------------------------

def test_a_smaller_corpus_for_the_model_gets_more_dropout_and_weight_decay():
    params = 880_000
    dropouts = [choose_dropout(chars, params).value
                for chars in (50_000, 230_000, 900_000, 3_000_000, 30_000_000)]
    decays = [choose_weight_decay(chars, params).value
              for chars in (50_000, 230_000, 900_000, 3_000_000, 30_000_000)]
    assert dropouts == [0.4, 0.3, 0.2, 0.1, 0.0]
    assert decays == [0.05, 0.05, 0.02, 0.01, 0.01]
    # The same text for a model ten times larger is a smaller corpus for it.
    assert choose_dropout(3_000_000, 8_800_000).value > choose_dropout(3_000_000, params).value


def test_each_choice_says_why_with_the_sizes():
    assert choose_dropout(230_000, 880_000).line() == (
        "dropout 0.3: small corpus, 0.23 M characters for 0.88 M parameters (0.26 a parameter)")
    assert choose_weight_decay(2_700_000, 880_000).line() == (
        "weight decay 0.01: large corpus, 2.7 M characters for 0.88 M parameters "
        "(3.1 a parameter)")
    assert corpus_tier(9_000, 2_700)[0] == "large corpus"
    assert "9 k characters for 2.7 k parameters" in corpus_tier(9_000, 2_700)[3]


def test_the_schedule_follows_the_time_limit_not_the_step_limit():
    auto = choose_schedule("auto", time_limit=120, steps=None, patience=5)
    assert auto.value == "budget"
    assert auto.reason.startswith("a time limit of 2 min: constant, then down to 5% over the "
                                  "last 30% of the 2 min time limit; halved after 2 "
                                  "evaluations without improvement, down to 1/8; stopping "
                                  "after 5 evaluations without improvement at the lowest")
    assert choose_schedule("auto", time_limit=None, steps=5000, patience=5).value == "plateau"
    assert choose_schedule("auto", time_limit=None, steps=None, patience=0).reason == (
        "no time limit: halved after 2 evaluations without improvement, down to 1/8; never "
        "stopping early")
    assert choose_schedule("budget", time_limit=None, steps=5000, patience=5).value == "budget"
    assert "5,000-step limit" in choose_schedule("budget", time_limit=None, steps=5000,
                                                 patience=5).reason
    assert choose_schedule("budget", time_limit=None, steps=None, patience=5).value == "plateau"
    assert choose_schedule("none", time_limit=60, steps=None, patience=5).value == "none"
    assert choose_schedule("plateau", time_limit=60, steps=None, patience=5).value == "plateau"


def test_the_budget_decay_is_flat_then_falls_to_the_floor():
    assert budget_factor(0) == budget_factor(0.7) == 1.0
    assert budget_factor(0.85) == pytest.approx(1 - (1 - FLOOR) / 2)
    assert budget_factor(1.0) == budget_factor(1.5) == pytest.approx(FLOOR)


def test_plateau_halves_then_stops_only_at_the_lowest_rate():
    schedule = LrSchedule(kind="plateau")
    events = [schedule.evaluated(v) for v in (3.0, 2.9, 2.95, 2.95)]
    assert events == ["better", "better", None, "halved"] and schedule.scale == 0.5
    for _ in range(4):  # two more halvings: 1/4, 1/8
        schedule.evaluated(3.0)
    assert schedule.scale == LOWEST and schedule.bad == 0
    assert not schedule.exhausted(patience=3)
    for _ in range(3):
        assert schedule.evaluated(3.0) is None  # never below the lowest
    assert schedule.exhausted(patience=3) and not schedule.exhausted(patience=0)
    assert schedule.evaluated(2.0) == "better" and schedule.scale == LOWEST
    fixed = LrSchedule(kind="none")
    for v in (3.0, 3.1, 3.1):
        fixed.evaluated(v)
    assert fixed.scale == 1 and fixed.exhausted(patience=2)
    budget = LrSchedule(kind="budget", scale=0.5)
    assert budget.factor(0.0) == 0.5 and budget.factor(1.0) == pytest.approx(0.5 * FLOOR)
    assert LrSchedule(kind="plateau", scale=0.5).factor(1.0) == 0.5


# -- the header, the checkpoint, flags that win ---------------------------------------------------

@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "songs.txt").write_text(make_songs(), encoding="utf-8")
    runner = CliRunner()

    def invoke(*args):
        result = runner.invoke(cli, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return result

    return invoke


def last(folder="checkpoints"):
    return torch.load(os.path.join(folder, "last.pt"), weights_only=True)


def test_the_header_says_each_automatic_choice_and_the_checkpoint_keeps_it(run):
    result = run("train", "songs.txt", *TINY, "--hidden-size", 96, "--steps", 10,
                 "--eval-every", 5)
    state = last()
    params = sum(t.numel() for t in state["model_state"].values())
    chars = int(result.stderr.split("train ")[1].split(" /")[0].replace(",", ""))
    dropout, decay = choose_dropout(chars, params), choose_weight_decay(chars, params)
    # About 11 k characters for 45 k parameters.
    assert corpus_tier(chars, params)[0] == "small corpus"
    assert dropout.value == 0.3 and decay.value == 0.05
    lines = result.stderr.splitlines()
    assert dropout.line() in lines and decay.line() in lines
    assert ("learning-rate schedule plateau: no time limit: halved after 2 evaluations without "
            "improvement, down to 1/8; stopping after 5 evaluations without improvement at the "
            "lowest") in lines
    assert state["model_config"]["dropout"] == 0.3
    assert state["train_config"]["weight_decay"] == 0.05
    assert state["train_config"]["lr_schedule"] == "auto"
    assert state["choices"]["dropout"] == {"value": 0.3, "reason": dropout.reason}
    assert state["choices"]["learning-rate schedule"]["value"] == "plateau"
    assert state["schedule"]["kind"] == "plateau" and state["schedule"]["bad"] == state["bad_evals"]
    assert state["optimizer_state"]["param_groups"][0]["weight_decay"] == 0.05
    info = run("info", "checkpoints/last.pt")
    assert f"chosen       dropout 0.3: {dropout.reason}" in info.output


def test_flags_given_win_over_the_automatic_choices(run):
    result = run("train", "songs.txt", *TINY, "--hidden-size", 96, "--steps", 5, "--dropout", 0.1,
                 "--weight-decay", 0.03, "--lr-schedule", "none", "--time-limit", "1h")
    assert "dropout 0." not in result.stderr and "weight decay 0." not in result.stderr
    assert ("learning-rate schedule none: as asked: a fixed learning rate, stopping after 5 "
            "evaluations without improvement") in result.stderr
    state = last()
    assert state["model_config"]["dropout"] == 0.1
    assert state["train_config"]["weight_decay"] == 0.03
    assert set(state["choices"]) == {"learning-rate schedule"}
    assert state["optimizer_state"]["param_groups"][0]["lr"] == 0.003


def test_the_library_chooses_what_it_is_not_given(songs_file, tiny_config):
    result = train(songs_file, model={"embed_dim": 8, "hidden_size": 96, "layers": 1},
                   config=tiny_config(steps=5), quiet=True)
    state = torch.load(result.checkpoint_dir / "last.pt", weights_only=True)
    assert state["model_config"]["dropout"] == 0.3
    assert state["train_config"]["weight_decay"] == 0.05
    assert set(state["choices"]) == {"dropout", "weight decay", "learning-rate schedule"}


def test_a_time_limit_ends_the_run_at_a_low_learning_rate(songs_file, tiny_model, tiny_config):
    result = train(songs_file, model=tiny_model, quiet=True,
                   config=tiny_config(time_limit=1.5, eval_every=20, log_every=2))
    history = torch.load(result.checkpoint_dir / "last.pt", weights_only=True)["history"]
    assert result.stopped_because == "reached the time limit"
    assert history[0]["lr"] == 0.003
    assert history[-1]["lr"] < 0.003 * 0.3


def test_a_step_budget_asked_for_decays_to_its_last_step(songs_file, tiny_model, tiny_config,
                                                         monkeypatch):
    import itertools

    import songgen.training

    scores = itertools.count()  # validation improves at every evaluation: no halving
    monkeypatch.setattr(songgen.training, "evaluate", lambda *a, **k: 3.0 - next(scores) / 100)
    result = train(songs_file, model=tiny_model, quiet=True,
                   config=tiny_config(steps=40, eval_every=10, lr_schedule="budget"))
    lrs = [h["lr"] for h in torch.load(result.checkpoint_dir / "last.pt",
                                       weights_only=True)["history"]]
    # The rate of the step just made: flat to 70% of the budget, then down towards 5%.
    assert lrs[:2] == [0.003, 0.003]
    assert lrs[2] == pytest.approx(0.003 * budget_factor(29 / 40))
    assert lrs[3] == pytest.approx(0.003 * budget_factor(39 / 40))


# -- the schedule across a resume -----------------------------------------------------------------

@pytest.fixture
def flat_validation(monkeypatch):
    """Validation that never improves after its first score: the plateau schedule halves the
    learning rate every second evaluation."""
    import songgen.training

    monkeypatch.setattr(songgen.training, "evaluate", lambda *a, **k: 3.0)


def test_the_schedule_state_survives_a_resume_bit_identically(flat_validation,
                                                              straight_and_resumed):
    # Stopped between evaluations: the evaluation made at the stop does not count.
    a, b = straight_and_resumed
    # Evaluations at 5, 10, ... 30: halved after the 3rd and the 5th.
    assert a["schedule"] == b["schedule"] == {"kind": "plateau", "scale": 0.25, "bad": 1,
                                              "best": 3.0}
    assert [h["lr"] for h in a["history"]] == [0.003, 0.003, 0.003, 0.0015, 0.0015, 0.00075]
    assert a["optimizer_state"]["param_groups"][0]["lr"] == 0.00075
    for name in a["model_state"]:
        assert torch.equal(a["model_state"][name], b["model_state"][name]), name
    assert torch.equal(a["optimizer_state"]["state"][0]["exp_avg"],
                       b["optimizer_state"]["state"][0]["exp_avg"])


def test_early_stopping_waits_for_the_lowest_learning_rate(songs_file, tiny_model, tiny_config,
                                                           flat_validation):
    result = train(songs_file, model=tiny_model, quiet=True,
                   config=tiny_config(steps=500, patience=2))
    # 1 better, then 3 halvings of 2 evaluations each, then 2 at the lowest rate.
    assert result.step == 5 * (1 + 3 * 2 + 2)
    assert result.stopped_because == ("validation loss stopped improving for 2 evaluations at "
                                      "the lowest learning rate (0.000375)")
    old = train(songs_file, model=tiny_model, quiet=True, config=tiny_config(
        steps=500, patience=2, lr_schedule="none", checkpoint_dir=result.checkpoint_dir.as_posix()
        + "-old"))
    assert old.step == 5 * 3 and old.stopped_because == ("validation loss stopped improving "
                                                         "for 2 evaluations")


def test_a_learning_rate_given_on_resume_starts_the_schedule_again(run, monkeypatch):
    import songgen.training

    monkeypatch.setattr(songgen.training, "evaluate", lambda *a, **k: 3.0)
    run("train", "songs.txt", *TINY, "--steps", 20, "--eval-every", 5)
    assert last()["schedule"]["scale"] == 0.5
    result = run("train", "songs.txt", *TINY, "--steps", 21, "--eval-every", 5, "--resume",
                 "--lr", 0.002)
    assert "changed on resume: learning rate 0.003 -> 0.002\n" in result.stderr
    assert last()["optimizer_state"]["param_groups"][0]["lr"] == 0.002
    again = run("train", "songs.txt", *TINY, "--steps", 22, "--resume", "--lr-schedule", "none")
    assert "changed on resume: learning-rate schedule auto -> none\n" in again.stderr
    assert last()["train_config"]["lr_schedule"] == "none"


# -- checkpoints from before ----------------------------------------------------------------------

def test_a_checkpoint_from_before_schedules_keeps_its_fixed_learning_rate():
    loaded = ckpt.load(OLD)
    assert loaded.train_config.lr_schedule == "none"
    assert loaded.schedule is None and loaded.choices is None
    assert LrSchedule.from_dict(loaded.schedule, "none", bad=loaded.bad_evals,
                                best=loaded.best_val_loss).scale == 1.0


def test_an_old_run_resumes_with_a_fixed_learning_rate(songs_file, tiny_model, tiny_config,
                                                       tmp_path):
    """A run written before #14: its checkpoint has no schedule, no choices and no
    lr_schedule in its options (removed here from a new one), and resumes as it trained."""
    folder = tmp_path / "old"
    train(songs_file, model=tiny_model, config=tiny_config(steps=5, checkpoint_dir=str(folder),
                                                           weight_decay=0.01), quiet=True)
    state = torch.load(folder / "last.pt", weights_only=True)
    for key in ("schedule", "choices", "checksum"):
        state.pop(key)
    del state["train_config"]["lr_schedule"]
    torch.save(state, folder / "last.pt")
    result = train(songs_file, model=tiny_model, quiet=True,
                   config=tiny_config(steps=10, checkpoint_dir=str(folder)), resume=True)
    assert result.step == 10
    again = torch.load(folder / "last.pt", weights_only=True)
    assert again["train_config"]["lr_schedule"] == "none"
    assert again["schedule"]["kind"] == "none"
    json.dumps(again["choices"])  # plain values only
