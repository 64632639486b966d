"""Where each row of a batch stands in its song (Standing): characters, lines and stanzas so far,
and what the shape guide (shape.py) decided of it, held in small numpy arrays, one entry per
row, so that every row advances by its chosen symbol in the same few array operations."""

from __future__ import annotations

import numpy as np

# Where each row stands: counts (NUMBERS) and yes/no (FLAGS), one array entry per row.
NUMBERS = ("chars",         # characters of the song so far
           "col",           # characters of the current line
           "ink",           # of them not spaces
           "line",          # lines finished
           "stanza_lines",  # lyric lines of the current stanza
           "due_lines",     # lines the stanza needs (less one) before a due end ends it
           "stanzas",       # stanzas finished
           "last",          # the line's last character other than a space (0: none)
           "end_at")        # from this many characters on, end at a stanza's end
FLAGS = ("prev_blank",      # the last finished line was blank
         "title",           # the first line is a title
         "in_title",        # ... and is being written
         "steered",         # at the last step, a line end would end the song
         "closing",         # ... but the line does not end as songs end: it is closed
         "guided",          # the song ended where the guide steered it
         "done")


class Standing:
    """Where each of `rows` rows stands; `inked`: per symbol, whether it is ink (not a blank,
    line break or end); `nl`, `hash`: the line break's and "#"'s ids; `typical`: the lines of
    the corpus's typical stanza."""

    def __init__(self, rows: int, inked: np.ndarray, nl: int, hash_: int, typical: int):
        self.rows, self.inked, self.nl, self.hash, self.typical = rows, inked, nl, hash_, typical
        self.numbers = np.zeros((len(NUMBERS), rows), dtype=np.int64)
        self.flags = np.zeros((len(FLAGS), rows), dtype=bool)
        self.numbers[NUMBERS.index("due_lines")] = typical - 1
        self._views: dict[tuple, tuple] = {}

    def view(self, start: int, stop: int) -> tuple:
        """Every number and flag of rows start..stop, as array views (made once per range), in
        the order of NUMBERS, then FLAGS."""
        found = self._views.get((start, stop))
        if found is None:
            found = self._views[(start, stop)] = (
                tuple(self.numbers[:, start:stop]) + tuple(self.flags[:, start:stop]))
        return found

    def __getattr__(self, name: str) -> np.ndarray:
        # A number or flag of every row by name (standing.col: each row's column).
        if name in NUMBERS:
            return self.numbers[NUMBERS.index(name)]
        if name in FLAGS:
            return self.flags[FLAGS.index(name)]
        raise AttributeError(name)

    def copy_row(self, row: int) -> tuple:
        return self.numbers[:, row].copy(), self.flags[:, row].copy()

    def set_rows(self, rows: list[int], state: tuple) -> None:
        numbers, flags = state
        self.numbers[:, rows] = numbers[:, None]
        self.flags[:, rows] = flags[:, None]

    def advance(self, c: np.ndarray, view: tuple) -> None:
        """Rows of `view` take their chosen symbols `c` (one each)."""
        (chars, col, ink, line, stanza_lines, due_lines, stanzas, last, end_at,
         prev_blank, title, in_title, steered, closing, guided, done) = view
        nl = c == self.nl
        if nl.any():
            blank = nl & (ink == 0)
            # A blank line closes the stanza before it.
            closes = blank & (stanza_lines > 0)
            if closes.any():
                stanzas += closes
                np.copyto(due_lines, np.minimum(stanza_lines, self.typical) - 1,
                          where=closes)
                stanza_lines[closes] = 0
            stanza_lines += nl & (ink > 0) & ~in_title  # a lyric line ends
            np.copyto(prev_blank, blank, where=nl)
            line += nl
            in_title &= ~nl
            col += 1
            col[nl] = 0
            ink[nl] = 0
            last[nl] = 0
        else:
            col += 1
        if not chars.all():  # a song's first symbol: a "#" opens a title
            np.logical_or(title, (chars == 0) & (c == self.hash), out=title)
            np.logical_or(in_title, (chars == 0) & (c == self.hash), out=in_title)
        inked = self.inked[c]
        ink += inked
        np.copyto(last, c, where=inked)
        chars += 1
        end = c == 0
        if end.any():
            guided |= end & steered & ~done
            done |= end
