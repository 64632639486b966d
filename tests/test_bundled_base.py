"""The base model that ships in the package (songgen/base/verse.pt): intact, small enough for a
wheel, and what `songgen sample` writes with on a fresh install. The rest of the suite runs
with no base model ($SONGGEN_BASE_MODEL set empty by conftest), so that tiny test models train
and sample as before; these tests lift that."""

from __future__ import annotations

import importlib.resources

import pytest
from click.testing import CliRunner

from songgen.run import basemodel
from songgen.cli.commands import cli


@pytest.fixture
def bundled(monkeypatch):
    monkeypatch.delenv(basemodel.ENV, raising=False)
    path = basemodel.bundled()
    assert path is not None, "songgen/base/verse.pt is missing from the package"
    return path


def test_the_package_ships_an_intact_base_model_small_enough_for_a_wheel(bundled):
    assert bundled == importlib.resources.files("songgen") / "base" / basemodel.FILE
    assert bundled.stat().st_size < 15 * 1024**2
    base = basemodel.load()
    # Verified against its checksum on load; packed: no optimiser state travels with it.
    assert base.checkpoint.optimizer_state in (None, {})
    assert base.checkpoint.model_config.hidden_size >= 256


def test_sample_with_no_run_writes_a_whole_song_with_the_base_model(bundled, tmp_path,
                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["sample", "--seed", "5", "--length", "1200"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        "no run in checkpoints: writing with songgen's base model verse (public-domain verse); "
        "to write like your songs: songgen train TEXT")
    song = result.stdout
    assert song.startswith("# ") and "\n\n" in song
    words = song.split()
    assert len(words) > 20
