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
import random
import re
from array import array

import numpy as np
import torch

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


# Rows of ShapeGuide's bias table: bit 0 forbids a line break, bit 1 the end-of-song symbol,
# bit 2 allows only those two (a line must end), bit 3 forbids a space or tab (a line past its
# limit ends at the end of its word: their probability goes to the line break), bit 4 forbids
# "#" (only a title line holds one); FORCED + k allows only the k-th forced symbol.
_FORBID_NL, _FORBID_EOS, _LINE_END, _WORD_END, _FORBID_HASH = 1, 2, 4, 8, 16
_FORCED = 32
WORD_GRACE = 15  # characters a title or line past its limit may run on to finish its word


class ShapeGuide:
    """Steers sampling with a SongShape: `steer(logits)` before each draw, `update(chosen)`
    after it. State: one entry per song of the batch, in small numpy arrays on the host.

    The sampler reads every step's chosen symbols on the host anyway (to build the songs), so
    keeping the rules there costs a few microseconds a step, where the same rules as tensor
    operations cost ~90 small kernels a step (2.5x the model's own time for one song on a
    CPU, and out of reach of a CUDA graph). The logits see two operations: a row of a bias
    table added per song, and the end-of-song tweak where a song is steered to end."""

    def __init__(self, shape: SongShape, chars: list[str], n: int, device: torch.device,
                 length: int, ends: tuple | None = None, seed: str | None = None,
                 songs: int | None = None):
        index = {c: i for i, c in enumerate(chars)}
        self.nl = index.get("\n")
        if self.nl is None:
            raise ValueError("a shape guide needs a vocabulary with a line break")
        vocab = len(chars)
        self.hash, self.space, self.tab = (index.get(c, -1) for c in "# \t")
        # Title rules, only for a titled corpus whose vocabulary can write a title.
        self.titled = shape.has_titles and self.hash >= 0 and self.space >= 0
        self.title_blank = self.titled and shape.title_blank >= 0.5
        self.title_limit = max(3, shape.q("title_chars", 0.99) or 80)
        # Lines and stanzas: far past the corpus's is closed.
        line99 = shape.q("line_chars", 0.99) or 80
        self.line_limit = max(2 * line99, 20)
        stanza95 = shape.q("stanza_lines", 0.95) or 8
        self.stanza_limit = max(shape.q("stanza_lines", 0.99) or 16, stanza95 + 1)
        self.stanza_typical = max(1, shape.q("stanza_lines", 0.5) or 4)
        stanza_chars = shape.q("stanza_chars", 0.5) or 200
        # Song length: no end before the 5th percentile or two stanzas; steered to an end
        # from the 95th percentile less two typical stanzas, at the next line end from the
        # 95th less a line. `length` (the hard cap) is kept clear by a line when it comes first.
        self.min_stanzas = 2
        last_call = max(1, length - self.line_limit - 1)
        # A length asked for below the corpus's shortest songs (the acts of a play) is
        # written as one long text.
        if shape.has_song_lengths and shape.q("song_chars", 0.05) <= last_call:
            # Two stanzas, or the corpus's 5th percentile of them, never more than its median.
            stanzas5, stanzas50 = shape.q("stanzas", 0.05), shape.q("stanzas", 0.5)
            self.min_stanzas = max(1, min(max(2, stanzas5), stanzas50))
            self.min_chars = shape.q("song_chars", 0.05)
            # Less a line, so that the line being written when it comes still ends in range.
            line95 = shape.q("line_chars", 0.95) or 0
            self.hard_end = max(self.min_chars,
                                min(shape.q("song_chars", 0.95) - line95, last_call))
        else:  # one long text: run to the length asked for and end there at a line end
            self.min_chars = 0
            self.hard_end = last_call
        self.soft_end = max(self.min_chars, self.hard_end - 2 * stanza_chars)
        # The bias table (rows: see _FORBID_NL ...), added to the logits by row index.
        table = torch.zeros(_FORCED + 3, vocab)
        for row in range(_FORCED):
            if row & _LINE_END:
                table[row] = -math.inf
                table[row, self.nl] = 0.0
                table[row, 0] = 0.0
            if row & _WORD_END:
                for blank in (self.space, self.tab):
                    if blank >= 0:
                        table[row, blank] = -math.inf
            if row & _FORBID_HASH and self.hash >= 0:
                table[row, self.hash] = -math.inf
            if row & _FORBID_NL:
                table[row, self.nl] = -math.inf
            if row & _FORBID_EOS:
                table[row, 0] = -math.inf
        for k, token in enumerate((self.hash, self.space, self.nl)):
            table[_FORCED + k] = -math.inf
            if token >= 0:
                table[_FORCED + k, token] = 0.0
        self.table = table.to(device)
        self.ends = Endings(chars, ends or (None, None), self.nl, self.space, device)
        self.songs = [_SongState() for _ in range(n)]
        for r, song in enumerate(self.songs):  # row r writes song r % songs (the lanes)
            song.end_at = self.soft_end if seed is None or not shape.has_song_lengths \
                or self.min_chars == 0 else max(self.min_chars, min(self.soft_end, _length(
                    shape, f"{seed}:length:{r % (songs or n)}", stanza_chars)))

    @property
    def guided(self) -> list[bool]:
        """Per song: it ended where the guide steered it."""
        return [song.guided for song in self.songs]

    @property
    def done(self) -> list[bool]:
        return [song.done for song in self.songs]

    def feed(self, ids: list[int]) -> None:
        """Take in the prime, one symbol at a time (as if it had been chosen)."""
        for i in ids:
            self.update([i] * len(self.songs))

    def steer(self, logits: torch.Tensor) -> torch.Tensor:
        """The logits (n, vocab) with the shape's rules applied (a new tensor)."""
        rows = [self._row(song) for song in self.songs]
        word_end = [i for i, row in enumerate(rows) if row < _FORCED and row & _WORD_END]
        if word_end:
            # Past its limit, a line ends where the model would start a new word: the
            # probability of a space or tab goes to the line break (the table forbids them).
            at = torch.tensor(word_end, device=logits.device)
            blanks = [c for c in (self.nl, self.space, self.tab) if c >= 0]
            logits = logits.clone()
            logits[at, self.nl] = torch.logsumexp(logits[at][:, blanks], dim=1)
        if len(rows) == 1:  # one song: a row of the table, no index tensor to build
            out = logits + self.table[rows[0]]
        else:
            out = logits + self.table.index_select(0, torch.tensor(rows, device=logits.device))
        closing = [i for i, song in enumerate(self.songs) if song.closing]
        if closing:
            # The line that would end the song does not end as songs end: after a word, a line
            # break's probability, and a comma's, go to the marks songs end with, in the
            # model's odds; after a comma, to a space (the line goes on).
            # (the rows of each kind at once: a step per row cost more than the model's step)
            words = [i for i in closing if self.ends.is_word[self.songs[i].last]]
            marks = [i for i in closing if not self.ends.is_word[self.songs[i].last]]
            for rows, to in ((words, self.ends.close_to), (marks, self.ends.close_space)):
                if rows and to is not None:
                    _move(logits, out, rows, self.ends.close_from, to)
        ending = [i for i, song in enumerate(self.songs) if song.steered]
        if ending:
            # Where the song is steered to an end, a line break's probability goes to the end.
            at = torch.tensor(ending, device=logits.device)
            out[at, 0] = torch.logaddexp(logits[at, 0], logits[at, self.nl])
        return out

    def _row(self, song: "_SongState") -> int:
        """The bias table's row for one song's next symbol; notes whether it is steered to end."""
        in_title = song.title and song.line == 0
        line_start = song.col == 0
        # The song may end here, where a line of lyrics could end.
        in_range = (song.ink > 0 and not in_title and song.chars >= self.min_chars
                    and song.stanzas + 1 >= self.min_stanzas)
        # ... and only after a line that ends as the corpus's songs end.
        may_end = in_range and self.ends.song_ok[song.last]
        # As long as the stanza before, or the corpus's typical one where that is shorter.
        want = min(song.last_stanza or self.stanza_typical, self.stanza_typical)
        due = in_range and ((song.chars >= song.end_at and song.stanza_lines + 1 >= want)
                            or song.chars >= self.hard_end)
        song.steered = due and may_end
        song.closing = due and not may_end and self.ends.close_to is not None
        # A title or line at its limit ends at the end of its word: where the model would
        # write a space (from the limit's last character on, so that no line ends in one),
        # at the latest WORD_GRACE characters later.
        limit = self.title_limit if in_title else self.line_limit
        past = song.col >= limit - 1
        must_end = song.col >= limit + WORD_GRACE
        # A title closes only where the corpus's titles may end ("Door," may not), unless it
        # runs on far past its limit.
        title_open = in_title and not self.ends.title_ok[song.last]
        if title_open and song.col < limit + 3 * WORD_GRACE:
            must_end = False
        # Forced symbols: a line break to close a long title, for the blank line after the
        # title, and to close a runaway stanza; "#" and " " to open a titled song.
        if ((in_title and must_end)
                or (line_start and not song.prev_blank and song.stanza_lines >= self.stanza_limit)
                or (self.title_blank and song.title and song.line == 1 and line_start)):
            return _FORCED + 2
        if self.titled and song.chars == 0:
            return _FORCED
        if self.titled and in_title and song.col == 1:
            return _FORCED + 1
        forbid_nl = (song.steered or (in_title and song.col < 3) or title_open
                     or (line_start and (song.prev_blank or song.chars == 0)))
        return (_FORBID_NL * forbid_nl + _FORBID_EOS * (not may_end)
                + _LINE_END * (must_end and not in_title) + _WORD_END * past
                + _FORBID_HASH * (self.titled and not in_title))

    def update(self, chosen) -> None:
        """Advance every song's state by its chosen symbol: a list (or tensor) of n ids."""
        if isinstance(chosen, torch.Tensor):
            chosen = chosen.tolist()
        for song, c in zip(self.songs, chosen):
            if c == self.nl:
                if song.ink == 0:  # a blank line: it closes the stanza before it
                    if song.stanza_lines > 0:
                        song.stanzas += 1
                        song.last_stanza, song.stanza_lines = song.stanza_lines, 0
                    song.prev_blank = True
                else:
                    if not (song.title and song.line == 0):
                        song.stanza_lines += 1
                    song.prev_blank = False
                song.line += 1
                song.col = song.ink = song.last = 0
            else:
                if song.chars == 0 and c == self.hash:
                    song.title = True
                song.col += 1
                if c != 0 and c != self.space and c != self.tab:
                    song.ink += 1
                    song.last = c
            song.chars += 1
            if c == 0:
                song.guided = song.guided or (song.steered and not song.done)
                song.done = True


class Endings:
    """Per id, whether a song (or a title) may end after it: the end classes the corpus's
    songs and titles end with (end_class; a title may end on a word); every id where none
    were measured. On the closing line, the probability of a line break and of marks no song
    ends with (`close_from`) goes to the marks songs end with (`close_to`), where there are
    such marks, or after a mark to a space (`close_space`)."""

    def __init__(self, chars: list[str], ends: tuple, nl: int, space: int, device):
        song_ok, title_ok = ends
        classes = [end_class(c) if c.strip() else None for c in chars]
        self.song_ok = [song_ok is None or (k is not None and k in song_ok) for k in classes]
        # A title may always end on a word (a corpus whose titles all end "(Child 1A)" does
        # not make the model write that), never on a mark its titles do not end with.
        self.title_ok = [title_ok is None or k == "a" or (k is not None and k in title_ok)
                         for k in classes]
        marks = [i for i, c in enumerate(chars) if c in ".!?…" and self.song_ok[i]]
        moved = [i for i, c in enumerate(chars) if c in ",;:-–—" and not self.song_ok[i]]
        self.close_to = (torch.tensor(marks, device=device) if song_ok is not None and marks
                         else None)
        self.close_from = torch.tensor([nl] + moved, device=device)
        self.close_space = torch.tensor([space], device=device) if space >= 0 else None
        self.is_word = [c.isalnum() for c in chars]


def end_class(line: str) -> str | None:
    """How a line ends: "a" for a letter or digit, else its last mark; None when blank."""
    text = line.rstrip()
    if not text:
        return None
    c = text[-1]
    return "a" if c.isalnum() else c


def _length(shape: SongShape, seed: str, stanza_chars: int) -> int:
    """Where a song starts to end: a length drawn from the corpus's songs, less half a stanza
    (it ends at the stanza end after it)."""
    return int(_draw(shape.song_chars, random.Random(seed).uniform(0.05, 0.95))
               - stanza_chars / 2)


def _draw(quantiles: list[int], u: float) -> float:
    """The value at quantile u of a distribution known at QUANTILES (linear in between)."""
    return float(np.interp(u, QUANTILES, quantiles))


def _move(logits: torch.Tensor, out: torch.Tensor, rows: list[int], src: torch.Tensor,
          dst: torch.Tensor) -> None:
    """In `out`'s `rows`, the probability (by `logits`) of the `src` symbols goes to the `dst`
    ones, shared in their own odds."""
    at = torch.tensor(rows, device=logits.device)[:, None]
    good, bad = logits[at, dst], logits[at, src]
    lift = (torch.logsumexp(torch.cat([good, bad], 1), 1, keepdim=True)
            - torch.logsumexp(good, 1, keepdim=True))
    out[at, dst] = good + lift
    out[at, src] = -math.inf


class _SongState:
    """Where one song is: counts of characters, lines and stanzas so far."""

    __slots__ = ("chars", "col", "ink", "line", "stanza_lines", "last_stanza", "stanzas",
                 "prev_blank", "title", "steered", "closing", "guided", "done", "last",
                 "end_at")

    def __init__(self):
        self.chars = 0           # characters of the song so far
        self.col = 0             # characters of the current line
        self.ink = 0             # of them not spaces
        self.line = 0            # lines finished
        self.stanza_lines = 0    # lyric lines of the current stanza
        self.last_stanza = 0     # lyric lines of the stanza before it
        self.stanzas = 0         # stanzas finished
        self.prev_blank = False  # the last finished line was blank
        self.title = False       # the first line is a title
        self.steered = False     # at the last step, a line end would end the song
        self.closing = False     # ... but the line does not end as songs end: it is closed
        self.last = 0            # the line's last character other than a space (0: none)
        self.end_at = 0          # from this many characters on, end at a stanza's end
        self.guided = False      # the song ended where the guide steered it
        self.done = False
