"""The measuring suite of docs/inside.md (benchmarks/bench_inside.py): where each held-out
character stands in its song, which characters a line that comes back covers, the window
network's size and the plot. The suite itself trains for minutes; these check its arithmetic."""

import importlib.util
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch

_spec = importlib.util.spec_from_file_location(
    "bench_inside", Path(__file__).resolve().parent.parent / "benchmarks" / "bench_inside.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

CHARS = ["\x00", "\n", " ", "a", "b", "c", "d", "e"]  # id 0 ends a song, as in songgen


def _ids(text: str) -> torch.Tensor:
    return torch.tensor([CHARS.index(c) for c in text])


def test_positions_count_from_each_songs_first_character():
    data = _ids("\x00ab\x00c\x00")
    # Scored: a b [end] c [end]; the end of a song stands after its last character.
    assert bench.positions(data).tolist() == [0, 1, 2, 0, 1]
    # A text that starts inside a song: its first song's positions are unknown.
    assert bench.positions(_ids("ab\x00c")).tolist() == [-1, -1, 0]


def test_by_position_buckets():
    logp = -np.array([1.0, 2.0, 3.0, 4.0])
    pos = np.array([0, 9, 10, 1500])
    found = bench.by_position(logp, pos)
    assert found["0-9"] == {"loss": 1.5, "chars": 2}
    assert found["10-49"] == {"loss": 3.0, "chars": 1}
    assert found["1000+"] == {"loss": 4.0, "chars": 1}
    assert found["50-199"] == {"loss": None, "chars": 0}


def test_a_line_that_comes_back_is_scored_on_exactly_its_characters():
    line = "ab ab ab ab"
    song = f"{line}\ncc\n{line}\ndd"
    data = _ids("\x00" + song + "\x00")
    logp = np.full(len(data) - 1, -9.0)
    right = np.zeros(len(data) - 1, bool)
    first = 1 + len(line) + 1 + 3  # data index of the second time's first character
    again = slice(first - 1, first - 1 + len(line) + 1)  # its characters and its newline
    logp[again] = -1.0
    logp[first - 1] = -3.0  # the first character: who knows when a chorus comes back
    right[again] = True
    right[first - 1] = False
    logp[: len(line) + 1] = -2.0  # the first time
    found = bench.repeated_lines(data, CHARS, logp, right)
    n = len(line) + 1
    assert found["lines"] == 1
    assert found["loss_first"] == pytest.approx(2.0)
    assert found["loss_again"] == pytest.approx(round((3.0 + (n - 1)) / n, 4))
    assert found["right_chars"] == pytest.approx(round((n - 1) / n, 4))
    assert found["whole_lines"] == 1.0  # right at every character after the first
    assert bench.repeated_lines(_ids("\x00ab\nab\x00"), CHARS, np.zeros(5), np.ones(5, bool)
                                ) == {"lines": 0}  # lines of under four words are no chorus


def test_the_window_network_has_about_the_lstms_parameters():
    for params in (80_000, 900_000, 3_000_000):
        net = bench.window_mlp(vocab=60, window=32, embed=32, params=params, dropout=0.1)
        assert sum(p.numel() for p in net.parameters()) == pytest.approx(params, rel=0.02)


def test_the_plot_is_an_svg_with_a_line_per_series():
    runs = [{"seq_len": n, "held_out_loss": 2.0 - math.log(n) / 10,
             "by_position": {"0-9": {"loss": 2.5}, "1000+": {"loss": None if n == 8 else 1.5}}}
            for n in (8, 50, 400)]
    svg = ET.fromstring(bench.seqlen_svg(runs))
    lines = svg.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 3
    assert len(lines[2].get("points").split()) == 2  # a bucket empty at one length: no point
