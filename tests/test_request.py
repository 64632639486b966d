"""One song request (SampleOptions): `songgen sample`'s and the studio's options take their
defaults and limits from its fields, it is checked once on every path, and the two faces
decide the seed, an old checkpoint's missing measures and a song's JSON alike."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import fields

import click
import pytest
from click.testing import CliRunner

from songgen.cli.commands import cli
from songgen.cli.sample import sample
from songgen.errors import ConfigError
from songgen.studio.httpserver import HTTPProblem
from songgen.studio.write_request import WRITE_LENGTH, WRITE_RETRIES, WRITE_SONGS, parse_write
from songgen.writing import request
from songgen.writing.request import SampleOptions, rule
from songgen.writing.sampling import generate

from .studio_support import Client, studio
from .test_songcraft import craft_checkpoint

NAMES = [f.name for f in fields(SampleOptions)]
# What `songgen sample --json` and the studio's song event carried before they were one
# record: a script may parse any of them.
PARSED = {"number", "text", "title", "chars", "stop", "bits_per_char", "seed", "temperature",
          "top_k", "top_p", "checkpoint", "step", "longest_copy", "longest_copy_text", "copy",
          "shape", "craft", "style"}
CRAFT = {"rhyme", "chorus", "words", "chorus_planned", "scan", "patterns", "rhymes",
         "chorus_stanzas", "repeated_lines", "syllables"}


# -- the command line's options are the request's ----------------------------------------------

def test_every_sample_option_of_the_request_has_its_default_and_limit():
    shown = {p.name: p for p in sample.params if p.name in NAMES}
    # Those the command line leaves to the library: the prime is made of --title, --prime and
    # --prime-file; more_lines is the studio's next-line ideas, trace its view of the choices.
    assert set(NAMES) - set(shown) == {"more_lines", "trace"}
    defaults = SampleOptions()
    for name, param in shown.items():
        found = rule(name)
        assert param.default == getattr(defaults, name), name
        if isinstance(param.type, click.Choice):
            assert tuple(param.type.choices) == found.choices, name
        if isinstance(param.type, (click.IntRange, click.FloatRange)):
            assert (param.type.min, param.type.max, param.type.min_open) == (
                found.low, found.high, found.low_open), name


@pytest.mark.parametrize("name", ["temperature", "top_p", "length", "num_songs", "retries",
                                  "words", "seed", "max_copy"])
def test_the_command_line_refuses_just_past_the_requests_limit(name):
    found = rule(name)
    step = 1 if found.kind is int else 1e-9
    flag = {"temperature": "--temp", "num_songs": "-n"}.get(name, "--" + name.replace("_", "-"))
    for value in (found.low - (0 if found.low_open else step), found.high and found.high + step):
        if value is None:
            continue
        result = CliRunner().invoke(cli, ["sample", "nothing.pt", flag, str(value)])
        assert result.exit_code == 2 and "Invalid value for" in result.stderr, (name, value)
        with pytest.raises(ConfigError):
            SampleOptions(**{name: value}).checked()


# -- the studio's options are the request's, or lower -----------------------------------------

def test_an_empty_studio_write_asks_what_the_librarys_defaults_ask():
    asked = {k: v for k, v in parse_write({}).items() if k in NAMES}
    asked["style"] = asked["style"] or None
    assert set(asked) == set(NAMES) - {"precision", "shape", "corpus"}  # the studio's own
    defaults = SampleOptions()
    assert asked == {name: getattr(defaults, name) for name in asked}


@pytest.mark.parametrize("name, cap", [("num_songs", WRITE_SONGS), ("length", WRITE_LENGTH),
                                       ("retries", WRITE_RETRIES), ("temperature", None),
                                       ("top_p", None), ("words", None), ("seed", None)])
def test_the_studio_keeps_the_requests_limits_and_its_own_lower_caps(name, cap):
    found = rule(name)
    high = found.high if cap is None else cap
    assert high <= found.high
    assert parse_write({name: high})[name] == high
    with pytest.raises(HTTPProblem):
        parse_write({name: high + (1 if found.kind is int else 1e-6)})
    if not found.low_open:
        assert parse_write({name: found.low})[name] == found.low


# -- checked once ------------------------------------------------------------------------------

@pytest.fixture
def counted_checks(monkeypatch):
    seen = []
    check = request.Rule.check

    def counting(self, value):
        seen.append(self)
        return check(self, value)

    monkeypatch.setattr(request.Rule, "check", counting)
    return seen


def test_the_library_checks_a_request_once(tmp_path, counted_checks):
    trained = craft_checkpoint(tmp_path)
    generate(trained, num_songs=2, seed=3, length=120)
    assert len(counted_checks) == len(NAMES)
    options = SampleOptions(seed=3, length=120).checked()
    counted_checks.clear()
    generate(trained, options)
    assert counted_checks == []  # a checked request is taken as it is


def test_songgen_sample_checks_its_request_once(tmp_path, counted_checks):
    trained = craft_checkpoint(tmp_path)
    result = CliRunner().invoke(cli, ["sample", str(trained.path), "--seed", "3", "--length",
                                      "120", "-n", "2", "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    names = {id(rule(name)): name for name in NAMES}
    checks = Counter(names[id(found)] for found in counted_checks)
    # Every option once, in the request; the rhyme pattern also as click reads it (as click
    # checks a number against its range), for a usage error (exit 2).
    assert checks == {**{name: 1 for name in NAMES}, "rhyme": 2}


# -- the seed ----------------------------------------------------------------------------------

def test_a_request_without_a_seed_gets_one_that_its_songs_keep(tmp_path):
    options = SampleOptions().checked()
    assert 0 <= options.seed < 2**31 and options.checked().seed == options.seed
    trained = craft_checkpoint(tmp_path)
    songs = generate(trained, SampleOptions(length=100, num_songs=2))
    assert songs[0].seed == songs[1].seed == songs[0].options.seed
    again = generate(trained, length=100, num_songs=2, seed=songs[0].seed)
    assert [s.text for s in again] == [s.text for s in songs]


# -- one song JSON, one old-checkpoint policy, from both faces ---------------------------------

def both_faces(tmp_path, args: list[str], body: dict):
    """The records of `songgen sample ARGS --json` and the song events of a studio write of
    BODY, on the model in tmp_path/m.pt."""
    cli_out = CliRunner().invoke(cli, ["sample", str(tmp_path / "m.pt"), "--json", "--device",
                                       "cpu", *args])
    assert cli_out.exit_code == 0, cli_out.output
    records = [json.loads(line) for line in cli_out.stdout.splitlines()]
    with studio(tmp_path) as server:
        status, events = Client(server, timeout=60).write({"model": "m.pt", **body})
    assert status == 200, events
    return records, [data for kind, data in events if kind == "song"], cli_out.stderr


def test_the_command_line_and_the_studio_give_one_song_json(tmp_path):
    craft_checkpoint(tmp_path)
    records, songs, _ = both_faces(tmp_path, ["-n", "2", "--seed", "5", "--length", "300",
                                              "--rhyme", "AABB"],
                                   {"num_songs": 2, "seed": 5, "length": 300, "rhyme": "AABB",
                                    "originality": False})
    assert len(records) == len(songs) == 2
    for record, song in zip(records, songs):
        assert set(record) == set(song) and PARSED <= set(record)
        assert CRAFT <= set(record["craft"]) and set(record["craft"]) == set(song["craft"])
        assert set(record["shape"]) == set(song["shape"]) >= {"mode", "guided_end"}
        # The same song, told alike; the model named as each face knows it.
        assert record["checkpoint"] == str(tmp_path / "m.pt") and song["checkpoint"] == "m.pt"
        assert {**record, "checkpoint": None} == {**song, "checkpoint": None}
        assert record["craft"]["rhyme"] == "AABB" and record["seed"] == 5


def test_an_old_checkpoint_writes_without_measures_alike_in_both_faces(tmp_path):
    craft_checkpoint(tmp_path, measures=False)
    records, songs, stderr = both_faces(tmp_path, ["--seed", "2", "--length", "200"],
                                        {"seed": 2, "length": 200, "originality": False})
    assert "has no rhyme, chorus or word measures" in stderr
    for told in (records[0], songs[0]):
        assert {k: told["craft"][k] for k in ("rhyme", "chorus", "words")} == {
            "rhyme": "off", "chorus": "off", "words": 1.0}
    assert records[0]["text"] == songs[0]["text"]
    with pytest.warns(request.WithoutMeasures):
        (song,) = generate(str(tmp_path / "m.pt"), seed=2, length=200, device="cpu")
    assert (song.options.rhyme, song.options.chorus, song.text) == ("off", "off",
                                                                    records[0]["text"])
    # A rhyme pattern needs the measures: refused by both, before any song.
    with studio(tmp_path) as server:
        status, answer = Client(server).write({"model": "m.pt", "rhyme": "AABB"})
    assert status == 400 and "no rhyme measures" in answer["error"]
    with pytest.raises(request.NoMeasures):
        generate(str(tmp_path / "m.pt"), rhyme="AABB", device="cpu")
