"""Two runs of the same model to compare: one straight through, one stopped and resumed."""

import torch

from songgen.training.loop import train


def straight_and_resumed(songs_file, tiny_model, tiny_config, tmp_path, between=None):
    """last.pt of a 30-step run, and of the same run stopped at 7 and 23 and resumed to 30;
    `between()` runs before each resume (the machine changing under the run)."""
    train(songs_file, model=tiny_model, config=tiny_config(steps=30, checkpoint_dir=str(
        tmp_path / "a")), quiet=True)
    for stop in (7, 23, 30):
        if stop != 7 and between:
            between()
        train(songs_file, model=tiny_model, config=tiny_config(
            steps=stop, checkpoint_dir=str(tmp_path / "b")), resume=stop != 7, quiet=True)
    return [torch.load(tmp_path / run / "last.pt", weights_only=True) for run in "ab"]


def assert_same(a, b):
    for name, value in a["model_state"].items():
        assert torch.equal(b["model_state"][name], value), name
    assert a["step"] == b["step"] == 30
