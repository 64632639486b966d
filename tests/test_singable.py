"""Songs a singer could sing (#33), as reading the ballads' songs showed them: one title ending
as the collection's titles end, songs ending as its songs end (rare endings rare), stanzas
rhyming as often as its stanzas, lines that scan without being cut mid-phrase, the likeliest
line kept, a rhyme never the word it rhymes with."""

import random
from types import SimpleNamespace

import numpy as np
import torch

from songgen.config import ModelConfig
from songgen.model.lstm import CharLSTM
from songgen.run import checkpoint as ckpt
from songgen.run.trained import load_checkpoint
from songgen.songcraft.measures import Measures
from songgen.songcraft.measures import measure as measure_craft
from songgen.songcraft.measures import scansion
from songgen.text.lyrics import split_songs
from songgen.text.vocab import Vocab
from songgen.writing.sampling import generate
from songgen.writing.stanzas import syllable_window
from songgen.writing.steering.lines import BIG, Lines
from songgen.writing.steering.rhyme import Rhyme
from songgen.writing.steering.shape import Endings, ShapeGuide
from songgen.writing.steering.words import Words

from .conftest import make_songs
from .test_shape import measure, punctuated_songs

LETTERS = list("abcdefghijklmnopqrstuvwxyz")


def checkpoint_of(tmp_path, text: str, biases: dict, name="m.pt"):
    """An untrained tiny model over `text`'s characters, `biases` added to its scores of some,
    with `text`'s shape and measures recorded."""
    torch.manual_seed(0)
    vocab = Vocab.from_text(text)
    model = CharLSTM(ModelConfig(vocab_size=len(vocab), embed_dim=8, hidden_size=16, layers=2))
    with torch.no_grad():
        for c, bias in biases.items():
            model.head.bias[vocab.chars.index(c)] += bias
    checkpoint = ckpt.Checkpoint(model_config=model.config, vocab=vocab.chars,
                                 model_state=model.state_dict(), step=7,
                                 shape=measure(text).to_dict(),
                                 songcraft=measure_craft(split_songs(text)).to_dict())
    ckpt.save(checkpoint, tmp_path / name)
    return load_checkpoint(tmp_path / name, device="cpu")


# -- titles ------------------------------------------------------------------------------------

def words_on_one_row(vocabulary: list[str], chars: list[str]) -> Words:
    """The Words step on one row, every word kept to the list (none left free)."""
    measures = Measures(songs=1, vocabulary=vocabulary)
    lines = Lines(chars, 1, 1, "1")
    words = Words(lines, measures, chars, 0.0)
    words.start(SimpleNamespace(count=1, prime=[], index=lambda v: torch.tensor(v)))
    lines.read_songs = [(0, [0])]
    return words


def test_a_word_glued_to_a_number_is_free_so_a_title_closes_as_its_collection_does():
    # "# The Fair Elves (Child 4B": kept to the word list, "b" could only go on as a word
    # does, and it went on as "4Bland a Dog Loudon (Child 4HE)": two titles in one.
    chars = ["\x00", "\n", " ", "#", "(", ")", "4"] + LETTERS
    words = words_on_one_row(["child", "bland", "be", "elves"], chars)
    ids = {c: i for i, c in enumerate(chars)}
    for c in "# elves (child 4b":
        words._take(words.row[0], ids[c], 0)
    out = words.steer(np.zeros((1, len(chars)), dtype=np.float32))
    assert out[0, ids[")"]] == 0.0 and out[0, ids["l"]] == 0.0  # (a code's letters are free)
    words = words_on_one_row(["child", "bland", "be", "elves"], chars)
    for c in "# elves (child b":
        words._take(words.row[0], ids[c], 0)
    out = words.steer(np.zeros((1, len(chars)), dtype=np.float32))
    assert out[0, ids[")"]] <= -BIG / 2 and out[0, ids["l"]] == 0.0  # a word: "bland", "be"


def catalogued_songs(n=30) -> str:
    """Songs whose titles all end as a catalogue's do: "# Name (Song 12A)"."""
    songs = []
    for i, song in enumerate(split_songs(make_songs(n, seed=4))):
        title, body = song.split("\n\n", 1)
        songs.append(f"{title} (Song {i}{'ABC'[i % 3]})\n\n{body}")
    return "\n\n\n".join(songs) + "\n"


def test_a_title_ends_as_the_collections_titles_end_not_on_a_word(tmp_path):
    # Its titles all end with ")": allowed to end on a word, a title ended "(Child 17Be".
    trained = checkpoint_of(tmp_path, catalogued_songs(), {"\n": 1.0})
    songs = generate(trained, num_songs=6, seed=3, temperature=1.0, length=600, rhyme="off",
                     chorus="off", words=1.0, max_lines=2)
    for song in songs:
        title = song.text.split("\n", 1)[0]
        assert title.endswith(")"), title
        assert len(title) <= 60 + 15, title  # (its length: the corpus's, and a word's grace)


# -- how songs end -----------------------------------------------------------------------------

def test_a_rare_ending_is_open_to_as_few_songs_as_end_so_in_the_collection():
    chars = ["\x00", "\n", " ", ".", "'", ","] + LETTERS
    ends = Endings(chars, ({".": 0.55, "'": 0.42, "a": 0.03}, None), 1, 2)
    assert ends.song_ok[3] and ends.song_ok[4] and not ends.song_ok[5]
    assert not ends.song_ok[chars.index("e")]  # a bare word ends no song but ...
    drawn = [ends.song_ok_for(random.Random(f"7:ends:{s}")) for s in range(3000)]
    worded = sum(bool(ok[chars.index("e")]) for ok in drawn) / len(drawn)
    assert 0.015 <= worded <= 0.045  # ... as many as end so in the collection
    assert all(ok[3] and ok[4] and not ok[5] for ok in drawn)
    # Where every class is rare, the commonest is open to all.
    spread = Endings(chars, ({".": 0.06, "'": 0.05, "a": 0.04}, None), 1, 2)
    assert spread.song_ok[3] and not spread.song_ok[4]


def test_each_song_keeps_its_own_endings_on_every_lane():
    text = make_songs(30, seed=2)
    chars = Vocab.from_text(text).chars
    ends = ({".": 0.91, "a": 0.09}, None)  # (a song in eleven may end on a word)
    guide = ShapeGuide(measure(text), chars, 80, 1200, ends, seed="7",
                       songs=20)
    e = chars.index("e")
    worded = [guide.standing.ends_ok[r][e] for r in range(80)]
    assert worded[:20] == worded[20:40] == worded[40:60] == worded[60:]  # the lanes of a song
    assert 0 < sum(worded[:20]) < 20  # (some songs, not all: the rate is drawn above)
    again = ShapeGuide(measure(text), chars, 80, 1200, ends, seed="7",
                       songs=20)
    assert [again.standing.ends_ok[r][e] for r in range(80)] == worded  # by the seed


def test_songs_end_on_a_bare_word_no_more_often_than_the_collections_do(tmp_path):
    # The ballads: 3% of songs end on a bare word, so it was open to every song, and one song
    # in ten ended on one (wherever the model's line happened to end so when it was due).
    songs = split_songs(punctuated_songs(40))
    songs[0] = songs[0].rstrip(".")  # one song in forty ends on a word
    trained = checkpoint_of(tmp_path, "\n\n\n".join(songs) + "\n",
                            {"\x00": -30.0, "\n": 1.0})
    written = generate(trained, num_songs=12, seed=2, temperature=1.0, rhyme="off", words=1.0)
    assert sum(song.text.rstrip().endswith(".") for song in written) >= 11, \
        [song.text[-40:] for song in written]


# -- rhyme ---------------------------------------------------------------------------------

def rhyme_step(measures: Measures) -> Rhyme:
    chars = ["\x00", "\n", " "] + LETTERS
    lines = Lines(chars, 1, 4, "1")
    return Rhyme(lines, Words(lines, measures, chars, 1.0), measures, "auto")


def test_auto_rhyme_asks_more_where_asked_stanzas_fail_to_rhyme():
    # The ballads rhymed 36% of their stanzas where theirs rhyme 48.5%: some stanzas asked to
    # rhyme did not (a chorus sung over the plan), and the model rhymed fewer unasked (7%)
    # than the guess of a quarter.
    measures = Measures(songs=10, stanzas=100, rhyming=50, patterns={"AABB": 50, "XXXX": 50},
                        vocabulary=["night", "light"])

    def asked(free=0, free_rhymed=0, planned=0, planned_rhymed=0) -> float:
        rhyme = rhyme_step(measures)
        song = rhyme.songs[0]
        song.free_stanzas, song.free_rhymed = free, free_rhymed
        song.asked_stanzas, song.asked_rhymed = planned, planned_rhymed
        return sum(rhyme._draw_pattern(0, song) == "AABB" for _ in range(600)) / 600

    assert 0.35 <= asked() <= 0.55                        # (0.5 - 0.1) / (1 - 0.1)
    assert asked(1000, 0, 1000, 500) >= 0.95             # half the asked fail: ask them all
    assert 0.4 <= asked(1000, 0, 1000, 1000) <= 0.6      # all rhyme: the corpus's half
    # A stanza of one line rhymes in no count: it is not counted.
    rhyme = rhyme_step(measures)
    text = rhyme.lines.songs[0]
    text.ends = ["night"]
    rhyme.stanza_end(0)
    assert (rhyme.songs[0].free_stanzas, rhyme.songs[0].asked_stanzas) == (0, 0)


def test_a_rhyme_is_never_the_word_it_rhymes_with():
    # Kept by sound, the words rhyming with "hand" were those made for "land", "hand" among
    # them: the line drew "hand", no rhyme, and glued another on ("out hand.sAnd").
    measures = Measures(songs=1, vocabulary=["land", "hand", "sand", "band", "zorpf"])
    rhyme = rhyme_step(measures)
    found = rhyme.rhyming.endings("land")
    assert found is not None and "hand" in found.words and "land" not in found.words
    assert "hand" not in rhyme.rhyming.endings("hand").words
    assert rhyme.rhyming.endings("zorpf") is None
    assert not rhyme.rhyming.rhymable(SimpleNamespace(word="", last="zorpf"))
    assert rhyme.rhyming.rhymable(SimpleNamespace(word="han", last=None)) is True


# -- scansion --------------------------------------------------------------------------------

def test_a_line_is_written_to_fit_every_stanza_the_measure_may_compare_it_with():
    # The measure compares a stanza with the song's first stanza of as many lines.
    assert syllable_window({}, 0) is None                        # the first stanza: free
    assert syllable_window({4: [8, 8, 6, 6]}, 1) == (6, 10)
    assert syllable_window({4: [8, 8, 6, 6], 2: [10, 4]}, 0) == (8, 10)
    assert syllable_window({4: [8, 8, 6, 6], 2: [10, 4]}, 3) == (4, 8)  # past the 2-line one
    assert syllable_window({4: [8], 2: [2]}, 0) == (6, 10)       # none fits both: the first's
    assert syllable_window({2: [8, 8]}, 2) is None               # past every stanza: free


def test_songs_with_a_chorus_scan_as_the_measure_counts(tmp_path):
    # Written freely, the chorus came back unlike the first stanza each time (nearly half of
    # the demo songs' lines that did not scan).
    from .test_stanzas import scan_checkpoint

    trained = scan_checkpoint(tmp_path)
    songs = generate(trained, num_songs=4, seed=5, length=1500, rhyme="off", chorus="auto",
                     temperature=1.0)
    assert sum(s.craft["chorus_back"] for s in songs) >= 2, [s.craft for s in songs]
    close, compared = scansion([s.text for s in songs])
    assert compared >= 20 and close / compared >= 0.9, (close, compared)


# -- the lanes -------------------------------------------------------------------------------

def test_a_line_that_is_all_the_steps_ask_stops_only_the_lanes_less_likely():
    # Stopping every other lane, the ballads' songs were 11% less likely per character than
    # free sampling's (the first line to end kept, not the likeliest).
    lines = Lines(["\x00", "\n", " "] + LETTERS, 1, 4, "1")
    song = lines.songs[0]
    song.cands = [[(3, -0.5)] * 4, [(3, -0.2)] * 3, [(3, -0.9)] * 3, [(3, -0.5)] * 2]
    song.done, song.dropped = [True, False, False, False], set()
    lines.candidates._drop_open_lanes(song, 0)
    assert song.done == [True, False, True, True] and song.dropped == {2, 3}
