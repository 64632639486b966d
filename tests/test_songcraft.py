"""Rhyme, chorus and real words (#23): the measures, and sampling steered by them."""

import json

import pytest
import torch
from click.testing import CliRunner

from songgen.run import checkpoint as ckpt
from songgen.cli.commands import cli
from songgen.config import ModelConfig
from songgen.errors import ConfigError
from songgen.writing.sampling import generate, stream
from songgen.writing.request import SampleOptions
from songgen.text.lyrics import join_songs
from songgen.text.vocab import Vocab
from songgen.run.trained import load_checkpoint
from songgen.model.lstm import CharLSTM
from songgen.songcraft.measures import (ENGLISH_RANK, Measures, allowed_words, analyse, check_pattern,
                               measure, pattern_of, rhymes, stanza_rhymes, words_of)
from songgen.songcraft.wordlist import names_rank, ordinary, unsung

SONGS = [
    "# Night Light\n\nI walk alone into the night\nI hold a candle burning bright\n"
    "The river runs down to the sea\nAnd the old wind sings to me\n\n"
    "Oh the salt wind calls me home\nOh the salt wind calls me home\n\n"
    "My father sailed the winter gray\nHe never came back home to stay\n\n"
    "Oh the salt wind calls me home\nOh the salt wind calls me home",
    "# Rain\n\nThe rain is on the roof again\nI count the hours until then\n"
    "A letter waits upon the chair\nNobody ever sits there\n\n"
    "Sing it slow and sing it low\nThe river knows where we go\n\n"
    "Sing it slow and sing it low\nThe river knows where we go",
]


def craft_checkpoint(tmp_path, songs=SONGS, measures=True, nl_bias=2.5, name="m.pt"):
    """An untrained tiny model over the songs' characters, with their measures recorded; its
    line breaks made likely so that it writes short lines and stanzas."""
    text = "\n\n\n".join(songs)
    torch.manual_seed(0)
    vocab = Vocab.from_text(text)
    model = CharLSTM(ModelConfig(vocab_size=len(vocab), embed_dim=8, hidden_size=16, layers=1))
    with torch.no_grad():
        model.head.bias[0] -= 50.0  # no end of song: the length ends it
        model.head.bias[vocab.chars.index("\n")] += nl_bias
        model.head.bias[vocab.chars.index(" ")] += 1.5
    checkpoint = ckpt.Checkpoint(model_config=model.config, vocab=vocab.chars,
                                 model_state=model.state_dict(), step=7,
                                 songcraft=measure(songs).to_dict() if measures else None)
    path = tmp_path / name
    ckpt.save(checkpoint, path)
    (tmp_path / "corpus.txt").write_text(text + "\n")
    return load_checkpoint(path, device="cpu")


# -- the measures -----------------------------------------------------------------------------

def test_dictionary_rhymes_and_the_spelling_rule():
    assert rhymes("night", "bright") and rhymes("sea", "me") and rhymes("again", "then")
    assert not rhymes("night", "night")  # a word does not rhyme with itself
    assert not rhymes("night", "home") and not rhymes("roof", "chair")
    # Unknown to the dictionary: the spelling from the last vowel group on.
    assert rhymes("corazón", "razón") and not rhymes("corazón", "luna")


def test_patterns_and_rhyming_stanzas():
    assert pattern_of(["night", "bright", "sea", "me"]) == "AABB"
    assert pattern_of(["night", "sea", "bright", "me"]) == "ABAB"
    assert pattern_of(["roof", "sea", "chair", "me"]) == "XAXA"
    assert pattern_of(["roof", "home", "chair", "sea"]) == "XXXX"
    assert stanza_rhymes(["roof", "sea", "chair", "me"])
    assert not stanza_rhymes(["roof", "home", "chair", "sea"])


def test_measures_of_a_corpus_round_trip():
    m = measure(SONGS)
    assert (m.songs, m.stanzas) == (2, 7)
    # The repeated refrains end on the same word, which is no rhyme: 5 of 7 stanzas rhyme.
    assert m.rhyming == 5 and m.patterns == {"AABB": 2, "AA": 3, "XX": 2}
    assert m.repeat_rate == 1.0
    # The repeated lines come first in the second stanza (index 1), back one or two stanzas
    # later (the lower median: 1).
    assert (m.chorus_at, m.chorus_gap) == (1, 1)
    assert "salt" in m.vocabulary and "river" in m.vocabulary
    assert Measures.from_dict(m.to_dict()) == m
    assert Measures.from_dict({"version": 1}) is None
    assert Measures.from_dict({**m.to_dict(), "songs": "two"}) is None
    assert Measures.from_dict(None) is None


def test_analyse_tells_rhyming_lines_and_the_chorus():
    found = analyse(SONGS[0])
    assert found["patterns"][:2] == ["AABB", "XX"]
    assert [1, 2] in found["rhymes"] and [3, 4] in found["rhymes"]
    assert found["chorus_stanzas"] == [2, 4]
    assert found["repeated_lines"] == ["Oh the salt wind calls me home"]


def test_rhyme_patterns_are_checked():
    assert check_pattern("aabb") == "AABB" and check_pattern("Auto") == "auto"
    for bad in ("ABC", "A", "AABB1", "XXXX", "ABCDEFGHI", ""):
        with pytest.raises(ConfigError, match="unknown rhyme pattern"):
            check_pattern(bad)


# -- sampling ---------------------------------------------------------------------------------

def lyric_stanzas(text):
    from songgen.songcraft.measures import stanzas_of

    return stanzas_of(text)


def test_aabb_makes_every_couplet_rhyme(tmp_path):
    trained = craft_checkpoint(tmp_path)
    songs = generate(trained, num_songs=3, seed=1, length=500, rhyme="AABB", chorus="off",
                     temperature=1.0)
    free = generate(trained, num_songs=3, seed=1, length=500, rhyme="off", chorus="off",
                    words=1.0, temperature=1.0)
    pairs = checked = 0
    for song in songs:
        for lines in lyric_stanzas(song.text)[:-1]:  # the last may be cut by the length
            ends = [words_of(line)[-1] if words_of(line) else None for line in lines]
            for i in range(0, len(ends) - 1, 2):
                pairs += 1
                checked += rhymes(ends[i], ends[i + 1])
        assert song.craft["rhyme_lines_asked"] > 0
    # Nearly all: a line whose partner ends on a word nothing known rhymes with (an untrained
    # model writes "edyth") keeps the likeliest line.
    assert pairs >= 20 and checked >= 0.9 * pairs
    # The untrained model alone does not rhyme.
    assert measure([s.text for s in free]).rhyme_rate < 0.5


def test_an_asked_pattern_is_met_in_every_stanza_it_fits(tmp_path):
    # Issue #33: --rhyme AABB left the promised B line unrhymed in 16 of 43 stanzas: a stanza
    # closed once its A pair rhymed, a line ending the song counted as none, and A or B lines
    # ended on words nothing rhymes with.
    trained = craft_checkpoint(tmp_path, nl_bias=4.0)  # short lines, stanzas closed early
    met = fitting = 0
    for pattern in ("AABB", "ABAB"):
        songs = generate(trained, num_songs=4, seed=3, length=900, rhyme=pattern,
                         chorus="off", temperature=1.0)
        for song in songs:
            stanzas = lyric_stanzas(song.text)
            for lines in stanzas[:-1] if song.stop == "length" else stanzas:
                assert len(lines) >= 4, lines  # never closed before the promised rhyme
                ends = [words_of(line)[-1] if words_of(line) else None for line in lines]
                pairs = [(0, 1), (2, 3)] if pattern == "AABB" else [(0, 2), (1, 3)]
                fitting += 1
                met += all(rhymes(ends[i], ends[j]) for i, j in pairs)
    assert fitting >= 10 and met >= 0.95 * fitting, (met, fitting)


def test_auto_rhymes_as_often_as_the_corpus_not_more():
    # Issue #33: on the ballads songcraft rhymed 62.7% of stanzas where they rhyme 48.5%: the
    # corpus's rhyming patterns were asked for as often as they come, and the model rhymed
    # some of the other stanzas unasked on top.
    from songgen.writing.steering.lines import Lines
    from songgen.writing.steering.rhyme import Rhyme
    from songgen.writing.steering.words import Words

    measures = Measures(songs=10, stanzas=100, rhyming=50, patterns={"AABB": 50, "XXXX": 50},
                        vocabulary=["night", "light"])
    chars = ["\x00", "\n", " "] + list("abcdefghijklmnopqrstuvwxyz")

    def asked(unasked: float) -> float:
        lines = Lines(chars, 1, 4, "1")
        rhyme = Rhyme(lines, Words(lines, measures, chars, 1.0), measures, "auto")
        song = rhyme.songs[0]
        song.free_stanzas, song.free_rhymed = 1000, int(1000 * unasked)
        return sum(rhyme._draw_pattern(0, song) == "AABB" for _ in range(400)) / 400

    assert asked(0.5) <= 0.02          # the model rhymes half its stanzas itself: no asking
    assert 0.4 <= asked(0.0) <= 0.6    # it never does: the corpus's half are asked for
    assert 0.25 <= asked(0.25) <= 0.45  # (0.5 - 0.25) / 0.75 = a third


def test_allowed_words_are_the_songs_and_frequent_english_not_names_or_junk():
    # Issue #33: `--words 0` wrote "By sardine congdon me pores" (names of the pronouncing
    # dictionary) and a young model "http il ls th t bystrom pc pdf ieee".
    allowed = allowed_words(measure(SONGS))
    for word in ("congdon", "driggers", "cearley", "bystrom", "http", "pdf", "ieee", "pc",
                 "il", "ls", "th", "t"):
        assert not allowed.is_word(word), word
    for word in ("lantern", "herring", "kettle", "don't", "the", "a", "i", "oh", "candle"):
        assert allowed.is_word(word), word
    assert allowed.is_word("nobody") and allowed.is_word("hours")  # the songs' own


def test_english_words_leave_out_names_brands_and_offensive_words_not_ordinary_ones():
    # Issue #33: a lightly trained model sang "douche", "ipod", "saab", "kamal", and earlier
    # "driggers, cearley, florsheim, congdon, sferrazza".
    allowed = allowed_words(measure(SONGS))
    for word in ("douche", "ipod", "saab", "kamal", "driggers", "cearley", "florsheim",
                 "congdon", "sferrazza", "fuck", "shit", "nigger", "texas", "obama"):
        assert not allowed.is_word(word), word
    for word in ("rose", "hope", "may", "bill", "grant", "river", "heart", "love", "hell",
                 "damn", "i'm", "monday", "june", "christmas", "there'll", "goin", "colour"):
        assert allowed.is_word(word), word
    # The collection's own words are always allowed, whatever they are.
    own = allowed_words(measure(["Kamal drove a saab down to Texas,\nshit and douche.\n"]))
    assert all(own.is_word(w) for w in ("kamal", "saab", "texas", "shit", "douche"))


def test_names_list_is_built_for_the_english_words_allowed():
    # names.txt was built from as many of wordfreq's words as the sampler allows; rebuild it
    # (see songgen/songcraft/wordlist.py) when ENGLISH_RANK changes.
    assert names_rank() == ENGLISH_RANK


def test_ordinary_words_by_a_dictionary_of_lower_case_entries():
    lower, keep = {"rose", "going", "there", "can't"}, {"monday"}
    for word in ("rose", "goin", "there'll", "can't", "i", "i'm", "monday", "monday's"):
        assert ordinary(word, lower, keep), word
    for word in ("kamal", "roses", "texas's", "'tis", "sayin"):
        assert not ordinary(word, lower, keep), word
    assert unsung("fuckin'".rstrip("'")) and unsung("shit's") and not unsung("hell")


def test_words_are_real_unless_left_free(tmp_path):
    trained = craft_checkpoint(tmp_path)
    allowed = allowed_words(measure(SONGS))
    real = generate(trained, num_songs=2, seed=2, length=400, rhyme="off", chorus="off",
                    words=0.0)
    words = [w for s in real for w in words_of(s.text)]
    # All but a word the song's shape cuts short (a line far too long is ended).
    assert len(words) > 100 and sum(allowed.is_word(w) for w in words) >= 0.98 * len(words)
    free = generate(trained, num_songs=2, seed=2, length=400, rhyme="off", chorus="off",
                    words=1.0)
    made_up = [w for s in free for w in words_of(s.text) if not allowed.is_word(w)]
    assert len(made_up) > 20  # an untrained model invents words when let


def test_chorus_comes_back_verbatim(tmp_path):
    trained = craft_checkpoint(tmp_path, nl_bias=3.5)
    songs = generate(trained, num_songs=4, seed=3, length=900, rhyme="off", chorus="auto",
                     temperature=1.0)
    back = [s for s in songs if s.craft["chorus_back"]]
    assert back, [s.craft for s in songs]
    for song in back:
        stanzas = ["\n".join(lines) for lines in lyric_stanzas(song.text)]
        # The chorus: the first stanza of two lines or more from the corpus's place on (the
        # second), written again later, word for word.
        chorus = next(s for s in stanzas[1:] if s.count("\n") >= 1)
        assert song.text.count("\n\n" + chorus + "\n") >= 2
    off = generate(trained, num_songs=4, seed=3, length=900, rhyme="off", chorus="off",
                   temperature=1.0)
    assert not any(s.craft["chorus_back"] for s in off)


def test_a_chorus_is_read_in_one_call_not_a_step_per_character(tmp_path, monkeypatch):
    # Speed (#23): a chorus coming back is known text; the model reads it in one call, so the
    # song takes fewer one-character steps than it has characters.
    from songgen.model.stepper import Stepper

    trained = craft_checkpoint(tmp_path, nl_bias=3.5)
    steps = []
    step = Stepper.step
    monkeypatch.setattr(Stepper, "step", lambda self, ids, s: steps.append(1) or step(self, ids, s))
    song, = generate(trained, seed=3, length=900, rhyme="off", chorus="auto", temperature=1.0)
    assert song.craft["chorus_back"] >= 1 and song.chars == 900
    chorus = next(s for s in ["\n".join(lines) for lines in lyric_stanzas(song.text)][1:]
                  if s.count("\n") >= 1)
    assert len(steps) <= song.chars - song.craft["chorus_back"] * len(chorus)


def test_rows_stepped_apart_write_the_same_songs(tmp_path, monkeypatch):
    # On the CPU, lanes waiting for a rhyming line are not stepped (speed, #23): the songs are
    # those of stepping every row.
    from songgen.writing.steering import rows

    trained = craft_checkpoint(tmp_path)
    options = SampleOptions(num_songs=4, seed=4, length=500, rhyme="AABB", temperature=1.0)
    taken = []
    take = rows.Rows._live
    monkeypatch.setattr(rows.Rows, "_live", lambda self: taken.append(take(self)) or taken[-1])
    apart = generate(trained, options)
    assert sum(live is not None for live in taken) > 100
    monkeypatch.setattr(rows, "LIVE_SPARED", 10 ** 9)
    assert [s.text for s in generate(trained, options)] == [s.text for s in apart]


def test_same_seed_same_songs_and_stream_matches(tmp_path):
    trained = craft_checkpoint(tmp_path)
    options = SampleOptions(num_songs=1, seed=5, length=400, temperature=1.0)
    first = generate(trained, options)
    assert [s.text for s in first] == [s.text for s in generate(trained, options)]
    assert "".join(stream(trained, options)) == first[0].text
    # The keyword API and the options value are the same thing.
    assert generate(trained, seed=5, length=400, temperature=1.0)[0].text == first[0].text
    # Several songs at once: each a song of its own.
    many = generate(trained, num_songs=3, seed=5, length=400)
    assert len({s.text for s in many}) == 3


def test_options_are_checked_once_with_plain_errors():
    with pytest.raises(ConfigError, match="free words must be from 0 to 1"):
        SampleOptions(words=1.5).checked()
    with pytest.raises(ConfigError, match="unknown chorus choice"):
        SampleOptions(chorus="sometimes").checked()
    with pytest.raises(ConfigError, match="unknown rhyme pattern"):
        SampleOptions(rhyme="ABC").checked()
    assert SampleOptions(rhyme="abab").checked().rhyme == "ABAB"
    with pytest.raises(TypeError, match="unknown sampling option 'colour'"):
        generate(None, colour="red")


def test_copy_guard_still_works_with_songcraft(tmp_path, recwarn):
    from songgen.writing.copycheck import CopyIndex

    trained = craft_checkpoint(tmp_path)
    index = CopyIndex(join_songs(SONGS), k=6)
    songs = generate(trained, num_songs=2, seed=4, length=300, copy_index=index, max_copy=20)
    assert songs and all(s.copy.length <= 20 for s in songs)


# -- the command line and info ----------------------------------------------------------------

def test_cli_json_tells_rhymes_and_chorus(tmp_path):
    trained = craft_checkpoint(tmp_path)
    result = CliRunner().invoke(cli, ["sample", "--checkpoint", str(trained.path), "--json",
                                      "-n", "2", "--seed", "1", "--length", "400",
                                      "--rhyme", "AABB", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 2
    for record in records:
        craft = record["craft"]
        assert craft["rhyme"] == "AABB" and craft["rhymes"]
        assert set(craft) >= {"patterns", "rhymes", "chorus_stanzas", "repeated_lines",
                              "chorus_planned"}


def test_old_checkpoint_samples_with_a_note_or_measures_from_the_corpus(tmp_path):
    trained = craft_checkpoint(tmp_path, measures=False)
    runner = CliRunner()
    base = ["sample", "--checkpoint", str(trained.path), "--seed", "1", "--length", "200",
            "--device", "cpu"]
    result = runner.invoke(cli, base)
    assert result.exit_code == 0
    assert ("has no rhyme, chorus or word measures (written before songgen kept them): "
            "writing without them; give --corpus") in result.stderr
    result = runner.invoke(cli, base + ["--rhyme", "AABB"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: --rhyme AABB needs the "
                                                             "training songs' measures")
    result = runner.invoke(cli, base + ["--rhyme", "AABB", "--json", "--corpus",
                                        str(tmp_path / "corpus.txt")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["craft"]["rhymes"]


@pytest.mark.parametrize("args, message", [
    (["--rhyme", "ABC"], "Invalid value for '--rhyme': unknown rhyme pattern 'ABC'"),
    (["--words", "1.5"], "Invalid value for '--words'"),
    (["--chorus", "maybe"], "Invalid value for '--chorus'"),
])
def test_bad_songcraft_options_are_one_line_errors(tmp_path, args, message):
    trained = craft_checkpoint(tmp_path)
    result = CliRunner().invoke(cli, ["sample", "--checkpoint", str(trained.path)] + args)
    assert result.exit_code == 2 and message in result.stderr
    assert "Traceback" not in result.output


def test_info_shows_the_corpus_rhyme_and_chorus(tmp_path):
    trained = craft_checkpoint(tmp_path)
    result = CliRunner().invoke(cli, ["info", str(trained.path)])
    assert result.exit_code == 0
    # XX, a stanza whose lines rhyme with none, is no rhyme pattern (issue #36).
    assert ("songcraft    in the 2 songs of the training part (the validation songs are not "
            "measured): 71% of 7 stanzas rhyme (AA 43%, AABB 29%); 100% of the songs repeat a "
            "line" in result.output)
    record = json.loads(CliRunner().invoke(cli, ["info", str(trained.path), "--json"]).stdout)
    assert record["songcraft"]["rhyming_stanzas"] == 0.7143


def test_training_keeps_the_measures(tmp_path, tiny_model, tiny_config):
    from songgen.training.loop import train

    corpus = tmp_path / "songs.txt"
    corpus.write_text("\n\n\n".join(SONGS * 3) + "\n")
    result = train(corpus, model=tiny_model, config=tiny_config(steps=2, eval_every=2),
                   quiet=True)
    saved = load_checkpoint(result.checkpoint_dir, device="cpu").checkpoint
    m = Measures.from_dict(saved.songcraft)
    assert m is not None and m.songs >= 4 and m.rhyming >= 10 and "salt" in m.vocabulary


def test_studio_write_takes_rhyme_and_chorus(tmp_path):
    from .studio_support import Client, make_runs, studio

    root = make_runs(tmp_path / "runs")
    with studio(root) as server:
        client = Client(server)
        status, evs = client.write({"model": "runA/best.pt", "num_songs": 2, "length": 300,
                                    "seed": 4, "rhyme": "AABB", "chorus": "off"})
        assert status == 200
        songs = [d for k, d in evs if k == "song"]
        assert len(songs) == 2 and all("rhymes" in s["craft"] for s in songs)
        expected = generate(str(root / "runA" / "best.pt"), num_songs=2, length=300, seed=4,
                            rhyme="AABB", chorus="off", device="cpu")
        assert [s["text"] for s in songs] == [s.text for s in expected]
        status, answer = client.write({"model": "runA/best.pt", "rhyme": "ABC"})
        assert status == 400 and "unknown rhyme pattern 'ABC'" in json.dumps(answer)


def test_a_chorus_comes_after_a_verse_and_never_twice_in_a_row(tmp_path):
    # Issue #33: on an unseen collection (measured: repeated lines first in stanza 1, back the
    # next stanza) one song sang the same stanza four times in a row before its first verse.
    trained = craft_checkpoint(tmp_path)
    craft = dict(trained.checkpoint.songcraft)
    craft.update(chorus_at=0, chorus_gap=1, repeat_songs=craft["songs"])
    trained.checkpoint.songcraft = craft
    songs = generate(trained, num_songs=4, seed=5, length=1500, rhyme="off", temperature=1.0)
    assert all(song.craft["chorus"] for song in songs)
    back = 0
    for song in songs:
        stanzas = ["\n".join(lines) for lines in lyric_stanzas(song.text)]
        back += song.craft["chorus_back"]
        for before, after in zip(stanzas, stanzas[1:]):
            assert before != after, song.text
    assert back >= 2  # the chorus did come back


def test_syllables_and_scansion_are_measured_and_json_tells_each_line():
    # Issue #33: lines that scan, measured as rhyme is: syllables by the CMU counts, else by
    # spelling; a line of stanza 2+ scans within 2 syllables of its first stanza's line.
    from songgen.songcraft.measures import line_syllables, scansion, syllables

    assert [syllables(w) for w in ("night", "candle", "lantern", "dendrochronology")] == \
        [1, 2, 2, 6]
    assert syllables("cearleyish") >= 2 and syllables("smoothe") == 1  # by spelling
    assert line_syllables("I walk alone into the night") == 8
    song = ("# S\n\nI walk alone into the night\nI hold a candle\n\n"
            "The river runs down to the sea\nAnd the old wind sings to me and everyone\n\n"
            "One\nTwo")
    # Stanzas 2 and 3 against stanza 1 (all of two lines): 8 vs 8 scans, 11 vs 5, 1 vs 8
    # and 1 vs 5 do not.
    assert scansion([song]) == (1, 4)
    assert analyse(song)["syllables"] == [[8, 5], [8, 11], [1, 1]]
