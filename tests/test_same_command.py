"""The same train command twice (#32): a run that has reached what it was asked for is
complete; starting it again says so in one line, succeeds and writes nothing."""

import os

import pytest
import torch
from click.testing import CliRunner

from songgen.run import checkpoint as ckpt
from songgen.cli.commands import cli
from songgen.training.schedule import LOWEST

from .conftest import make_songs

TINY = ["--embed-dim", "8", "--hidden-size", "16", "--layers", "1", "--seq-len", "16",
        "--batch-size", "4", "--threads", "1", "-q"]


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "songs.txt").write_text(make_songs(), encoding="utf-8")

    def invoke(*args):
        return CliRunner().invoke(cli, [str(a) for a in args])

    return invoke


def snapshot(folder):
    """Every file under `folder`: its bytes and modification time."""
    return {os.path.join(root, name): (open(os.path.join(root, name), "rb").read(),
                                       os.stat(os.path.join(root, name)).st_mtime_ns)
            for root, _, names in os.walk(folder) for name in names}


def test_the_same_command_again_on_a_finished_run_is_complete(run):
    first = run("train", "songs.txt", "--checkpoint-dir", "ck", "--steps", 6, *TINY)
    assert first.exit_code == 0, first.output
    before = snapshot("ck")
    again = run("train", "songs.txt", "--checkpoint-dir", "ck", "--steps", 6, *TINY,
                "--resume")
    assert again.exit_code == 0, again.output
    assert again.stderr == ("the run in ck is complete at step 6 (--steps 6); to train more, "
                            "use --more-steps N\n")
    assert again.stdout == ""
    assert snapshot("ck") == before
    fewer = run("train", "songs.txt", "--checkpoint-dir", "ck", "--steps", 4, *TINY, "--resume")
    assert fewer.exit_code == 1
    assert fewer.stderr == ("Error: the run in ck is at step 6 already, and --steps 4 counts "
                            "from the run's start; to train 4 steps more, use --more-steps 4 "
                            "(or --steps 10)\n")
    more = run("train", "songs.txt", "--checkpoint-dir", "ck", "--steps", 8, *TINY, "--resume")
    assert more.exit_code == 0, more.output
    assert torch.load("ck/last.pt", weights_only=True)["step"] == 8


def stop_early(folder):
    """Make the run in `folder` one whose early stop has fired: patience run out at the lowest
    learning rate, as a run without limits ends."""
    saved = ckpt.load(os.path.join(folder, "last.pt"))
    saved.schedule = {**(saved.schedule or {}), "scale": LOWEST, "bad": 5}
    saved.bad_evals = 5
    ckpt.save(saved, os.path.join(folder, "last.pt"))


def test_train_again_on_a_demo_run_that_stopped_early_is_complete(run):
    """`songgen train`, run again on the finished demo run, trained 5 more evaluations (125
    steps of the demo) that could not improve it."""
    first = run("train", *TINY, "--steps", 4)
    assert first.exit_code == 0, first.output
    stop_early("checkpoints")
    before = snapshot("checkpoints")
    again = run("train", *TINY)
    assert again.exit_code == 0, again.output
    assert again.stderr == (  # (not "going on with it" first: it does not)
        "the run in checkpoints is complete at step 4: validation loss stopped improving for 5 "
        "evaluations at the lowest learning rate; to train more, use --more-steps N\n")
    assert snapshot("checkpoints") == before
    # A patience of more evaluations, or more steps, trains on.
    more = run("train", *TINY, "--more-steps", 2)
    assert more.exit_code == 0, more.output
    assert torch.load("checkpoints/last.pt", weights_only=True)["step"] == 6


def test_resume_with_a_limit_still_trains_a_run_that_stopped_early(run):
    first = run("train", "songs.txt", "--checkpoint-dir", "ck", "--steps", 4, *TINY)
    assert first.exit_code == 0, first.output
    stop_early("ck")
    again = run("train", "--checkpoint-dir", "ck", "--resume", *TINY)
    assert again.exit_code == 0
    assert again.stderr.startswith("the run in ck is complete at step 4: validation loss")
    longer = run("train", "--checkpoint-dir", "ck", "--resume", "--steps", 6, *TINY)
    assert longer.exit_code == 0, longer.output
    assert torch.load("ck/last.pt", weights_only=True)["step"] == 6
