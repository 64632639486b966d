"""Issue #14: defaults that adapt to the corpus and the time given. The choices as pure
functions, the header lines that say them, flags that win over them, the schedule's state
across a resume, and checkpoints from before."""

from __future__ import annotations

import json
import os

import pytest
import torch
from click.testing import CliRunner

from songgen.run import checkpoint as ckpt
from songgen.cli.commands import cli
from songgen.training.defaults import (SEEN_PER_PARAMETER, choose_dropout, choose_lr,
                                      choose_schedule, choose_size, choose_weight_decay,
                                      corpus_tier)
from songgen.training.schedule import FLOOR, LOWEST, LrSchedule, budget_factor
from songgen.training.loop import train

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


def test_a_budget_that_reads_the_text_few_times_lowers_dropout():
    params, chars = 880_000, 82_500  # the demo songs: a very small corpus, dropout 0.4
    assert [choose_dropout(chars, params, passes).value
            for passes in (1, 10, 30, 100, None)] == [0.1, 0.2, 0.3, 0.4, 0.4]
    # Never above what the corpus size asks for.
    assert choose_dropout(3_000_000, params, passes=30).value == 0.1
    assert choose_dropout(0, params, passes=0).value == 0.1


def test_larger_models_take_a_smaller_learning_rate():
    assert [choose_lr(size).value for size in (16, 128, 256, 512, 1024)] == [
        0.006, 0.006, 0.006, 0.0021, 0.00075]
    assert choose_lr(1024).line() == ("learning rate 0.00075: 0.006 for 256 units, lower for "
                                      "1024: a larger model needs smaller steps")


# The parameters of a 2-layer model with embedding 64 and 62 characters, by hidden size.
PARAMETERS = {128: 224_062, 256: 857_662, 512: 3_353_662, 1024: 13_262_398}


def test_a_bigger_budget_trains_a_bigger_model():
    sizes = [choose_size(PARAMETERS, chars_per_step=3200, steps=steps).value
             for steps in (10, 100, 1_000, 3_000, 10_000, 100_000)]
    assert sizes == sorted(sizes)
    assert sizes[0] == 128 and sizes[-1] == 1024
    # Each size chosen is the largest whose parameters see enough characters.
    for steps in (1_000, 3_000, 10_000):
        size = choose_size(PARAMETERS, chars_per_step=3200, steps=steps).value
        assert steps * 3200 / PARAMETERS[size] >= SEEN_PER_PARAMETER
        if size < 1024:
            assert steps * 3200 / PARAMETERS[2 * size] < SEEN_PER_PARAMETER


def test_without_a_budget_the_size_is_the_default():
    choice = choose_size(PARAMETERS, chars_per_step=3200)
    assert choice.line() == "hidden size 256: no time or step limit: the default size"


def test_a_faster_machine_gets_a_bigger_model_for_the_same_minutes():
    slow = {128: 0.05, 256: 0.2, 512: 0.8, 1024: 3.2}   # a laptop: time grows with the size
    fast = {128: 0.01, 256: 0.01, 512: 0.011, 1024: 0.012}  # a GPU: about flat
    timed = []

    def on(machine):
        def step_seconds(size):
            timed.append(size)
            return machine[size]
        return step_seconds

    laptop = choose_size(PARAMETERS, chars_per_step=3200, seconds=120, step_seconds=on(slow))
    assert laptop.value == 256
    assert timed == [128, 256, 512]  # the sizes past the first too slow are not timed
    gpu = choose_size(PARAMETERS, chars_per_step=3200, seconds=120, step_seconds=on(fast))
    assert gpu.value == 1024
    assert laptop.line() == ("hidden size 256: 2 min at 200 ms a step train about 1.9 M "
                             "characters, 2.2 for each of its 0.86 M parameters (at least 1.5 "
                             "wanted)")


def test_a_step_limit_tighter_than_the_time_limit_decides():
    quick = lambda size: 0.001  # noqa: E731
    assert choose_size(PARAMETERS, chars_per_step=3200, seconds=3600, step_seconds=quick,
                       steps=200).value == 128


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
    # About 11 k characters for 45 k parameters: a small corpus, which 10 steps of 64
    # characters read only about 0.06 times, so dropout is kept low.
    dropout = choose_dropout(chars, params, passes=10 * 64 / chars)
    decay = choose_weight_decay(chars, params)
    assert corpus_tier(chars, params)[0] == "small corpus"
    assert choose_dropout(chars, params).value == 0.3
    assert dropout.value == 0.1 and decay.value == 0.05
    assert dropout.reason.endswith(f"; but the budget reads the text only about "
                                   f"{10 * 64 / chars:.2g} times")
    lines = result.stderr.splitlines()
    assert dropout.line() in lines and decay.line() in lines
    assert "learning rate 0.006: for a model of 96 units a layer" in lines
    assert ("learning-rate schedule plateau: no time limit (auto falls only over a time limit, "
            "not over the 10-step limit, which a resume often raises; the budget schedule falls "
            "over steps too): halved after 2 evaluations without improvement, down to 1/8; "
            "stopping after 5 evaluations without improvement at the lowest") in lines
    assert state["model_config"]["dropout"] == 0.1
    assert state["train_config"]["weight_decay"] == 0.05
    assert state["train_config"]["lr"] == 0.006
    assert state["train_config"]["lr_schedule"] == "auto"
    assert state["choices"]["dropout"] == {"value": 0.1, "reason": dropout.reason}
    assert state["choices"]["learning-rate schedule"]["value"] == "plateau"
    assert state["schedule"]["kind"] == "plateau" and state["schedule"]["bad"] == state["bad_evals"]
    assert state["optimizer_state"]["param_groups"][0]["weight_decay"] == 0.05
    info = run("info", "checkpoints/last.pt")
    # The start (from scratch, no base model bundled in tests) is listed first.
    assert "chosen       start from scratch: " in info.output
    assert "             learning rate 0.006: for a model of 96 units a layer" in info.output
    assert f"             dropout 0.1: {dropout.reason}" in info.output


def test_flags_given_win_over_the_automatic_choices(run):
    result = run("train", "songs.txt", *TINY, "--hidden-size", 96, "--steps", 5, "--dropout", 0.1,
                 "--weight-decay", 0.03, "--lr-schedule", "none", "--time-limit", "1h",
                 "--lr", 0.003)
    for chosen in ("dropout 0.", "weight decay 0.", "learning rate 0."):
        assert chosen not in result.stderr
    assert ("learning-rate schedule none: as asked: a fixed learning rate, stopping after 5 "
            "evaluations without improvement") in result.stderr
    state = last()
    assert state["model_config"]["dropout"] == 0.1
    assert state["train_config"]["weight_decay"] == 0.03
    # The precisions are always recorded: a resume reuses them whatever a probe says then.
    assert set(state["choices"]) == {"start", "learning-rate schedule", "precision",
                                     "sampling precision", "threads"}
    assert state["optimizer_state"]["param_groups"][0]["lr"] == 0.003


def test_the_library_chooses_what_it_is_not_given(songs_file, tiny_config):
    result = train(songs_file, model={"embed_dim": 8, "hidden_size": 96, "layers": 1},
                   config=tiny_config(steps=5), quiet=True)
    state = torch.load(result.checkpoint_dir / "last.pt", weights_only=True)
    assert state["model_config"]["dropout"] == 0.1  # the 5 steps read the text a tenth of a time
    assert state["train_config"]["weight_decay"] == 0.05
    assert state["train_config"]["lr"] == 0.006
    assert set(state["choices"]) == {"start", "dropout", "weight decay", "learning rate",
                                     "learning-rate schedule", "precision",
                                     "sampling precision", "threads"}


def test_a_budget_without_a_size_chooses_one_and_says_why(run):
    # A fresh run with a step limit and no --hidden-size: a budget this small gets the
    # smallest size, in the header, the checkpoint and `info`.
    result = run("train", "songs.txt", "--embed-dim", 8, "--layers", 1, "--device", "cpu",
                 "--seq-len", 16, "--batch-size", 4, "--steps", 3)
    state = last()
    assert state["model_config"]["hidden_size"] == 128
    reason = state["choices"]["hidden size"]["reason"]
    assert reason.startswith("3 steps train about 192 characters")
    assert f"hidden size 128: {reason}" in result.stderr.splitlines()
    # The dropout follows the size chosen (the size is chosen first).
    params = sum(t.numel() for t in state["model_state"].values())
    chars = int(result.stderr.split("train ")[1].split(" /")[0].replace(",", ""))
    assert state["choices"]["dropout"] == choose_dropout(chars, params, 3 * 64 / chars).to_dict()


def test_a_time_limit_times_the_sizes_on_this_machine(songs_file, tiny_config):
    result = train(songs_file, model={"embed_dim": 8, "layers": 1}, quiet=True,
                   config=tiny_config(time_limit=1))
    state = torch.load(result.checkpoint_dir / "last.pt", weights_only=True)
    choice = state["choices"]["hidden size"]
    assert choice["value"] == state["model_config"]["hidden_size"]
    assert choice["reason"].startswith("1 s at ") and " ms a step train about " in choice["reason"]


def test_a_size_given_is_kept_and_a_resume_keeps_the_chosen_one(run):
    run("train", "songs.txt", *TINY, "--steps", 2)
    assert "hidden size" not in last()["choices"]
    run("train", "songs.txt", "--embed-dim", 8, "--layers", 1, "--device", "cpu", "--seq-len", 16,
        "--batch-size", 4, "--steps", 2, "--checkpoint-dir", "chosen")
    assert last("chosen")["model_config"]["hidden_size"] == 128
    # Resumed with a far larger budget, the run keeps its model.
    run("train", "songs.txt", "--resume", "--steps", 100_000, "--time-limit", 1,
        "--checkpoint-dir", "chosen")
    assert last("chosen")["model_config"]["hidden_size"] == 128


def test_a_time_limit_ends_the_run_at_a_low_learning_rate(songs_file, tiny_model, tiny_config):
    result = train(songs_file, model=tiny_model, quiet=True,
                   config=tiny_config(time_limit=1.5, eval_every=20, log_every=2))
    history = torch.load(result.checkpoint_dir / "last.pt", weights_only=True)["history"]
    assert result.stopped_because == "reached the time limit"
    assert history[0]["lr"] == 0.006
    assert history[-1]["lr"] < 0.006 * 0.3


def test_a_step_budget_asked_for_decays_to_its_last_step(songs_file, tiny_model, tiny_config,
                                                         monkeypatch):
    import itertools

    import songgen.training.loop

    scores = itertools.count()  # validation improves at every evaluation: no halving
    monkeypatch.setattr(songgen.training.loop, "evaluate", lambda *a, **k: 3.0 - next(scores) / 100)
    result = train(songs_file, model=tiny_model, quiet=True,
                   config=tiny_config(steps=40, eval_every=10, lr_schedule="budget"))
    lrs = [h["lr"] for h in torch.load(result.checkpoint_dir / "last.pt",
                                       weights_only=True)["history"]]
    # The rate of the step just made: flat to 70% of the budget, then down towards 5%.
    assert lrs[:2] == [0.006, 0.006]
    assert lrs[2] == pytest.approx(0.006 * budget_factor(29 / 40))
    assert lrs[3] == pytest.approx(0.006 * budget_factor(39 / 40))


# -- the schedule across a resume -----------------------------------------------------------------

@pytest.fixture
def flat_validation(monkeypatch):
    """Validation that never improves after its first score: the plateau schedule halves the
    learning rate every second evaluation."""
    import songgen.training.loop

    monkeypatch.setattr(songgen.training.loop, "evaluate", lambda *a, **k: 3.0)


def test_the_schedule_state_survives_a_resume_bit_identically(flat_validation,
                                                              straight_and_resumed):
    # Stopped between evaluations: the evaluation made at the stop does not count.
    a, b = straight_and_resumed
    # Evaluations at 5, 10, ... 30: halved after the 3rd and the 5th.
    assert a["schedule"] == b["schedule"] == {"kind": "plateau", "scale": 0.25, "bad": 1,
                                              "best": 3.0}
    assert [h["lr"] for h in a["history"]] == [0.006, 0.006, 0.006, 0.003, 0.003, 0.0015]
    assert a["optimizer_state"]["param_groups"][0]["lr"] == 0.0015
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
                                      "the lowest learning rate (0.00075)")
    old = train(songs_file, model=tiny_model, quiet=True, config=tiny_config(
        steps=500, patience=2, lr_schedule="none", checkpoint_dir=result.checkpoint_dir.as_posix()
        + "-old"))
    assert old.step == 5 * 3 and old.stopped_because == ("validation loss stopped improving "
                                                         "for 2 evaluations")


def test_a_learning_rate_given_on_resume_starts_the_schedule_again(run, monkeypatch):
    import songgen.training.loop

    monkeypatch.setattr(songgen.training.loop, "evaluate", lambda *a, **k: 3.0)
    run("train", "songs.txt", *TINY, "--steps", 20, "--eval-every", 5)
    assert last()["schedule"]["scale"] == 0.5
    result = run("train", "songs.txt", *TINY, "--steps", 21, "--eval-every", 5, "--resume",
                 "--lr", 0.002)
    assert "changed on resume: learning rate 0.006 -> 0.002\n" in result.stderr
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
