"""The steering steps (#34): every way the sampler reshapes the model's choices is a step of one
kind in one list, run by one loop; each says what it did; the shape's rules, looked up from a
table, are the rules."""

import random

import numpy as np
import torch

from songgen.songcraft.measures import Measures
from songgen.text.vocab import Vocab
from songgen.writing import sampling
from songgen.writing.request import SampleOptions
from songgen.writing.steering.build import steps_for
from songgen.writing.steering.shape import ShapeGuide, _table_of_rules
from songgen.writing.steering.step import Step

from .conftest import make_songs
from .test_shape import measure, shaped_checkpoint
from .test_songcraft import craft_checkpoint, lyric_stanzas


def test_every_way_of_steering_is_a_step_in_one_list(tmp_path):
    trained = craft_checkpoint(tmp_path)
    measures = Measures.from_dict(trained.checkpoint.songcraft)
    every = SampleOptions(rhyme="AABB", chorus="auto", scan="auto", words=0.01,
                          temperature=0.7, top_k=5, top_p=0.9).checked()
    steps = steps_for(trained, every, measures, 2, "1")
    assert all(isinstance(step, Step) for step in steps)
    # (no shape guide: this checkpoint records none; scansion: its songs do not scan enough)
    assert [step.name for step in steps] == ["words", "chorus", "rhyme", "repeats", "lines",
                                             "temperature", "top-k", "top-p"]
    free = SampleOptions(rhyme="off", chorus="off", scan="off", words=1.0,
                         temperature=1.0).checked()
    assert steps_for(trained, free, measures, 2, "1") == []
    greedy = SampleOptions(rhyme="off", chorus="off", scan="off", words=1.0, top_k=3,
                           temperature=0.0).checked()
    assert steps_for(trained, greedy, measures, 2, "1") == []  # the draw takes the likeliest


class NoLetter(Step):
    """A step of a test's own: the letter `c` is never drawn."""

    name = "no-letter"

    def __init__(self, c: int):
        self.c, self.seen = c, 0

    def steer(self, scores):
        self.seen += 1
        out = scores.copy()
        out[:, self.c] = -float("inf")
        return out


def test_a_step_of_ones_own_joins_the_one_loop(tmp_path, monkeypatch):
    trained = shaped_checkpoint(tmp_path)
    options = dict(num_songs=3, seed=1, length=400, temperature=1.0)
    assert any("e" in song.text for song in sampling.generate(trained, **options))
    step = NoLetter(trained.vocab.index["e"])
    made = steps_for
    monkeypatch.setattr(sampling, "steps_for", lambda *a: made(*a) + [step])
    songs = sampling.generate(trained, **options)
    assert step.seen > 100 and all("e" not in song.text for song in songs)


def test_the_table_of_rules_is_the_rules():
    # Outside a song's title the guide looks a row's rules up by its answers: a row's every
    # step, in songs of every shape, agrees with the rules reckoned from its answers.
    text = make_songs(30, seed=2)
    chars = Vocab.from_text(text).chars
    guide = ShapeGuide(measure(text), chars, 4, 1200, seed="7", songs=4)
    code, flags = _table_of_rules(guide.limits, guide.ends.close_to is not None)
    rng, checked = random.Random(3), 0
    for _ in range(1500):
        guide.steer(np.zeros((4, len(chars)), dtype=np.float32))
        for r in range(4):
            key = guide.standing.key(r)
            if key >= 0:  # (outside a song's start and title)
                assert (code[key], flags[key]) == guide._at_start(guide.standing.answers(r))
                checked += 1
        # A text of words, lines, blank lines and ends, as a model might write.
        guide.chosen([chars.index(rng.choice("ab  \n\n\n")) if rng.random() > 0.002 else 0
                      for _ in range(4)])
    assert checked > 3000


def test_each_step_says_what_it_did(tmp_path):
    trained = shaped_checkpoint(tmp_path)
    guide = ShapeGuide(measure(make_songs()), trained.vocab.chars, 1, 3000)
    guide.steer(np.zeros((1, len(trained.vocab.chars)), dtype=np.float32))
    assert guide.explain(0) == ["a titled song starts with '#'"]
    opts = SampleOptions(temperature=0.5, top_k=3, top_p=0.9).checked()
    told = {step.name: step.explain(0) for step in steps_for(trained, opts, None, 1, "1")}
    assert told["temperature"] == ["scores divided by the temperature, 0.5"]
    assert told["top-k"] == ["only the 3 likeliest symbols may be drawn"]
    assert told["top-p"] == ["only the likeliest symbols that together reach 0.9 may be drawn"]


# -- speed without other songs (#33) ------------------------------------------------------------

def test_beside_other_songs_a_chorus_is_drawn_as_set_without_calls_of_its_own(tmp_path,
                                                                             monkeypatch):
    # Read alone in one call, a chorus costs a call of one row per character, where the rows
    # of a batch step anyway: beside other songs it is drawn as set, one step a character,
    # and still comes back word for word.
    from songgen.writing.steering.rows import Rows

    trained = craft_checkpoint(tmp_path, nl_bias=3.5)
    fed = []
    feed = Rows.feed
    monkeypatch.setattr(Rows, "feed", lambda self, r, t: fed.append(len(t)) or feed(self, r, t))
    songs = sampling.generate(trained, num_songs=4, seed=3, length=900, rhyme="off",
                              chorus="auto", temperature=1.0, trace=True)
    back = [song for song in songs if song.craft["chorus_back"]]
    assert back and not any(n > 1 for n in fed)
    for song in back:
        stanzas = ["\n".join(lines) for lines in lyric_stanzas(song.text)]
        chorus = next(s for s in stanzas[1:] if s.count("\n") >= 1)
        assert song.text.count("\n\n" + chorus + "\n") >= 2
        # The view inside tells it as known text, not a choice of the model's.
        start = song.text.index("\n\n" + chorus + "\n", song.text.index(chorus) + 1) + 2
        prime = len(song.text) - len(song.trace)
        assert all(t.known for t in song.trace[start - prime:start - prime + len(chorus)])


def test_a_line_written_again_goes_on_from_where_its_last_word_started(tmp_path, monkeypatch):
    # A second round (no candidate rhymed) goes on from the best lane's state kept where its
    # last word started: the state reading the kept part anew would reach, without the call.
    from songgen.writing.steering.candidates import Candidates

    trained = craft_checkpoint(tmp_path)
    again, compared = Candidates._again, []

    def checked(self, s, song):
        lane, tail = song.again_lane, song.tail
        start_h = self.start_snap.hs[s].clone()
        start_c = [c[s].clone() for c in self.start_snap.c]
        again(self, s, song)
        if not tail:  # (the line's one word was its last: from the line's start)
            return
        if song.word_at[lane] != len(tail):
            compared.append(False)
            return
        layers = trained.model.lstm.num_layers
        h = start_h.view(layers, 1, -1).float()
        c = torch.stack(start_c)[:, None].float()
        _, (h, c) = trained.model(torch.tensor([tail]), (h.contiguous(), c.contiguous()))
        for row in range(s, self.rows.count, self.n):
            assert torch.allclose(self.rows.layers.hs[row].float(), h[:, 0].reshape(-1),
                                  atol=1e-4)
        assert [t for t, _ in song.cands[0]] == tail
        compared.append(True)

    monkeypatch.setattr(Candidates, "_again", checked)
    songs = sampling.generate(trained, num_songs=3, seed=4, length=700, rhyme="AABB",
                              temperature=1.0, precision="fp32")
    assert compared.count(True) >= 10 and compared.count(True) >= 0.9 * len(compared)
    assert all(song.chars > 100 for song in songs)


def test_lanes_stop_at_the_first_line_that_is_all_the_steps_ask(tmp_path, monkeypatch):
    # Waiting for the longest candidate line made a song wait a third longer a line: once a
    # line that rhymes (and scans) has ended, the lanes less likely so far stop, and the line
    # kept is one that is all the steps ask.
    from songgen.writing.steering.candidates import Candidates

    trained = craft_checkpoint(tmp_path)
    pick, kept = Candidates._pick, []

    def watched(self, s, song):
        dropped = set(song.dropped)
        lane = pick(self, s, song)
        if dropped and lane is not None:
            kept.append(self._satisfied(s, song, lane) and lane not in dropped)
        return lane

    monkeypatch.setattr(Candidates, "_pick", watched)
    sampling.generate(trained, num_songs=3, seed=4, length=700, rhyme="AABB", temperature=1.0)
    assert len(kept) >= 5 and all(kept)


def test_lanes_stop_at_a_line_that_is_all_but_the_rhyme_a_second_round_writes(tmp_path,
                                                                            monkeypatch):
    # A line that must rhyme and ends on no rhyme is written again from its last word (a second
    # round): once a line that is all the steps ask but that has ended, the lanes less likely so
    # far stop rather than run on to their ends, and the line kept still rhymes.
    from songgen.songcraft.measures import rhymes
    from songgen.writing.steering.candidates import Candidates
    from songgen.writing.steering.rhyme import Rhyme

    trained = craft_checkpoint(tmp_path)
    drop, kept_line, marked, rhymed = Candidates._drop_open_lanes, Rhyme.kept_line, set(), []

    def dropping(self, song, ended, settled=True):
        before = sum(song.done)
        drop(self, song, ended, settled)
        if not settled and sum(song.done) > before:
            marked.add(id(song))

    def keeping(self, s, text, word):
        song = self.lines.songs[s]
        if id(song) in marked:
            marked.discard(id(song))
            rhymed.append(rhymes(word, self.songs[s].target))
        kept_line(self, s, text, word)

    monkeypatch.setattr(Candidates, "_drop_open_lanes", dropping)
    monkeypatch.setattr(Rhyme, "kept_line", keeping)
    sampling.generate(trained, num_songs=3, seed=4, length=700, rhyme="AABB", temperature=1.0)
    assert len(rhymed) >= 5 and all(rhymed), rhymed
