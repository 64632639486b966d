"""Keeping every song of a batch shaped like the corpus's songs while it is written
(ShapeGuide, a steering step): titles, lines and stanzas of the corpus's lengths, songs of its
lengths, ending as its songs end. The shape itself is measured in songgen/songcraft/shape.py.

Where each row stands (characters, lines and stanzas so far, ...) is held in small numpy arrays,
one entry per row (standing.py), and the rules are array operations over every row at once:
the same few dozen operations a step for one song as for eight songs on four lanes each, where
a rule checked row by row in Python cost more than the model's step at 32 rows (issue #33).
The logits see a row of a bias table added per row, and the column moves below where a rule
moves one symbol's probability to another."""

from __future__ import annotations

import math
import random

import numpy as np
import torch

from ...songcraft.shape import QUANTILES, SongShape, end_class
from .standing import Standing
from .step import Step

# Rows of ShapeGuide's bias table: bit 0 forbids a line break, bit 1 the end-of-song symbol,
# bit 2 allows only those two (a line must end), bit 3 forbids a space or tab (a line past its
# limit ends at the end of its word: their probability goes to the line break), bit 4 forbids
# "#" (only a title line holds one); FORCED + k allows only the k-th forced symbol.
FORBID_NL, FORBID_EOS, LINE_END, WORD_END, FORBID_HASH = 1, 2, 4, 8, 16
FORCED = 32
WORD_GRACE = 15  # characters a title or line past its limit may run on to finish its word

RULES = ((FORBID_NL, "no line break here (a title's first letters, a line's start after a "
                     "blank line, or the song is being brought to its end)"),
         (FORBID_EOS, "the song may not end yet (too short, or not at a line's end)"),
         (LINE_END, "the line is far past its length: it must end now"),
         (WORD_END, "the line is at its length: it ends at the end of this word"),
         (FORBID_HASH, "'#' starts a title line only"))
FORCES = ("a titled song starts with '#'", "a title's '#' is followed by a space",
          "a line break: a title or stanza at its limit, or the blank line after the title")

def shape_rules(code: int) -> list[str]:
    """The rules a row of the bias table applies, in words."""
    if code >= FORCED:
        return [FORCES[code - FORCED]]
    return [text for bit, text in RULES if code & bit]


class ShapeLimits:
    """The limits the shape's rules keep to, from the corpus's `shape` and the `length` asked
    for; `titled`: whether titles get rules (a titled corpus whose vocabulary can write one)."""

    def __init__(self, shape: SongShape, length: int, titled: bool):
        self.titled = titled
        self.title_blank = titled and shape.title_blank >= 0.5
        self.title_limit = max(3, shape.q("title_chars", 0.99) or 80)
        # Lines and stanzas: far past the corpus's is closed.
        line99 = shape.q("line_chars", 0.99) or 80
        self.line_limit = max(2 * line99, 20)
        stanza95 = shape.q("stanza_lines", 0.95) or 8
        self.stanza_limit = max(shape.q("stanza_lines", 0.99) or 16, stanza95 + 1)
        self.stanza_typical = max(1, shape.q("stanza_lines", 0.5) or 4)
        self.stanza_chars = shape.q("stanza_chars", 0.5) or 200
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
        self.soft_end = max(self.min_chars, self.hard_end - 2 * self.stanza_chars)


class ShapeGuide(Step):
    """Steers sampling with a SongShape, on `n` rows (`songs`: how many songs they write; row
    r writes song r % songs, its length drawn from `seed`). `limits`: the rules' limits;
    `standing`: where each row stands."""

    name = "shape"

    def __init__(self, shape: SongShape, chars: list[str], n: int, device: torch.device,
                 length: int, ends: tuple | None = None, seed: str | None = None,
                 songs: int | None = None):
        index = {c: i for i, c in enumerate(chars)}
        self.nl = index.get("\n")
        if self.nl is None:
            raise ValueError("a shape guide needs a vocabulary with a line break")
        hash_, space, tab = (index.get(c, -1) for c in "# \t")
        # Title rules, only for a titled corpus whose vocabulary can write a title.
        limits = self.limits = ShapeLimits(shape, length, shape.has_titles and hash_ >= 0
                                           and space >= 0)
        self.table = _bias_table(len(chars), self.nl, hash_, space, tab).to(device)
        self.ends = Endings(chars, ends or (None, None), self.nl, space, device)
        self.blanks = torch.tensor([c for c in (self.nl, space, tab) if c >= 0], device=device)
        inked = np.array([i != 0 and c not in ("\n", " ", "\t") for i, c in enumerate(chars)])
        self.rows = n
        self.standing = Standing(n, inked, self.nl, hash_, limits.stanza_typical)
        self.codes = np.zeros(n, dtype=np.int64)  # each row's bias row at the last steer
        end_at = self.standing.end_at
        for r in range(n):  # row r writes song r % songs (the lanes)
            end_at[r] = limits.soft_end if seed is None or not shape.has_song_lengths \
                or limits.min_chars == 0 else max(limits.min_chars, min(limits.soft_end, _length(
                    shape, f"{seed}:length:{r % (songs or n)}", limits.stanza_chars)))

    @property
    def guided(self) -> list[bool]:
        """Per row: its song ended where the guide steered it."""
        return self.standing.guided.tolist()

    @property
    def done(self) -> list[bool]:
        return self.standing.done.tolist()

    # -- the step --------------------------------------------------------------------------

    def start(self, rows) -> None:
        if rows.count != self.rows:
            raise ValueError(f"a shape guide of {self.rows} rows on {rows.count}")
        self.feed(rows.prime)

    def feed(self, ids: list[int]) -> None:
        """Take in the prime, the same on every row, one symbol at a time (as if chosen)."""
        for i in ids:
            self.standing.advance(np.full(self.rows, i), self.standing.view(0, self.rows))

    def read(self, row: int, tokens: list[int]) -> None:
        view = self.standing.view(row, row + 1)
        for token in tokens:
            self.standing.advance(np.array([token]), view)

    def row_state(self, row: int):
        return self.standing.copy_row(row)

    def set_rows(self, rows: list[int], state) -> None:
        self.standing.set_rows(rows, state)

    def explain(self, row: int) -> list[str]:
        return shape_rules(int(self.codes[row]))

    def chosen(self, ids: list[int], logps=None) -> None:
        """Every drawn row advances by its chosen symbol."""
        self.standing.advance(np.array(ids), self.standing.view(0, len(ids)))

    def steer(self, logits: torch.Tensor) -> torch.Tensor:
        """The logits (rows drawn, vocab) with the shape's rules applied (a new tensor)."""
        m = logits.shape[0]
        code, word_end, steered, closing = self._codes(self.standing.view(0, m))
        self.codes[:m] = code
        device = logits.device
        if word_end.any():
            # Past its limit, a line ends where the model would start a new word: the
            # probability of a space or tab goes to the line break (the table forbids them).
            at = torch.from_numpy(word_end).to(device)
            lse = torch.logsumexp(logits.index_select(1, self.blanks), dim=1)
            logits = logits.clone()
            logits[:, self.nl] = torch.where(at, lse, logits[:, self.nl])
        out = logits + self.table.index_select(0, torch.from_numpy(code).to(device))
        if closing.any():
            # The line that would end the song does not end as songs end: after a word, a line
            # break's probability, and a comma's, go to the marks songs end with, in the
            # model's odds; after a comma, to a space (the line goes on).
            after_word = self.ends.is_word[self.standing.last[:m]]
            for rows, to in ((closing & after_word, self.ends.close_to),
                             (closing & ~after_word, self.ends.close_space)):
                if to is not None and rows.any():
                    _move(logits, out, np.flatnonzero(rows), self.ends.close_from, to)
        if steered.any():
            # Where the song is steered to an end, a line break's probability goes to the end.
            at = torch.from_numpy(np.flatnonzero(steered)).to(device)
            out[at, 0] = torch.logaddexp(logits[at, 0], logits[at, self.nl])
        return out

    def _codes(self, view: tuple):
        """Each row's bias-table row for its next symbol, and the rows whose space goes to a
        line break, steered to end, and closed (also kept in the `steered`/`closing` flags)."""
        (chars, col, ink, line, stanza_lines, due_lines, stanzas, last, end_at,
         prev_blank, title, in_title, steered, closing, _, _) = view
        lim = self.limits
        # Titles come only at a song's start: most steps no row is in one (nor starting).
        titles = in_title.any()
        first = lim.titled and not chars.all()
        # The song may end here, where a line of lyrics could end ...
        in_range = (ink > 0) & (chars >= lim.min_chars) & (stanzas >= lim.min_stanzas - 1)
        if titles:
            in_range &= ~in_title
        # ... and only after a line that ends as the corpus's songs end.
        may_end = in_range & self.ends.song_ok[last]
        # As long as the stanza before, or the corpus's typical one where that is shorter.
        due = in_range & (((chars >= end_at) & (stanza_lines >= due_lines))
                          | (chars >= lim.hard_end))
        np.logical_and(due, may_end, out=steered)
        if self.ends.close_to is not None:
            np.logical_and(due, ~may_end, out=closing)
        # A title or line at its limit ends at the end of its word: where the model would
        # write a space (from the limit's last character on, so that no line ends in one),
        # at the latest WORD_GRACE characters later.
        limit = np.where(in_title, lim.title_limit, lim.line_limit) if titles \
            else lim.line_limit
        past = col >= limit - 1
        must_end = col >= limit + WORD_GRACE
        code = steered + 2 * ~may_end + WORD_END * past  # FORBID_NL, FORBID_EOS, WORD_END
        line_start = col == 0
        starts = line_start.any()
        if starts:
            # No line break at a line's start after a blank line (or the song's start).
            code |= line_start & (prev_blank | (chars == 0))
        if titles:
            # A title closes only where the corpus's titles may end ("Door," may not), unless
            # it runs on far past its limit; no line break in its first letters.
            title_open = in_title & ~self.ends.title_ok[last]
            must_end &= ~(title_open & (col < limit + 3 * WORD_GRACE))
            code |= (in_title & (col < 3)) | title_open
            code += LINE_END * (must_end & ~in_title)
            if lim.titled:
                code += FORBID_HASH * ~in_title
        else:
            code += LINE_END * must_end + FORBID_HASH * lim.titled
        # Forced symbols: "#" and " " to open a titled song; a line break to close a long
        # title, for the blank line after the title, and to close a runaway stanza (in
        # that order of precedence: the last written wins).
        if titles and lim.titled:
            code[in_title & (col == 1)] = FORCED + 1
        if first:
            code[chars == 0] = FORCED
        if titles:
            code[in_title & must_end] = FORCED + 2
        if starts:
            force = line_start & ~prev_blank & (stanza_lines >= lim.stanza_limit)
            if lim.title_blank:
                force |= line_start & title & (line == 1)
            code[force] = FORCED + 2
        return code, past & (code < FORCED), steered, closing

def _bias_table(vocab: int, nl: int, hash_: int, space: int, tab: int) -> torch.Tensor:
    """The bias table (rows: see FORBID_NL ...), added to the logits by row index."""
    table = torch.zeros(FORCED + 3, vocab)
    for row in range(FORCED):
        if row & LINE_END:
            table[row] = -math.inf
            table[row, nl] = 0.0
            table[row, 0] = 0.0
        if row & WORD_END:
            for blank in (space, tab):
                if blank >= 0:
                    table[row, blank] = -math.inf
        if row & FORBID_HASH and hash_ >= 0:
            table[row, hash_] = -math.inf
        if row & FORBID_NL:
            table[row, nl] = -math.inf
        if row & FORBID_EOS:
            table[row, 0] = -math.inf
    for k, token in enumerate((hash_, space, nl)):
        table[FORCED + k] = -math.inf
        if token >= 0:
            table[FORCED + k, token] = 0.0
    return table


class Endings:
    """Per id, whether a song (or a title) may end after it: the end classes the corpus's
    songs and titles end with (end_class; a title may end on a word); every id where none
    were measured. On the closing line, the probability of a line break and of marks no song
    ends with (`close_from`) goes to the marks songs end with (`close_to`), where there are
    such marks, or after a mark to a space (`close_space`)."""

    def __init__(self, chars: list[str], ends: tuple, nl: int, space: int, device):
        song_ok, title_ok = ends
        classes = [end_class(c) if c.strip() else None for c in chars]
        self.song_ok = np.array([song_ok is None or (k is not None and k in song_ok)
                                 for k in classes])
        # A title may always end on a word (a corpus whose titles all end "(Child 1A)" does
        # not make the model write that), never on a mark its titles do not end with.
        self.title_ok = np.array([title_ok is None or k == "a" or (k is not None and k in title_ok)
                                  for k in classes])
        marks = [i for i, c in enumerate(chars) if c in ".!?…" and self.song_ok[i]]
        moved = [i for i, c in enumerate(chars) if c in ",;:-–—" and not self.song_ok[i]]
        self.close_to = (torch.tensor(marks, device=device) if song_ok is not None and marks
                         else None)
        self.close_from = torch.tensor([nl] + moved, device=device)
        self.close_space = torch.tensor([space], device=device) if space >= 0 else None
        self.is_word = np.array([c.isalnum() for c in chars])


def _length(shape: SongShape, seed: str, stanza_chars: int) -> int:
    """Where a song starts to end: a length drawn from the corpus's songs, less half a stanza
    (it ends at the stanza end after it)."""
    return int(_draw(shape.song_chars, random.Random(seed).uniform(0.05, 0.95))
               - stanza_chars / 2)


def _draw(quantiles: list[int], u: float) -> float:
    """The value at quantile u of a distribution known at QUANTILES (linear in between)."""
    return float(np.interp(u, QUANTILES, quantiles))


def _move(logits: torch.Tensor, out: torch.Tensor, rows: np.ndarray, src: torch.Tensor,
          dst: torch.Tensor) -> None:
    """In `out`'s `rows`, the probability (by `logits`) of the `src` symbols goes to the `dst`
    ones, shared in their own odds."""
    at = torch.from_numpy(rows).to(logits.device)[:, None]
    good, bad = logits[at, dst], logits[at, src]
    lift = (torch.logsumexp(torch.cat([good, bad], 1), 1, keepdim=True)
            - torch.logsumexp(good, 1, keepdim=True))
    out[at, dst] = good + lift
    out[at, src] = -math.inf
