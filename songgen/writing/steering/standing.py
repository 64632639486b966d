"""Where each row of a batch stands in its song (Standing): characters, lines and stanzas so far,
one short list of numbers per row, and the questions the shape's rules ask of it (is the line
past its limit? is the song long enough to end?), answered as the bits of one number (`key`).

The rules are not reckoned row by row: the shape guide reckons them once for every key into a
table (shape.py), so that a row's step is a few additions and comparisons and a look-up. That
costs less than the same work as numpy array operations up to a few dozen rows (a numpy call
costs about as much as a row's whole step here), and it is done only for the rows read."""

from __future__ import annotations

import numpy as np

# Where a row stands: one number each, in this order.
FIELDS = ("chars",         # characters of the song so far
          "col",           # characters of the current line
          "ink",           # of them not blanks
          "line",          # lines finished
          "stanza_lines",  # lyric lines of the current stanza
          "stanzas",       # stanzas finished
          "prev_blank",    # the last finished line was blank
          "title",         # the first line is a title
          "in_title",      # ... and is being written
          "last",          # the line's last symbol other than a blank (0: none)
          "end_at",        # from this many characters on, end at a stanza's end
          "due_lines",     # lines the stanza needs (less one) before a due end ends it
          "guided",        # the song ended where the guide steered it
          "done")          # the song ended
(CHARS, COL, INK, LINE, STANZA_LINES, STANZAS, PREV_BLANK, TITLE, IN_TITLE, LAST, END_AT,
 DUE_LINES, GUIDED, DONE) = range(len(FIELDS))

# The questions of the rules outside a song's title, in the order of their bits in a key.
ANSWERS = ("ink",             # the line has ink
           "long_enough",     # the song is long enough to end
           "stanzas_enough",  # ... and has stanzas enough
           "ends_ok",         # the line's last symbol is one the song may end after
           "at_length",       # the song is as long as it was given
           "stanza_due",      # ... and its stanza as long as it should be
           "hard_end",        # the song is as long as the corpus's longer songs
           "past",            # the line is at its limit
           "must_end",        # ... and past it by the grace a word is given
           "mid_line",        # the line has begun
           "prev_blank",      # the line before was blank
           "stanza_full")     # the stanza is at its limit


# ... and those of a row at its song's start or in its title.
TITLE_ANSWERS = ("in_title",    # the title is being written
                 "title",       # the song has a title
                 "started",     # the song has begun
                 "title_ok",    # the line's last symbol is one the corpus's titles end with
                 "line1",       # the line is the song's second
                 "col1",        # the line has one character
                 "col3",        # ... three or more
                 "past_title",  # the title is at its limit
                 "end_title",   # ... past it by the grace a word is given
                 "far_title")   # ... far past it


class Standing:
    """Where each of `rows` rows stands. `limits` (shape.ShapeLimits) and `grace` say where its
    rules' limits are; `end_at`: per row, where its song starts to end; per symbol, whether it
    is ink (`inked`), one titles end with (`title_ok`), and per row and symbol one its song
    may end after (`ends_ok`)."""

    def __init__(self, rows: int, limits, grace: int, end_at: list[int], chars: list[str],
                 ends_ok: list[np.ndarray], title_ok: np.ndarray):
        self.typical = limits.stanza_typical
        self.rows = [[0] * len(FIELDS) for _ in range(rows)]
        for r, row in enumerate(self.rows):
            row[END_AT], row[DUE_LINES] = end_at[r], self.typical - 1
        self.min_chars, self.min_stanzas = limits.min_chars, limits.min_stanzas - 1
        self.hard_end, self.stanza_limit = limits.hard_end, limits.stanza_limit
        self.line_past, self.line_end = limits.line_limit - 1, limits.line_limit + grace
        self.title_limit, self.grace = limits.title_limit, grace
        self.nl = chars.index("\n")
        self.hash = chars.index("#") if "#" in chars else -1
        self.inked = [i != 0 and c not in ("\n", " ", "\t") for i, c in enumerate(chars)]
        lists: dict[int, list] = {}  # (the rows of one array share one list)
        for ok in ends_ok:
            if id(ok) not in lists:
                lists[id(ok)] = ok.tolist()
        self.ends_ok = [lists[id(ok)] for ok in ends_ok]
        self.title_ok = title_ok.tolist()

    def key(self, row: int, anyway: bool = False) -> int:
        """The answers to ANSWERS for a row outside its song's start and title, as bits; -1
        for a row at its song's start, in its title or on the line after it (`answers`),
        unless asked `anyway`."""
        v = self.rows[row]
        chars, col, lines = v[CHARS], v[COL], v[STANZA_LINES]
        if not anyway and (chars == 0 or (v[TITLE] and v[LINE] <= 1)):
            return -1
        return ((v[INK] > 0) | (chars >= self.min_chars) << 1
                | (v[STANZAS] >= self.min_stanzas) << 2 | self.ends_ok[row][v[LAST]] << 3
                | (chars >= v[END_AT]) << 4 | (lines >= v[DUE_LINES]) << 5
                | (chars >= self.hard_end) << 6 | (col >= self.line_past) << 7
                | (col >= self.line_end) << 8 | (col > 0) << 9 | v[PREV_BLANK] << 10
                | (lines >= self.stanza_limit) << 11)

    def answers(self, row: int) -> tuple:
        """Every question the rules ask of a row, a title's too (TITLE_ANSWERS after ANSWERS),
        for a row at its song's start or in its title."""
        v, key = self.rows[row], self.key(row, anyway=True)
        col, limit, grace = v[COL], self.title_limit, self.grace
        return tuple((key >> bit) & 1 > 0 for bit in range(len(ANSWERS))) + (
            v[IN_TITLE] > 0, v[TITLE] > 0, v[CHARS] > 0, self.title_ok[v[LAST]], v[LINE] == 1,
            col == 1, col >= 3, col >= limit - 1, col >= limit + grace, col >= limit + 3 * grace)

    def take(self, row: int, c: int, steered: bool = False) -> None:
        """Row `row` takes symbol `c`; where that ends the song, `steered` says whether the
        guide had steered it there."""
        v = self.rows[row]
        if c == self.nl:
            if v[INK] == 0:  # a blank line: it closes the stanza before it
                if v[STANZA_LINES] > 0:
                    v[STANZAS] += 1
                    v[DUE_LINES] = min(v[STANZA_LINES], self.typical) - 1
                    v[STANZA_LINES] = 0
                v[PREV_BLANK] = 1
            else:
                if not v[IN_TITLE]:
                    v[STANZA_LINES] += 1
                v[PREV_BLANK] = 0
            v[LINE] += 1
            v[COL] = v[INK] = v[LAST] = v[IN_TITLE] = 0
        else:
            if v[CHARS] == 0 and c == self.hash:
                v[TITLE] = v[IN_TITLE] = 1
            v[COL] += 1
            if self.inked[c]:
                v[INK] += 1
                v[LAST] = c
        v[CHARS] += 1
        if c == 0:
            v[GUIDED] = v[GUIDED] or (steered and not v[DONE])
            v[DONE] = 1
