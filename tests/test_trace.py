"""The trace of a writing (SampleOptions(trace=True), songgen/writing/trace.py): for each character
written, the model's own choices and what every steering step did to them; and the studio's
write that asks for it (a `trace` event after each `chars` event)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from songgen.songcraft.measures import rhymes, words_of
from songgen.writing.sampling import generate
from songgen.writing.trace import KNOWN

from .studio_support import client, root, server  # noqa: F401 (fixtures)
from .test_shape import shaped_checkpoint
from .test_songcraft import craft_checkpoint

FREE = dict(shape="free", rhyme="off", chorus="off", scan="off", words=1.0)


def _model_p(trained, song) -> list[float]:
    """The model's probability of each character written after the prime, from one forward
    pass over the whole song (after an end-of-song symbol, as the sampler reads the prime)."""
    ids = [0] + trained.vocab.encode(song.text).tolist()
    with torch.no_grad():
        logits, _ = trained.model(torch.tensor([ids]), trained.start_state)
    probs = torch.softmax(logits[0].float(), dim=-1)
    start = len(song.options.prime)
    return [probs[k, ids[k + 1]].item() for k in range(start, len(song.text))]


def test_the_trace_gives_the_models_own_probabilities(tmp_path):
    trained = craft_checkpoint(tmp_path)
    song, = generate(trained, seed=5, length=160, temperature=0.7, top_k=5, prime="I walk",
                     trace=True, **FREE)
    traced = song.trace
    assert len(traced) == len(song.text) - len("I walk") and song.text.startswith("I walk")
    expected = _model_p(trained, song)
    assert max(abs(t.p - p) for t, p in zip(traced, expected)) < 1e-4
    for t, c in zip(traced, song.text[len("I walk"):]):
        assert trained.vocab.chars[t.token] == c
        listed = [i for i, *_ in t.choices]
        assert len(listed) >= 5 and t.token in listed
        # The model's likeliest first, each with its probability in the draw made.
        assert [pm for _, pm, _, _ in t.choices][:5] == sorted(
            [pm for _, pm, _, _ in t.choices][:5], reverse=True)
        assert abs(sum(pd for _, _, pd, _ in t.choices) - 1) < 1e-4  # top-k 5: all listed
        assert [e.step for e in t.steps] == ["temperature", "top-k"]
        assert t.steps[0].words == ["scores divided by the temperature, 0.7"]
        dropped = [i for i, pm, pd, note in t.choices if pd == 0]
        assert dropped and all(note == "removed by top-k" for i, pm, pd, note in t.choices
                               if i in dropped)
        assert set(t.steps[1].removed) == set(dropped)


def test_the_trace_changes_nothing_in_the_songs(tmp_path):
    trained = craft_checkpoint(tmp_path)
    for options in (FREE, dict(rhyme="AABB", chorus="auto")):
        plain = generate(trained, num_songs=2, seed=3, length=400, temperature=1.0, **options)
        traced = generate(trained, num_songs=2, seed=3, length=400, temperature=1.0,
                          trace=True, **options)
        assert [s.text for s in traced] == [s.text for s in plain]
        assert [s.bits_per_char for s in traced] == [s.bits_per_char for s in plain]
        assert all(s.trace is None for s in plain)
        assert all(len(s.trace) == len(s.text) for s in traced)  # (no prime)


def test_a_titles_mark_is_forced_by_the_shape(tmp_path):
    trained = shaped_checkpoint(tmp_path)
    song, = generate(trained, seed=2, length=300, trace=True, rhyme="off", chorus="off",
                     scan="off", words=1.0)
    first = song.trace[0]
    assert song.text.startswith("# ") and trained.vocab.chars[first.token] == "#"
    assert first.p_drawn == pytest.approx(1.0)
    shape = next(e for e in first.steps if e.step == "shape")
    assert shape.forced == first.token and shape.words == ["a titled song starts with '#'"]
    notes = {i: note for i, _, _, note in first.choices}
    assert notes[first.token] == "forced by shape"
    assert all(note.startswith("removed by shape") for i, note in notes.items()
               if i != first.token)
    record = first.as_json(trained.vocab.chars)
    assert record["char"] == "#" and record["steps"][0]["forced"] == "#"
    json.dumps(record)


def _lines(song):
    """Each line written: (its text, the traces of its characters), the line break included."""
    out, start = [], 0
    for k, c in enumerate(song.text):
        if c == "\n":
            out.append((song.text[start:k], song.trace[start:k + 1]))
            start = k + 1
    return out


def test_a_rhymed_lines_last_word_is_steered_by_the_rhyme(tmp_path):
    trained = craft_checkpoint(tmp_path)
    songs = generate(trained, num_songs=2, seed=1, length=500, rhyme="AABB", chorus="off",
                     temperature=1.0, trace=True)
    asked = steered = 0
    for song in songs:
        for text, traces in _lines(song):
            words = [w for t in traces for e in t.steps if e.step == "rhyme" for w in e.words]
            target = next((w.split("'")[1] for w in words if "is to rhyme with" in w), None)
            if target is None or not words_of(text):
                continue
            asked += 1
            # Written on the lanes and chosen: every character says among which candidates.
            assert all(t.line and "chosen among 3 candidate lines written side by side"
                       in t.line for t in traces), text
            assert f"rhyme: the line is to rhyme with '{target}'" in traces[0].line
            last = words_of(text)[-1]
            if not rhymes(last, target):
                continue
            # Its last word: where no candidate rhymed, its letters were drawn only among those
            # continuing a rhyme (the rhyme step removed the others).
            end = text.lower().rfind(last)
            ending = traces[end:end + len(last)]
            if any(t.line.startswith("None of the first") for t in ending):
                steered += 1
                assert all(any(e.step == "rhyme" and (e.removed or e.forced is not None)
                               and any("continue a word rhyming with" in w for w in e.words)
                               for e in t.steps) for t in ending), text
    assert asked >= 5 and steered >= 1


def test_a_chorus_coming_back_is_known_text_not_drawn(tmp_path):
    trained = craft_checkpoint(tmp_path)
    songs = generate(trained, num_songs=4, seed=3, length=900, rhyme="off", chorus="auto",
                     temperature=1.0, trace=True)
    known = [t for song in songs for t in song.trace if t.known]
    assert known and all(t.known == KNOWN and t.p_drawn is None for t in known)
    assert all(0 < t.p <= 1 and t.choices == [(t.token, t.p, None, "")] for t in known)
    drawn = [t for song in songs for t in song.trace if not t.known]
    assert all(t.p_drawn is not None and not math.isnan(t.p) for t in drawn)


# -- the studio ---------------------------------------------------------------------------------

def test_the_studio_streams_each_characters_trace(client):  # noqa: F811 (fixture)
    status, answer = client.write({"model": "runA/best.pt", "num_songs": 2, "length": 120,
                                   "seed": 4, "trace": True})
    assert status == 200
    kinds = [kind for kind, _ in answer]
    prime = answer[0][1]["prime"]
    texts, traces = [prime, prime], [[], []]
    for k, (kind, data) in enumerate(answer):
        if kind == "chars":
            assert answer[k + 1][0] == "trace"  # each step's text, then its traces
            for i, (c, found) in enumerate(zip(data, answer[k + 1][1])):
                assert (c is None) == (found is None)
                if c is not None:
                    texts[i] += c
                    traces[i] += found
                    assert "".join(t["char"] for t in found) == c
    songs = [data for kind, data in answer if kind == "song"]
    assert [s["text"] for s in songs] == [t.rstrip("\n") if s["stop"] == "max-lines" else t
                                          for s, t in zip(songs, texts)]
    first = traces[0][0]
    assert set(first) >= {"char", "p", "p_final", "choices", "steps"}
    assert all(len(row) == 4 for row in first["choices"])
    assert kinds.count("trace") == kinds.count("chars")
    status, plain = client.write({"model": "runA/best.pt", "num_songs": 2, "length": 120,
                                  "seed": 4})
    assert "trace" not in [kind for kind, _ in plain]
    assert [d for k, d in plain if k == "song"][0]["text"] == songs[0]["text"]


def test_the_studio_traces_a_songs_first_characters_only(client, monkeypatch):  # noqa: F811
    from songgen.studio import server as studio_server

    monkeypatch.setattr(studio_server, "TRACE_CHARS", 10)
    status, answer = client.write({"model": "runA/endless.pt", "length": 60, "seed": 1,
                                   "trace": True})
    found = [t for kind, data in answer if kind == "trace" for t in data[0] or []]
    assert len(found) == 60 - len(answer[0][1]["prime"])
    assert all(t is not None for t in found[:10]) and all(t is None for t in found[10:])


@pytest.mark.parametrize("value", ["yes", 1, None, [True]])
def test_the_studio_takes_trace_only_as_true_or_false(client, value):  # noqa: F811
    status, data = client.write({"model": "runA/best.pt", "trace": value})
    assert status == 400 and data["error"] == "trace must be true or false"
