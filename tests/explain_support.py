"""A tiny trained run and a text to explain, shared by the explain tests and the page's browser
tests; the command line, invoked."""

import pytest
from click.testing import CliRunner

from songgen.cli.commands import cli

from .conftest import make_songs


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny trained run (two layers) and a text of several thousand characters to explain."""
    root = tmp_path_factory.mktemp("explain")
    corpus = root / "songs.txt"
    corpus.write_text(make_songs(), encoding="utf-8")
    from songgen import TrainConfig, train

    config = TrainConfig(seq_len=16, batch_size=4, eval_every=10, device="cpu", patience=0,
                         checkpoint_dir=str(root / "ck"), steps=20, seed=0)
    train(corpus, model={"embed_dim": 8, "hidden_size": 16, "layers": 2, "dropout": 0.0},
          config=config, quiet=True)
    text = root / "other.txt"
    text.write_text(make_songs(12, seed=5), encoding="utf-8")
    return root


def invoke(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)
