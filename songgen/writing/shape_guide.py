"""Keeping every song of a batch shaped like the corpus's songs while it is written
(ShapeGuide): titles, lines and stanzas of the corpus's lengths, songs of its lengths, ending
as its songs end. The shape itself is measured in songgen/songcraft/shape.py."""

from __future__ import annotations

import math
import random

import numpy as np
import torch

from ..songcraft.shape import QUANTILES, SongShape, end_class

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
