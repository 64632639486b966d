"""Stanzas against the song's earlier ones (#33): lines written to the first stanza's
syllables (scansion), and no stanza three times in a row."""

import math

import pytest
import torch

from songgen.run import checkpoint as ckpt
from songgen.errors import ConfigError
from songgen.writing.request import SampleOptions
from songgen.writing.sampling import generate
from songgen.writing.steering.build import steps_for
from songgen.writing.steering.lines import BIG
from songgen.writing.steering.rows import Rows
from songgen.songcraft.measures import Measures, measure, scansion
from songgen.writing.stanzas import scan_wanted, stanza_key
from songgen.run.trained import load_checkpoint

from .test_songcraft import SONGS, craft_checkpoint


def scanning(lines: int = 100, close: int = 90) -> Measures:
    return Measures(songs=10, stanzas=40, rhyming=20, patterns={"XXXX": 40},
                    vocabulary=["night", "light"], scan_lines=[close, lines])


def test_the_corpus_scansion_is_kept_and_old_records_scan_off():
    m = measure(SONGS)
    assert m.scan_lines == list(scansion(SONGS)) and m.scan_lines[1] > 0
    again = Measures.from_dict(m.to_dict())
    assert again.scan_lines == m.scan_lines
    old = m.to_dict()
    del old["scan_lines"]  # a checkpoint from before scansion was measured
    old_m = Measures.from_dict(old)
    assert old_m is not None and old_m.scan_rate is None and not scan_wanted(old_m, "auto")
    assert scan_wanted(scanning(), "auto") and not scan_wanted(scanning(), "off")
    assert not scan_wanted(scanning(close=50), "auto")   # the corpus's lines do not scan
    assert not scan_wanted(scanning(lines=10, close=10), "auto")  # too few to tell


def one_song(tmp_path, measures: Measures, **options):
    """The steering steps of one song (no shape guide), started on a tiny model's rows: the
    model, the rows, and the steps by name."""
    trained = craft_checkpoint(tmp_path)
    opts = SampleOptions(**{"rhyme": "off", "chorus": "off", "words": 1.0, "scan": "off",
                            "shape": "free", "temperature": 1.0, **options}).checked()
    steps = steps_for(trained, opts, measures, 1, "1")
    rows = Rows(trained, 1, steps, "", "fp32", [None])
    return trained, rows, {step.name: step for step in steps}


def steered(rows: Rows, scores: torch.Tensor) -> torch.Tensor:
    """`scores` through every step, as the sampler's loop steers them (a copy: the loop's
    own scores are its own)."""
    rows.scores()  # (which rows are read)
    scores = scores.numpy().copy()
    for step in rows.steps:
        scores = step.steer(scores)
    return torch.from_numpy(scores)


def test_a_later_stanza_keeps_the_likeliest_line_that_scans(tmp_path):
    trained, rows, steps = one_song(tmp_path, scanning(), scan="auto")
    lines, scan = steps["lines"], steps["scan"]
    assert lines.lanes > 1
    song = lines.songs[0]
    scan.songs[0].models, song.stanza_index, song.stanza = {2: [8, 8]}, 1, []
    song.mode, scan.songs[0].syll = "lanes", (6, 10)
    ids = trained.vocab.index
    written = [("oh no", -0.1), ("i walk alone into the night", -0.6), ("yes", -0.2),
               ("the long road ever going on and on and on and on", -0.3)]
    song.cands = [[(ids[c], lp) for c in text] + [(ids["\n"], lp)] for text, lp in written]
    assert lines.candidates._pick(0, song) == 1
    assert (scan.songs[0].asked, scan.songs[0].fit) == (1, 1)
    scan.songs[0].syll = None  # a free line: the likeliest
    assert lines.candidates._pick(0, song) == 0


def scan_checkpoint(tmp_path):
    trained = craft_checkpoint(tmp_path, nl_bias=2.0)  # lines of many lengths
    record = dict(trained.checkpoint.songcraft, scan_lines=[95, 100])
    state = ckpt.load(trained.path)
    state.songcraft = record
    path = tmp_path / "scan.pt"
    ckpt.save(state, path)
    return load_checkpoint(path, device="cpu")


def test_songs_scan_when_the_corpus_does(tmp_path):
    trained = scan_checkpoint(tmp_path)
    options = dict(num_songs=4, seed=5, length=1500, rhyme="off", chorus="off",
                   temperature=1.0)
    on = generate(trained, **options)
    off = generate(trained, **options, scan="off")
    assert all(s.craft["scan"] and s.craft["scan_lines_asked"] > 0 for s in on)
    close_on, compared_on = scansion([s.text for s in on])
    close_off, compared_off = scansion([s.text for s in off])
    assert compared_on >= 20 and compared_off >= 20
    rate_on, rate_off = close_on / compared_on, close_off / compared_off
    assert rate_on >= 0.8 and rate_on > rate_off + 0.1, (rate_on, rate_off)  # (0.86, 0.70)
    # The same seed, the same songs.
    assert [s.text for s in generate(trained, **options)] == [s.text for s in on]


def test_scan_is_auto_or_off():
    from songgen.writing.request import SampleOptions

    with pytest.raises(ConfigError, match="scan"):
        SampleOptions(scan="on").checked()


# -- a stanza three times in a row --------------------------------------------------------------

def test_a_stanza_sung_twice_may_not_be_copied_a_third_time(tmp_path):
    trained, rows, steps = one_song(tmp_path, scanning(), chorus="auto")
    lines, nl = steps["lines"], trained.vocab.index["\n"]
    song = lines.songs[0]
    twice = stanza_key(["sing it slow", "sing it low"])
    song.recent, song.stanza, song.stanza_index, song.lines_seen = [twice, twice], [
        "sing it slow"], 3, 9
    lines._line_start(0, song)  # the stanza's second line: it would end the third copy
    song.line = "sing it low "
    scores = torch.zeros(rows.count, len(trained.vocab.chars))
    scores[:, nl] = 10.0  # the model wants the line break
    out = steered(rows, scores)
    assert out[0, nl] <= -BIG / 2 and out[0, 0] <= -BIG / 2
    assert steps["repeats"].explain(0)  # and says why
    song.line = "sing it loud"  # another line: free to end
    assert steered(rows, scores)[0, nl] == 10.0
    song.recent = [stanza_key(["other"]), twice]  # sung once before: a second time is fine
    lines._line_start(0, song)
    song.line = "sing it low"
    assert steered(rows, scores)[0, nl] == 10.0


def test_a_chorus_the_model_just_sang_is_not_brought_back_after_it(tmp_path):
    trained, rows, steps = one_song(tmp_path, scanning(), chorus="auto")
    lines, chorus = steps["lines"], steps["chorus"].songs[0]
    song = lines.songs[0]
    chorus.planned, chorus.text, chorus.first = True, "sing it slow\nlow\n", 1
    song.stanza, song.lines_seen, song.stanza_index = [], 8, 3  # due: 1 + 2
    song.recent = [stanza_key(["a verse"]), stanza_key(["sing it slow", "low"])]
    lines.candidates.start_snap = None  # (nothing may be read)
    assert lines._line_start(0, song) == []
    assert chorus.back == 1  # it came back, sung by the model


def test_a_line_short_of_its_syllables_may_not_end_and_one_at_its_most_goes_on(tmp_path):
    # Made to end at its most syllables, a line ended where its phrase went on ("That was my
    # horse come back to", a tenth of the ballads' lines) or after a blank ("and the king "):
    # at its most it goes on as the model writes it, and loses to a lane that scans.
    trained, rows, steps = one_song(tmp_path, scanning(), scan="auto")
    song, ids = steps["lines"].songs[0], trained.vocab.index
    song.mode, song.cands, song.done = "lanes", [[]] * 4, [False] * 4
    steps["scan"].songs[0].syll = (2, 6)
    row = steps["words"].row[0]
    row.syl, row.ink, row.col, row.word = 6, 20, 25, ""
    scores = torch.zeros(rows.count, len(trained.vocab.chars))
    scores[:, ids[" "]] = 10.0  # the model wants a blank
    out = steered(rows, scores)
    assert out[0, ids[" "]] == 10.0 and out[0, ids["b"]] == 0.0 and out[0, ids["\n"]] == 0.0
    # Short: no line end yet; the line goes on with a word, not glued to the line's last one
    # ("hand.''d was the men").
    row.syl, row.col = 1, 5
    scores[:, ids["\n"]] = 12.0
    out = steered(rows, scores)
    assert out[0, ids["\n"]] <= -BIG / 2
    assert out[0, ids[" "]] == pytest.approx(math.log(math.exp(10.0) + math.exp(12.0)))
    assert out[0, ids["b"]] == 0.0


def test_a_lane_past_its_syllables_stops_once_a_line_that_scans_and_rhymes_has_ended(
        tmp_path, monkeypatch):
    # Once a line that is all the steps ask has ended, a lane whose words already have more
    # syllables than its line may could never be chosen over it: it stops (a model row and
    # the steps' work saved per character), and the line kept is the one that scans.
    from songgen.writing.steering.candidates import Candidates

    trained = scan_checkpoint(tmp_path)
    hopeless, pick, marked, kept = Candidates._hopeless, Candidates._pick, {}, []

    def spied(self, s, r):
        out = hopeless(self, s, r)
        if out:
            marked.setdefault(s, set()).add(r // self.n)
        return out

    def picked(self, s, song):
        lanes = marked.pop(s, set())
        lane = pick(self, s, song)
        if lanes:
            kept.append(lane is not None and lane not in lanes and lanes <= song.dropped
                        and self._satisfied(s, song, lane))
        return lane

    monkeypatch.setattr(Candidates, "_hopeless", spied)
    monkeypatch.setattr(Candidates, "_pick", picked)
    generate(trained, num_songs=4, seed=5, length=1500, rhyme="AABB", chorus="off",
             temperature=1.0)
    assert len(kept) >= 3 and all(kept), kept
