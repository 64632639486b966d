"""The shape of a song: measured from the corpus while it is read, kept in the checkpoint, and
used while sampling to keep every song shaped like the corpus's songs.

A small character model writes good lines but cannot hold a song's plan: it forgets the blank
line after the title, runs a stanza on for forty lines, or never ends. The sampler can hold the
plan. `ShapeMeter` measures, song by song as the corpus streams in, how long titles, lines,
stanzas and songs are; `SongShape` is the result (plain numbers and lists, so a checkpoint
holding it still loads with `torch.load(weights_only=True)`). `ShapeGuide` steers sampling with
it through the logits, never by editing text:

- a song of a titled corpus starts with "# ", its title line closes once it is longer than
  the corpus's titles (99th percentile) at the end of a word (see below), the blank line after
  it is always written, and no other line holds a "#";
- a song may not end (end-of-song symbol) mid-line, before the corpus's 5th percentile of
  characters, or before it has two stanzas (fewer where the corpus's songs have fewer);
- each song is given a length drawn from the corpus's song lengths (between their 5th and
  95th percentiles, by the seed; with none, the 95th percentile less two typical stanzas):
  from there on, the song ends at the next line end that completes a stanza as long as the
  one before it (or the corpus's median stanza, where that is shorter), so that the songs' lengths spread as the corpus's do; from the 95th
  percentile less a line, at the next line end (the model's own line end in both cases: the probability of a line break moves to
  the end-of-song symbol);
- a stanza that runs far past the corpus's stanza lengths (its 99th percentile of lines) is
  closed with a blank line at the next line end, a line that runs far past the corpus's lines
  (twice the 99th percentile) is ended, and two blank lines in a row, which would mean a song
  break, are never written inside a song;
- a title or line at its limit ends at the end of a word, never inside one: where the model
  would write a space (its probability goes to the line break), at the latest WORD_GRACE
  characters on.

- where the corpus's measures (songgen/songcraft/measures.py) say how its songs and titles end (a
  mark such as "." or a word, never ","), a song ends only after a line that ends so, and a
  title closes only so: on the line that would end the song, the probability of a line break
  or of a mark no song ends with (",", ";", ":", "-") goes to the marks songs end with.

Everywhere else the model's own choice stands. The guide's per-song state is a few (n,) integer
arrays on the host, updated from the chosen ids that the sampler reads there anyway; it works
the same for one song or a batch, with any temperature, top-k or top-p, and reproducibly with
a seed.

A corpus of a few songs gets the rules all the same, from what those songs show: with fewer
than twenty, the 5th and 95th percentiles are its shortest and longest song. One long text (a
play read as one song, such as tinyshakespeare.txt; fewer than MIN_SONGS songs) gets no
song-length rules: its samples run to the length asked for and end there at a line end (after
a complete stanza where one comes in the last stretch) instead of mid-line; so does a corpus
whose shortest song is longer than the length asked for. A corpus without the `# Title` convention gets no title
rules. A checkpoint without a recorded shape samples freely, as before.
"""

from __future__ import annotations

import math
import re
from array import array

import numpy as np

SHAPE_VERSION = 1
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
MIN_SONGS = 2           # fewer songs than this (one long text): no song lengths to keep to
_HIST = 4096            # line lengths above this are counted as this
_BLANKS = re.compile(r"\n(?:[ \t]*\n)+")   # one or more blank lines: a stanza break
SHAPES = ("auto", "song", "free")          # auto = song: shaped where the checkpoint has a shape


def _quantiles(values) -> list[int] | None:
    """The QUANTILES of integer `values` (the smallest value with at least that share at or
    below it), or None for no values."""
    data = np.sort(np.asarray(values, dtype=np.int64))
    if len(data) == 0:
        return None
    idx = [min(len(data) - 1, max(0, math.ceil(q * len(data)) - 1)) for q in QUANTILES]
    return [int(data[i]) for i in idx]


def _hist_quantiles(hist: np.ndarray) -> list[int] | None:
    total = int(hist.sum())
    if total == 0:
        return None
    cum = np.cumsum(hist)
    return [int(np.searchsorted(cum, max(1, math.ceil(q * total)))) for q in QUANTILES]


class ShapeMeter:
    """Measures songs as the corpus streams through the encoder: `add(songs)` with each list
    of songs, `add_codes(codes)` with their code points (joined by end-of-song symbols, NUL),
    in pieces. Holds one number per song and per stanza, and a histogram of line lengths."""

    def __init__(self):
        self.song_chars = array("q")
        self.stanzas = array("i")       # stanzas of each song (title not counted)
        self.stanza_lines = array("i")  # lines of each stanza
        self.stanza_chars = array("i")  # characters of each stanza
        self.title_chars = array("i")   # characters of each title line, "# " included
        self.title_blank = 0            # titled songs with a blank line after the title
        self.line_hist = np.zeros(_HIST + 1, dtype=np.int64)
        self._open_line = 0             # characters of a line a piece of codes ended inside

    def add(self, songs: list[str]) -> None:
        for song in songs:
            self.song_chars.append(len(song))
            start, stanzas = 0, 0
            if song.startswith("# "):
                end = song.find("\n")
                end = len(song) if end < 0 else end
                self.title_chars.append(end)
                blank = _BLANKS.match(song, end)
                self.title_blank += blank is not None
                start = blank.end() if blank else end + 1
            for brk in _BLANKS.finditer(song, start):
                stanzas += self._stanza(song, start, brk.start())
                start = brk.end()
            stanzas += self._stanza(song, start, len(song))
            self.stanzas.append(stanzas)

    def _stanza(self, song: str, start: int, end: int) -> int:
        if end <= start:
            return 0
        self.stanza_lines.append(song.count("\n", start, end) + 1)
        self.stanza_chars.append(end - start)
        return 1

    def add_codes(self, codes: np.ndarray) -> None:
        """Line lengths, vectorised: lines end at a line break or an end-of-song symbol."""
        ends = np.flatnonzero((codes == 10) | (codes == 0))
        if len(ends) == 0:
            self._open_line += len(codes)
            return
        lengths = np.diff(ends, prepend=-1) - 1
        lengths[0] += self._open_line
        self._open_line = len(codes) - 1 - int(ends[-1])
        lengths = lengths[lengths > 0]
        self.line_hist += np.bincount(np.minimum(lengths, _HIST), minlength=_HIST + 1)

    def shape(self) -> "SongShape":
        songs = len(self.song_chars)
        return SongShape(
            songs=songs,
            titled=round(len(self.title_chars) / songs, 4) if songs else 0.0,
            title_blank=round(self.title_blank / len(self.title_chars), 4)
            if self.title_chars else 0.0,
            title_chars=_quantiles(self.title_chars),
            song_chars=_quantiles(self.song_chars),
            stanzas=_quantiles(self.stanzas),
            stanza_lines=_quantiles(self.stanza_lines),
            stanza_chars=_quantiles(self.stanza_chars),
            line_chars=_hist_quantiles(self.line_hist),
        )


class SongShape:
    """What the corpus's songs look like. Each distribution is a list of QUANTILES (5th, 25th,
    50th, 75th, 95th, 99th percentile and the maximum), or None where there was nothing to
    measure. `titled`: the share of songs whose first line is a `# Title`; `title_blank`: the
    share of those with a blank line after the title."""

    FIELDS = ("songs", "titled", "title_blank", "title_chars", "song_chars", "stanzas",
              "stanza_lines", "stanza_chars", "line_chars")

    def __init__(self, songs: int = 0, titled: float = 0.0, title_blank: float = 0.0,
                 title_chars=None, song_chars=None, stanzas=None, stanza_lines=None,
                 stanza_chars=None, line_chars=None):
        self.songs, self.titled, self.title_blank = songs, titled, title_blank
        self.title_chars, self.song_chars, self.stanzas = title_chars, song_chars, stanzas
        self.stanza_lines, self.stanza_chars, self.line_chars = stanza_lines, stanza_chars, line_chars

    def q(self, name: str, quantile: float) -> int | None:
        values = getattr(self, name)
        return None if values is None else values[QUANTILES.index(quantile)]

    @property
    def has_titles(self) -> bool:
        return self.titled >= 0.5

    @property
    def has_song_lengths(self) -> bool:
        """Whether there are enough songs for a song-length distribution to enforce."""
        return self.songs >= MIN_SONGS and self.song_chars is not None

    def to_dict(self) -> dict:
        return {"version": SHAPE_VERSION, "quantiles": list(QUANTILES),
                **{name: getattr(self, name) for name in self.FIELDS}}

    @classmethod
    def from_dict(cls, data) -> "SongShape | None":
        """The shape stored in a checkpoint; None for anything unusable (an older or damaged
        record), so that such a checkpoint samples freely."""
        try:
            if (not isinstance(data, dict) or data.get("version") != SHAPE_VERSION
                    or list(data.get("quantiles", ())) != list(QUANTILES)):
                return None
            values = {}
            for name in cls.FIELDS:
                value = data[name]
                if name in ("songs", "titled", "title_blank"):
                    if isinstance(value, bool) or not isinstance(value, (int, float)):
                        return None
                elif value is not None:
                    if (not isinstance(value, list) or len(value) != len(QUANTILES)
                            or not all(isinstance(v, int) and v >= 0 for v in value)):
                        return None
                values[name] = value
            return cls(**values)
        except (KeyError, TypeError, ValueError):
            return None

    def __eq__(self, other):
        return isinstance(other, SongShape) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"SongShape({self.to_dict()})"


def song_form(text: str) -> dict:
    """The form of one written song: whether it has a title line and a blank line after it,
    its stanzas and lyric lines (the title not counted)."""
    titled = text.startswith("# ")
    start = 0
    blank_after_title = False
    if titled:
        end = text.find("\n")
        end = len(text) if end < 0 else end
        blank = _BLANKS.match(text, end)
        blank_after_title = blank is not None
        start = blank.end() if blank else end + 1
    body = text[start:].strip("\n")
    stanzas = [s for s in _BLANKS.split(body) if s.strip()] if body.strip() else []
    lines = sum(1 for s in stanzas for line in s.split("\n") if line.strip())
    return {"title": titled, "blank_after_title": blank_after_title, "stanzas": len(stanzas),
            "lines": lines}


def resolve(shape: str, recorded: dict | None) -> "SongShape | None":
    """The shape to sample with: the checkpoint's `recorded` one for "auto"/"song", None for
    "free" or a checkpoint that has none."""
    if shape not in SHAPES:
        from ..errors import ConfigError

        raise ConfigError(f"unknown shape {shape!r}; use {', '.join(SHAPES)}")
    return None if shape == "free" else SongShape.from_dict(recorded)


def end_class(line: str) -> str | None:
    """How a line ends: "a" for a letter or digit, else its last mark; None when blank."""
    text = line.rstrip()
    if not text:
        return None
    c = text[-1]
    return "a" if c.isalnum() else c
