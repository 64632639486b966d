"""Styles (issue 27): one model conditioned on a style per subfolder or {style: NAME} mark,
sampled in a style or a blend, validated per style, resumed exactly, fine-tuned with more."""

import json
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from songgen.run.trained import load_checkpoint, with_style
from songgen.cli.commands import cli
from songgen.config import ModelConfig
from songgen.text.cache import CorpusCache
from songgen.errors import CorpusError, SonggenWarning
from songgen.writing.sampling import generate
from songgen.text.corpus import load_corpus
from songgen.text.vocab import EOS
from songgen.model.lstm import CharLSTM
from songgen.model.style_input import unstyled, vector
from songgen.text.styles import StyleError, parse
from songgen.training.loop import train

from .conftest import make_songs
from .torchrun_support import TINY, assert_same_weights, needs_gloo, two_and_one

OLD = Path(__file__).parent / "fixtures" / "checkpoint-v1-0.1.0.pt"


def style_folder(root: Path, styles=("cowboy", "burns"), songs: int = 20) -> Path:
    for i, name in enumerate(styles):
        (root / name).mkdir(parents=True)
        (root / name / "songs.txt").write_text(make_songs(songs, seed=i), encoding="utf-8")
    return root


@pytest.fixture
def lyrics(tmp_path) -> Path:
    return style_folder(tmp_path / "lyrics")


@pytest.fixture
def styled_run(lyrics, tiny_model, tiny_config, tmp_path) -> Path:
    cfg = tiny_config(steps=10, checkpoint_dir=str(tmp_path / "run"))
    train(lyrics, model=tiny_model, config=cfg, quiet=True)
    return tmp_path / "run"


def song_texts(corpus, data) -> list[str]:
    return [s for s in corpus.vocab.decode(data).split(EOS) if s]


# -- where styles come from ----------------------------------------------------------------------

def test_each_subfolder_is_a_style_and_is_validated_on_its_own(lyrics):
    corpus = load_corpus(lyrics, val_frac=0.2)
    table = corpus.styles.table
    assert table.names == ["burns", "cowboy"]  # the order of the files: sorted
    assert table.songs == [20, 20]
    # Each style has its own stretch of the validation text, holding only its own songs.
    burns = set(make_songs(20, seed=1).strip().split("\n\n\n"))
    cowboy = set(make_songs(20, seed=0).strip().split("\n\n\n"))
    parts = {corpus.styles.name(s): (a, b) for s, a, b in corpus.styles.val_parts}
    assert set(parts) == {"burns", "cowboy"}
    for name, own in (("burns", burns), ("cowboy", cowboy)):
        a, b = parts[name]
        held_out = song_texts(corpus, corpus.val[a:b])
        assert held_out and set(held_out) <= own
    # No song is in both, and every song is in one.
    train_songs = song_texts(corpus, corpus.train)
    assert len(train_songs) + len(song_texts(corpus, corpus.val)) == 40
    assert not set(train_songs) & set(song_texts(corpus, corpus.val))


def test_a_folder_without_subfolders_has_no_styles_and_is_cut_as_before(tmp_path):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.txt").write_text(make_songs(20), encoding="utf-8")
    corpus = load_corpus(tmp_path / "flat")
    assert corpus.styles is None
    assert "styles" not in corpus.summary()


def test_style_marks_set_the_style_of_their_song_and_those_after_it(tmp_path):
    text = ("{style: Ballad}\n\n\n# One\n\nla la la\nla la\n\n\n# Two\n\ndum dum\ndum\n\n\n"
            "{style: Reel}\n# Three\n\nhey ho\nhey\n\n\n# Four\n\nho hey\nho\n")
    (tmp_path / "marks.txt").write_text(text, encoding="utf-8")
    corpus = load_corpus(tmp_path / "marks.txt", val_frac=0.5)
    assert corpus.styles.table.names == ["Ballad", "Reel"]
    assert corpus.styles.table.songs == [2, 2]
    # The marks are not lyrics.
    everything = corpus.vocab.decode(corpus.train) + corpus.vocab.decode(corpus.val)
    assert "{" not in everything and "style" not in everything


def test_styles_none_trains_one_mix(lyrics):
    assert load_corpus(lyrics, styles="none").styles is None


def test_the_corpus_cache_keeps_the_styles(lyrics, tmp_path):
    cache = CorpusCache(tmp_path / "cache")
    first = load_corpus(lyrics, cache=cache)
    again = load_corpus(lyrics, cache=cache)
    assert again.cached
    assert again.styles.table == first.styles.table
    assert torch.equal(again.train, first.train)


# -- the model ----------------------------------------------------------------------------------

def test_a_model_with_styles_starts_as_the_model_without_them():
    torch.manual_seed(0)
    plain = CharLSTM(ModelConfig(vocab_size=12, embed_dim=8, hidden_size=16, layers=1))
    torch.manual_seed(0)
    styled = CharLSTM(ModelConfig(vocab_size=12, embed_dim=8, hidden_size=16, layers=1, styles=3))
    own = styled.state_dict()
    assert set(own) - set(plain.state_dict()) == {"style.weight"}
    for name, value in plain.state_dict().items():
        assert torch.equal(own[name], value), name
    x = torch.randint(0, 12, (2, 9))
    plain.eval(), styled.eval()
    assert torch.equal(plain(x)[0], styled(x, None, torch.full_like(x, 2))[0])


def test_a_style_folded_into_the_embedding_is_the_styled_model():
    torch.manual_seed(1)
    model = CharLSTM(ModelConfig(vocab_size=12, embed_dim=8, hidden_size=16, layers=2,
                                 dropout=0.0, styles=2)).eval()
    torch.nn.init.normal_(model.style.weight)
    x = torch.randint(0, 12, (3, 10))
    for style in (0, 1, 2):
        folded = unstyled(model, {style: 1.0} if style else None)
        assert folded.config.styles == 0
        torch.testing.assert_close(folded(x)[0], model(x, None, torch.full_like(x, style))[0])
    # A blend mixes the style vectors.
    blend = parse("b=3,a=1", ["a", "b"])
    assert blend == {2: 0.75, 1: 0.25}
    torch.testing.assert_close(vector(model, blend),
                               0.25 * model.style.weight[1] + 0.75 * model.style.weight[2])


# -- training and sampling -----------------------------------------------------------------------

def test_training_logs_validation_per_style_and_keeps_the_styles(styled_run):
    record = json.loads((styled_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert set(record["val_styles"]) == {"burns", "cowboy"}
    parts = record["val_styles"].values()
    assert min(parts) <= record["val_loss"] <= max(parts)
    trained = load_checkpoint(styled_run)
    assert trained.checkpoint.styles["names"] == ["burns", "cowboy"]
    assert trained.full_model.config.styles == 2
    assert float(trained.full_model.style.weight[1:].detach().abs().sum()) > 0  # learnt


def test_resume_with_styles_is_bit_identical(lyrics, tiny_model, tiny_config, tmp_path):
    straight = tiny_config(steps=16, checkpoint_dir=str(tmp_path / "a"))
    train(lyrics, model=tiny_model, config=straight, quiet=True)
    for stop in (7, 16):
        cfg = tiny_config(steps=stop, checkpoint_dir=str(tmp_path / "b"))
        train(lyrics, model=tiny_model, config=cfg, resume=stop != 7, quiet=True)
    a, b = (torch.load(tmp_path / run / "last.pt", weights_only=True) for run in "ab")
    for name, value in a["model_state"].items():
        assert torch.equal(value, b["model_state"][name]), name
    assert a["styles"] == b["styles"]


def test_resume_refuses_songs_moved_to_another_style(lyrics, tiny_model, tiny_config, tmp_path):
    cfg = tiny_config(steps=5, checkpoint_dir=str(tmp_path / "run"))
    train(lyrics, model=tiny_model, config=cfg, quiet=True)
    (lyrics / "cowboy" / "songs.txt").rename(lyrics / "burns" / "zz.txt")
    with pytest.raises(CorpusError, match="styles have changed"):
        train(lyrics, model=tiny_model, config=tiny_config(
            steps=10, checkpoint_dir=str(tmp_path / "run")), resume=True, quiet=True)


def test_sampling_in_a_style_or_a_blend(styled_run):
    trained = load_checkpoint(styled_run)
    a = generate(trained, seed=3, length=200, style="cowboy")[0].text
    assert a == generate(trained, seed=3, length=200, style="cowboy")[0].text
    assert generate(trained, seed=3, length=200, style={"cowboy": 1.0})[0].text == a
    assert with_style(trained, "cowboy=0.5,burns=0.5").style == "cowboy=0.5,burns=0.5"
    # Each style is a different model to sample from.
    folded = [with_style(trained, s).model.embed.weight for s in ("cowboy", "burns")]
    assert not torch.equal(*folded)
    assert not torch.equal(folded[0], trained.model.embed.weight)


def test_sample_cli_style_and_unknown_style(styled_run):
    runner = CliRunner()
    ok = runner.invoke(cli, ["sample", str(styled_run), "--style", "burns", "--seed", "1",
                             "--length", "50", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout.splitlines()[0])["style"] == "burns"
    bad = runner.invoke(cli, ["sample", str(styled_run), "--style", "jazz"])
    assert bad.exit_code == 1
    assert bad.stderr == "Error: unknown style 'jazz'; the model knows: burns, cowboy\n"
    weight = runner.invoke(cli, ["sample", str(styled_run), "--style", "burns=-1"])
    assert weight.exit_code == 1 and "must be a number of 0 or more" in weight.stderr
    empty = runner.invoke(cli, ["sample", str(styled_run), "--style", ","])
    assert empty.exit_code == 1
    assert empty.stderr == ("Error: a style in ',' has no name; write a name, or a blend such "
                            "as burns=0.7,cowboy=0.3 (known: burns, cowboy)\n")


def test_info_and_eval_list_the_styles(styled_run, lyrics):
    runner = CliRunner()
    info = runner.invoke(cli, ["info", str(styled_run)])
    assert "styles       2: burns (20 songs" in info.output
    scored = runner.invoke(cli, ["eval", str(lyrics), "--checkpoint", str(styled_run), "--json"])
    assert scored.exit_code == 0, scored.output
    assert set(json.loads(scored.stdout)["styles"]) == {"burns", "cowboy"}


def test_a_model_without_styles_refuses_a_style_and_old_checkpoints_load():
    trained = load_checkpoint(OLD)
    assert trained.full_model is trained.model and trained.model.config.styles == 0
    with pytest.raises(StyleError, match="trained without styles"):
        with_style(trained, "cowboy")
    assert with_style(trained, None) is trained


def test_fine_tuning_keeps_the_styles_and_adds_the_new_one(styled_run, tiny_model, tiny_config,
                                                          tmp_path):
    new = tmp_path / "reels"
    new.mkdir()
    (new / "a.txt").write_text(make_songs(12, seed=5), encoding="utf-8")
    cfg = tiny_config(steps=5, checkpoint_dir=str(tmp_path / "tuned"))
    train(new, model=tiny_model, config=cfg, init_from=styled_run / "last.pt", quiet=True)
    base = torch.load(styled_run / "last.pt", weights_only=True)
    tuned = torch.load(tmp_path / "tuned" / "last.pt", weights_only=True)
    assert tuned["styles"]["names"] == ["burns", "cowboy", "reels"]
    assert tuned["styles"]["songs"] == [0, 0, 12]
    assert tuned["model_state"]["style.weight"].shape[0] == 4
    # The old styles start from their learnt vectors (the new one from zero).
    assert not torch.equal(tuned["model_state"]["style.weight"][:3],
                           torch.zeros_like(base["model_state"]["style.weight"]))
    assert load_checkpoint(tmp_path / "tuned").checkpoint.styles["names"][-1] == "reels"


# -- bad input -----------------------------------------------------------------------------------

def test_an_empty_style_folder_is_named_and_skipped(lyrics):
    (lyrics / "empty").mkdir()
    with pytest.warns(SonggenWarning, match="style folder with no .txt lyrics, skipped: empty"):
        corpus = load_corpus(lyrics)
    assert corpus.styles.table.names == ["burns", "cowboy"]


@pytest.mark.parametrize("mark, message", [
    ("{style: }", "a style name is empty"),
    ("{style: a,b}", "holds ',' '='"),
])
def test_bad_style_names_are_one_line_errors(tmp_path, mark, message):
    (tmp_path / "a.txt").write_text(f"{mark}\n# One\n\nla la\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=message) as caught:
        load_corpus(tmp_path / "a.txt")
    assert "\n" not in str(caught.value)
    result = CliRunner().invoke(cli, ["train", str(tmp_path / "a.txt"), "--checkpoint-dir",
                                      str(tmp_path / "ck")])
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_hundreds_of_tiny_styles_train_and_too_many_are_refused(tmp_path):
    def songs(n):
        return "\n\n\n".join(f"{{style: s{i}}}\n# Song {i}\n\nla la {i}\nla" for i in range(n))

    (tmp_path / "many.txt").write_text(songs(300), encoding="utf-8")
    corpus = load_corpus(tmp_path / "many.txt")
    assert len(corpus.styles.table.names) == 300
    assert "no style has two songs" in corpus.summary()  # cut as an unstyled text
    assert len(corpus.styles.positions(1, len(corpus.train))) == len(corpus.train)
    (tmp_path / "more.txt").write_text(songs(1001), encoding="utf-8")
    with pytest.raises(CorpusError, match="1,001 styles, more than 1,000"):
        load_corpus(tmp_path / "more.txt")


def test_a_style_with_characters_of_its_own_is_told_and_trains(tmp_path, tiny_model,
                                                                tiny_config):
    root = style_folder(tmp_path / "lyrics")
    (root / "cyrillic").mkdir()
    (root / "cyrillic" / "a.txt").write_text(make_songs(6, seed=3) + "\n\n\n# Ж\n\nжжж\n",
                                             encoding="utf-8")
    corpus = load_corpus(root)
    assert "style cyrillic alone uses 'Ж', 'ж'" in corpus.summary()
    cfg = tiny_config(steps=4, checkpoint_dir=str(tmp_path / "ck"))
    train(root, model=tiny_model, config=cfg, quiet=True)
    assert generate(tmp_path / "ck", seed=1, length=40, style="cowboy")


def test_the_studio_offers_the_styles_and_writes_in_one(styled_run, tmp_path):
    from .studio_support import Client, studio

    with studio(tmp_path) as server:
        client = Client(server)
        _, data = client.get("/api/models")
        listed = next(m for m in data["models"] if m["name"] == "run/last.pt")
        assert listed["styles"] == ["burns", "cowboy"]  # what the picker offers
        body = {"model": "run/last.pt", "length": 60, "seed": 4, "style": "cowboy"}
        status, evs = client.write(body)
        assert status == 200
        song = next(d for k, d in evs if k == "song")
        expected = generate(styled_run / "last.pt", length=60, seed=4, style="cowboy",
                            prime=evs[0][1]["prime"])[0]
        assert song["text"] == expected.text
        status, error = client.write({**body, "style": "jazz"})
        assert status == 400 and error["error"] == ("unknown style 'jazz'; the model knows: "
                                                    "burns, cowboy")


def test_one_style_is_sampled_with_its_own_song_shape(tmp_path, tiny_model, tiny_config):
    root = tmp_path / "lyrics"
    for name, stanzas in (("short", 1), ("long", 6)):
        (root / name).mkdir(parents=True)
        songs = [f"# {name} {i}\n\n" + "\n\n".join("la la la\nlo lo lo" for _ in range(stanzas))
                 for i in range(8)]
        (root / name / "a.txt").write_text("\n\n\n".join(songs), encoding="utf-8")
    train(root, model=tiny_model, config=tiny_config(steps=3), quiet=True)
    trained = load_checkpoint(tmp_path / "ckpt")
    shapes = {s: with_style(trained, s).checkpoint.shape["stanzas"] for s in ("short", "long")}
    assert max(shapes["short"]) == 1 and min(shapes["long"]) == 6
    # A blend, and no style, keep the whole corpus's shape.
    assert with_style(trained, "short=1,long=1").checkpoint.shape == trained.checkpoint.shape


@pytest.mark.slow
@needs_gloo
def test_two_torchrun_processes_train_styles_like_one_process(lyrics, tmp_path):
    options = [str(lyrics), *TINY, "--batch-size", "8", "--dropout", "0", "--steps", "10"]
    two, one = two_and_one(options, tmp_path)
    assert two["styles"] == one["styles"] and two["model_config"]["styles"] == 2
    assert_same_weights(two, one)
    record = json.loads((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["val_styles"] == pytest.approx(
        json.loads((tmp_path / "one" / "metrics.jsonl").read_text().splitlines()[-1])
        ["val_styles"], rel=1e-5)


def test_scoring_by_style_leaves_the_model_as_it_was(styled_run, lyrics):
    from songgen.training.evaluation import evaluate_text

    trained = load_checkpoint(styled_run)
    score = evaluate_text(lyrics, trained)
    assert set(score.styles) == {"burns", "cowboy"}
    assert not trained.full_model.training and not trained.model.training
    # The same style asked again is the same folded model (not built again).
    assert with_style(trained, "burns") is with_style(trained, "burns")


def test_one_style_is_sampled_with_its_own_rhyme_and_chorus_measures(styled_run):
    trained = load_checkpoint(styled_run)
    craft = trained.checkpoint.styles["songcraft"]
    assert set(craft) == {"burns", "cowboy"}
    assert with_style(trained, "burns").checkpoint.songcraft == craft["burns"]
    assert with_style(trained, "burns=1,cowboy=1").checkpoint.songcraft == \
        trained.checkpoint.songcraft
