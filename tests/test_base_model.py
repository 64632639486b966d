"""songgen's bundled base model (#31): `sample` with no run writes with it, a new run on a small
text starts from it (the header says so, and why), `--from-scratch` does not, a resume goes on
as its run began, and a damaged or missing base model is said in one line.

The tests build a tiny base model of their own (a few steps of songgen's own training) and
point songgen at it with $SONGGEN_BASE_MODEL (docs/development.md)."""

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import songgen
from songgen.run import basemodel
from songgen.training import plan
from songgen.run.checkpoint import load
from songgen.cli.commands import cli

from .conftest import make_songs
from .resume_support import assert_same, straight_and_resumed

BASE_SHAPE = {"embed_dim": 8, "hidden_size": 16, "layers": 1, "dropout": 0.1}
# Characters the base model never saw (its songs are lower-case words, titles and digits).
NEW_SONG = "# Zoë at the Quay\n\nzoë sang é and q\nat the quay of jazz\n"
TRAIN = ["--steps", "3", "--seq-len", "16", "--batch-size", "4", "--device", "cpu",
         "--threads", "1", "--precision", "fp32"]


@pytest.fixture(scope="module")
def base_file(tmp_path_factory) -> Path:
    """A tiny base model, trained here with songgen's own API, as the lead trains the real one,
    and packed as one is bundled."""
    from songgen.config import TrainConfig

    folder = tmp_path_factory.mktemp("base")
    text = folder / "verse.txt"
    text.write_text(make_songs(30, seed=5), encoding="utf-8")
    config = TrainConfig(steps=8, seq_len=16, batch_size=4, eval_every=4, device="cpu",
                         threads=1, precision="fp32", checkpoint_dir=str(folder / "run"))
    songgen.train(text, model=BASE_SHAPE, config=config, from_scratch=True, quiet=True)
    return basemodel.pack(folder / "run" / "best.pt", folder / "verse.pt")


@pytest.fixture
def with_base(base_file, monkeypatch):
    monkeypatch.setenv(basemodel.ENV, str(base_file))
    return base_file


@pytest.fixture
def text(tmp_path) -> Path:
    path = tmp_path / "mine.txt"
    path.write_text(make_songs(20) + "\n\n" + NEW_SONG, encoding="utf-8")
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def start_line(base_file: Path, text: Path) -> str:
    b = load(base_file)
    return (f"start base model verse: a text under {plan.BASE_MODEL_BELOW:,} characters "
            f"({text.stat().st_size:,} bytes) learns more from a model that has read verse "
            "already than from scratch; it brings its size and dropout: 1x16 LSTM, embedding 8, "
            f"dropout 0.1, {len(b.vocab)} symbols")


# -- sample ----------------------------------------------------------------------------------

def test_sample_with_no_run_writes_with_the_base_model_and_says_so(with_base, tmp_path,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)  # no checkpoints/ here
    result = run("sample", "--seed", "3", "--length", "150")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        "no run in checkpoints: writing with songgen's base model verse (public-domain verse); "
        "to write like your songs: songgen train TEXT")
    same = run("sample", with_base, "--seed", "3", "--length", "150")
    assert result.stdout == same.stdout and result.stdout.strip()
    assert "base model" not in same.stderr  # a model given is the model used


def test_sample_with_a_run_uses_the_run(with_base, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "best.pt").write_bytes(with_base.read_bytes())
    result = run("sample", "--seed", "3", "--length", "50")
    assert result.exit_code == 0, result.output
    assert "base model" not in result.stderr


def test_sample_with_no_run_and_no_base_model_asks_for_a_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # $SONGGEN_BASE_MODEL is empty: none bundled
    result = run("sample")
    assert result.exit_code == 1
    assert result.stderr == ("Error: no run in checkpoints (no best.pt or last.pt) and no "
                             "base model is bundled with this installation of songgen; train "
                             "a model first (songgen train TEXT) or give a checkpoint path\n")


# -- train: where a run starts ---------------------------------------------------------------

def test_a_small_text_starts_from_the_base_model_its_vocabulary_grown(with_base, text,
                                                                      tmp_path):
    result = run("train", text, "--checkpoint-dir", tmp_path / "ck", *TRAIN)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == start_line(with_base, text)
    base = load(with_base)
    new = sorted(set(text.read_text(encoding="utf-8")) - set(base.vocab))
    assert {"Z", "Q", "ë", "é"} <= set(new)
    assert lines[1] == (f"fine-tuning from the base model verse (step {base.step}), keeping its "
                        f"size (1x16 LSTM, embedding 8) and dropout 0.1; {len(new)} "
                        "new characters added to its vocabulary")
    run_ck = load(tmp_path / "ck" / "last.pt")
    # The base model's characters keep their places; the new ones come after them.
    assert run_ck.vocab == base.vocab + new
    assert run_ck.model_config.hidden_size == 16 and run_ck.model_config.dropout == 0.1
    assert run_ck.init_from["base_model"] == "verse"
    assert run_ck.init_from["checksum"] == base.checksum
    assert run_ck.choices["start"]["value"] == "base model verse"
    assert run_ck.corpus == str(text)  # the copy check reads the user's text, not the base's
    info = run("info", tmp_path / "ck")
    assert (f"fine-tuned   from songgen's base model verse (step {base.step}, "
            f"{base.checksum})") in info.stdout


def test_the_base_model_weights_are_where_the_run_starts(with_base, text, tmp_path,
                                                         monkeypatch):
    """The weights a run starts from are the base model's, grown by fresh rows only for the
    new characters."""
    from songgen.training.state import TrainState

    seen = {}
    original = TrainState._initial_weights

    def spy(self):
        seen["weights"] = original(self)
        return seen["weights"]

    monkeypatch.setattr(TrainState, "_initial_weights", spy)
    run("train", text, "--checkpoint-dir", tmp_path / "ck", *TRAIN)
    base = load(with_base)
    rows = len(base.vocab)
    for name, value in base.model_state.items():
        start = seen["weights"][name]
        if name in ("embed.weight", "head.weight", "head.bias"):
            start = start[:rows]
        assert torch.equal(start, value), name


def test_from_scratch_starts_a_new_model(with_base, text, tmp_path):
    result = run("train", text, "--checkpoint-dir", tmp_path / "ck", "--from-scratch",
                 "--hidden-size", "16", *TRAIN)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == "start from scratch: as asked"
    saved = load(tmp_path / "ck" / "last.pt")
    assert saved.init_from is None and saved.vocab == sorted(saved.vocab)
    assert saved.choices["start"] == {"value": "from scratch", "reason": "as asked"}


def test_a_model_of_another_shape_asked_for_starts_from_scratch(with_base, text, tmp_path):
    result = run("train", text, "--checkpoint-dir", tmp_path / "ck", "--hidden-size", "12",
                 *TRAIN)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        "start from scratch: the model asked for (hidden size 12) is not the base model verse's "
        f"(1x16 LSTM, embedding 8, dropout 0.1, {len(load(with_base).vocab)} symbols)")
    assert load(tmp_path / "ck" / "last.pt").model_config.hidden_size == 12


def test_a_large_text_starts_from_scratch(with_base, text, tmp_path, monkeypatch):
    monkeypatch.setattr(plan, "BASE_MODEL_BELOW", 1000)
    result = run("train", text, "--checkpoint-dir", tmp_path / "ck", "--hidden-size", "16",
                 *TRAIN)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        f"start from scratch: a text of {text.stat().st_size:,} bytes is at least 1,000 "
        "characters long, enough to train a model of its own")


def test_from_scratch_with_init_from_is_a_usage_error(with_base, text, tmp_path):
    result = run("train", text, "--from-scratch", "--init-from", with_base)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: --from-scratch and --init-from cannot be combined; a run starts from a new "
        "model or from the one given, not both")
    assert not (tmp_path / "checkpoints").exists()


def test_no_bundled_base_model_falls_back_to_scratch_in_one_line(text, tmp_path):
    result = run("train", text, "--checkpoint-dir", tmp_path / "ck", "--hidden-size", "16",
                 *TRAIN)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        "start from scratch: no base model is bundled with this installation of songgen")
    assert load(tmp_path / "ck" / "last.pt").init_from is None


def test_the_demo_run_fine_tunes_the_base_model(with_base, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("train", *TRAIN)
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("start base model verse: a text under")
    assert load(tmp_path / "checkpoints" / "last.pt").init_from["base_model"] == "verse"


def test_styles_grow_on_the_base_model(with_base, tmp_path):
    for name, seed in (("cowboy", 1), ("burns", 2)):
        (tmp_path / "lyrics" / name).mkdir(parents=True)
        (tmp_path / "lyrics" / name / "songs.txt").write_text(make_songs(12, seed=seed))
    result = run("train", tmp_path / "lyrics", "--checkpoint-dir", tmp_path / "ck", *TRAIN)
    assert result.exit_code == 0, result.output
    saved = load(tmp_path / "ck" / "last.pt")
    assert saved.init_from["base_model"] == "verse" and saved.model_config.styles == 2


# -- a damaged base model --------------------------------------------------------------------

@pytest.fixture
def damaged_base(base_file, tmp_path, monkeypatch) -> Path:
    """The base model with one weight changed after its checksum was taken."""
    state = torch.load(base_file, weights_only=True)
    state["model_state"]["head.bias"][0] += 1.0
    path = tmp_path / "damaged" / "verse.pt"
    path.parent.mkdir()
    torch.save(state, path)
    monkeypatch.setenv(basemodel.ENV, str(path))
    return path


def test_a_damaged_base_model_is_named_as_such_by_train(damaged_base, text, tmp_path):
    result = run("train", text, "--checkpoint-dir", tmp_path / "ck", *TRAIN)
    assert result.exit_code == 1
    assert result.stderr == (f"Error: the bundled base model verse ({damaged_base}) is damaged: "
                             "its contents do not match its checksum; reinstall songgen, or "
                             "train without it: add --from-scratch\n")
    again = run("train", text, "--checkpoint-dir", tmp_path / "ck", "--from-scratch", *TRAIN,
                "--hidden-size", "16")
    assert again.exit_code == 0, again.output


def test_a_damaged_base_model_is_named_as_such_by_sample(damaged_base, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("sample")
    assert result.exit_code == 1
    assert result.stderr == (f"Error: the bundled base model verse ({damaged_base}) is damaged: "
                             "its contents do not match its checksum; reinstall songgen, or "
                             "train a model of your own: songgen train TEXT --from-scratch\n")


# -- resume ----------------------------------------------------------------------------------

def test_a_run_started_from_the_base_model_resumes_exactly_without_it(
        with_base, text, tiny_config, tmp_path, monkeypatch):
    """Resumed twice, the second time with the base model damaged: a resume never reads it."""
    gone = tmp_path / "gone.pt"
    gone.write_bytes(b"not a model")
    a, b = straight_and_resumed(text, {}, lambda **o: tiny_config(precision="fp32", **o),
                                tmp_path, between=lambda: monkeypatch.setenv(basemodel.ENV,
                                                                             str(gone)))
    assert a["init_from"]["base_model"] == b["init_from"]["base_model"] == "verse"
    assert_same(a, b)


def test_a_run_from_before_the_base_model_resumes_as_it_was_created(
        base_file, text, tiny_config, tmp_path, monkeypatch):
    """A run made from scratch (no base model then), of the base model's shape, goes on from
    scratch once there is one."""
    a, b = straight_and_resumed(text, BASE_SHAPE, lambda **o: tiny_config(precision="fp32", **o),
                                tmp_path, between=lambda: monkeypatch.setenv(basemodel.ENV,
                                                                             str(base_file)))
    assert a["init_from"] is None and b["init_from"] is None
    assert_same(a, b)


# -- finding it, and the studio --------------------------------------------------------------

def test_the_bundled_file_is_looked_for_inside_the_installed_package(base_file, tmp_path,
                                                                      monkeypatch):
    import importlib.resources

    monkeypatch.delenv(basemodel.ENV)
    installed = tmp_path / "site-packages" / "songgen"
    (installed / "base").mkdir(parents=True)
    monkeypatch.setattr(importlib.resources, "files",
                        lambda package: installed if package == "songgen" else None)
    assert basemodel.bundled() is None and basemodel.load() is None
    (installed / "base" / "verse.pt").write_bytes(base_file.read_bytes())
    assert basemodel.bundled() == installed / "base" / "verse.pt"
    assert basemodel.load().checkpoint.checksum == load(base_file).checksum


def test_the_source_tree_ships_the_base_folder_and_its_readme():
    assert (Path(songgen.__file__).parent / "base" / "README.md").is_file()


def test_pack_never_overwrites_a_file(base_file):
    with pytest.raises(songgen.SonggenError, match="already exists"):
        basemodel.pack(base_file, base_file)


def test_the_studio_lists_the_base_model_beside_the_runs_and_writes_with_it(with_base,
                                                                            tmp_path):
    from .studio_support import Client, studio

    (tmp_path / "runs").mkdir()
    with studio(tmp_path / "runs") as server:
        client = Client(server)
        status, data = client.get("/api/models")
        assert status == 200
        [entry] = data["models"]
        assert entry["name"] == "base model: verse" and entry["base"] and entry["run"] is None
        assert data["default"] == "base model: verse"
        status, evs = client.write({"model": "base model: verse", "num_songs": 1,
                                    "length": 60, "seed": 2})
        assert status == 200 and evs[-1][0] == "done"
        status, runs = client.get("/api/runs")
        assert runs["runs"] == []  # no curves: it is not a run


def test_pack_with_its_corpus_takes_the_measures_again(base_file, tmp_path):
    """A base model trains for hours; packed by a later songgen, it samples with that songgen's
    measures (taken again from the text it trained on), not the ones of the day it started."""
    from dataclasses import replace

    from songgen.run import checkpoint as ckpt

    stale = tmp_path / "stale.pt"
    ckpt.save(replace(ckpt.load(base_file), songcraft=None, shape=None, checksum=None), stale)
    packed = basemodel.pack(stale, tmp_path / "again.pt",
                            corpus=base_file.parent / "verse.txt")
    again = ckpt.load(packed)
    assert again.songcraft == ckpt.load(base_file).songcraft is not None
    assert again.shape == ckpt.load(base_file).shape is not None
    with pytest.raises(songgen.SonggenError, match="is not the text the checkpoint was trained on"):
        other = tmp_path / "other.txt"
        other.write_text(make_songs(12, seed=9), encoding="utf-8")
        basemodel.pack(stale, tmp_path / "wrong.pt", corpus=other)
