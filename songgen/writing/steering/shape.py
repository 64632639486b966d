"""Keeping every song of a batch shaped like the corpus's songs while it is written
(ShapeGuide, a steering step): titles, lines and stanzas of the corpus's lengths, songs of its
lengths, ending as its songs end. The shape itself is measured in songgen/songcraft/shape.py.

The rules are reckoned once, as array operations over every answer their questions can have
(_table_of_rules), into a table: a row's step is then its answers (standing.py: where it
stands, in a few numbers) and a look-up, where the rules checked row by row cost more than the
model's step at 32 rows (issue #33); and only the rows read are steered. The logits see a row
of a bias table added per row, and the column moves below where a rule moves one symbol's
probability to another."""

from __future__ import annotations

import math
import random

import numpy as np

from ...songcraft.shape import QUANTILES, SongShape, end_class
from .standing import ANSWERS, DONE, GUIDED, LAST, TITLE_ANSWERS, Standing
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

    def __init__(self, shape: SongShape, chars: list[str], n: int, length: int,
                 ends: tuple | None = None, seed: str | None = None,
                 songs: int | None = None):
        index = {c: i for i, c in enumerate(chars)}
        self.nl = index.get("\n")
        if self.nl is None:
            raise ValueError("a shape guide needs a vocabulary with a line break")
        hash_, space, tab = (index.get(c, -1) for c in "# \t")
        # Title rules, only for a titled corpus whose vocabulary can write a title.
        lim = self.limits = ShapeLimits(shape, length, shape.has_titles and hash_ >= 0
                                        and space >= 0)
        self.table = _bias_table(len(chars), self.nl, hash_, space, tab)
        self.ends = Endings(chars, ends or (None, None), self.nl, space)
        self.blanks = np.array([c for c in (self.nl, space, tab) if c >= 0])
        end_at = [lim.soft_end if seed is None or not shape.has_song_lengths
                  or lim.min_chars == 0 else max(lim.min_chars, min(lim.soft_end, _length(
                      shape, f"{seed}:length:{r % (songs or n)}", lim.stanza_chars)))
                  for r in range(n)]  # row r writes song r % songs (the lanes)
        # Each song's own ends (the rare classes drawn per song: Endings), on its every row.
        song_ok = [self.ends.song_ok if seed is None else self.ends.song_ok_for(
            random.Random(f"{seed}:ends:{s}")) for s in range(songs or n)]
        self.standing = Standing(n, lim, WORD_GRACE, end_at, chars,
                                 [song_ok[r % (songs or n)] for r in range(n)],
                                 self.ends.title_ok)
        self.n = n
        self.codes: list[int] = [0] * n  # each row's bias row at the last steer
        self.flags: list[int] = [0] * n  # ... and STEERED | CLOSING | WORD_ENDS ...
        self._code, self._flags = _table_of_rules(lim, self.ends.close_to is not None)
        self.nl_only = np.array([self.nl])
        self.rows = None  # (rows.Rows, once started: which rows are read)

    @property
    def guided(self) -> list[bool]:
        """Per row: its song ended where the guide steered it."""
        return [bool(row[GUIDED]) for row in self.standing.rows]

    @property
    def done(self) -> list[bool]:
        return [bool(row[DONE]) for row in self.standing.rows]

    # -- the step --------------------------------------------------------------------------

    def start(self, rows) -> None:
        if rows.count != self.n:
            raise ValueError(f"a shape guide of {self.n} rows on {rows.count}")
        self.rows = rows
        self.feed(rows.prime)

    def feed(self, ids: list[int]) -> None:
        """Take in the prime, the same on every row, one symbol at a time (as if chosen)."""
        for i in ids:
            for r in range(self.n):
                self.standing.take(r, i)

    def read(self, row: int, tokens: list[int]) -> None:
        for token in tokens:
            self.standing.take(row, token)

    def row_state(self, row: int) -> list[int]:
        return list(self.standing.rows[row])

    def set_rows(self, rows: list[int], state: list[int]) -> None:
        for r in rows:
            self.standing.rows[r] = list(state)

    def explain(self, row: int) -> list[str]:
        return shape_rules(self.codes[row]) + (
            ["the title is past its length and does not end as the corpus's titles do: a line "
             "break's chance goes to the marks they end with"]
            if self.flags[row] & TITLE_CLOSING else [])

    def _read(self, m: int):
        """The rows of the m drawn whose draws are read (rows nobody reads are not steered:
        their draws are thrown away)."""
        read = self.rows.read if self.rows is not None else None
        return range(m) if read is None else read

    def chosen(self, ids: list[int], logps=None) -> None:
        """Every row read advances by its chosen symbol (a song's end: steered there?)."""
        take, flags = self.standing.take, self.flags
        for r in self._read(len(ids)):
            take(r, ids[r], flags[r] & STEERED)

    def steer(self, logits: np.ndarray) -> np.ndarray:
        """The logits (rows drawn, vocab) with the shape's rules applied (a new array)."""
        m, standing = logits.shape[0], self.standing
        codes, flags = [0] * m, [0] * m
        for r in self._read(m):
            key = standing.key(r)
            if key < 0:  # a song's start or title: every question asked
                codes[r], flags[r] = self._at_start(standing.answers(r))
            else:
                codes[r], flags[r] = self._code[key], self._flags[key]
        self.codes[:m], self.flags[:m] = codes, flags
        if any(flags):
            logits = self._moves(logits, flags, m)
        out = logits + self.table[codes]
        if any(flags):
            self._ends(logits, out, flags, m)
        return out

    def _at_start(self, answers: tuple) -> tuple[int, int]:
        """The rules for a row at its song's start or in its title (few answers come there:
        each reckoned once)."""
        can_close = self.ends.close_to is not None, self.ends.title_close_to is not None
        key = (self.limits.titled, self.limits.title_blank, can_close, answers)
        found = _AT_START.get(key)
        if found is None:
            code, flags = _rules(dict(zip(ANSWERS + TITLE_ANSWERS, np.array(answers)[:, None])),
                                 self.limits, *can_close)
            found = _AT_START[key] = int(code[0]), int(flags[0])
        return found

    def _moves(self, logits: np.ndarray, flags: list[int], m: int) -> np.ndarray:
        """Past its limit, a line ends where the model would start a new word: the
        probability of a space or tab goes to the line break (the table forbids them)."""
        word_end = [r for r in range(m) if flags[r] & WORD_ENDS]
        if not word_end:
            return logits
        logits = logits.copy()
        logits[word_end, self.nl] = logsumexp(logits[word_end][:, self.blanks])
        return logits

    def _ends(self, logits: np.ndarray, out: np.ndarray, flags: list[int], m: int) -> None:
        closing = [r for r in range(m) if flags[r] & CLOSING]
        if closing:
            # The line that would end the song does not end as songs end: after a word, a line
            # break's probability, and a comma's, go to the marks songs end with, in the
            # model's odds; after a comma, to a space (the line goes on).
            rows, is_word = self.standing.rows, self.ends.is_word
            words = [r for r in closing if is_word[rows[r][LAST]]]
            marks = [r for r in closing if not is_word[rows[r][LAST]]]
            for chosen, to in ((words, self.ends.close_to), (marks, self.ends.close_space)):
                if chosen and to is not None:
                    _move(logits, out, chosen, self.ends.close_from, to)
        titles = [r for r in range(m) if flags[r] & TITLE_CLOSING]
        if titles:
            # A title past its length that does not end as the corpus's titles end: a line
            # break's probability (with a blank's: _moves) goes to the marks they end with.
            _move(logits, out, titles, self.nl_only, self.ends.title_close_to)
        ending = [r for r in range(m) if flags[r] & STEERED]
        if ending:
            # Where the song is steered to an end, a line break's probability goes to the end.
            out[ending, 0] = np.logaddexp(logits[ending, 0], logits[ending, self.nl])

# ShapeGuide.flags: what else a row's rules do.
STEERED, CLOSING, WORD_ENDS, TITLE_CLOSING = 1, 2, 4, 8
_AT_START: dict[tuple, tuple[int, int]] = {}  # the rules at songs' starts, by their answers


def _rules(a: dict, lim: ShapeLimits, can_close: bool, can_close_title: bool = False
           ) -> tuple[np.ndarray, np.ndarray]:
    """The rules: per row, from the answers `a` to their questions (Standing.answers), the
    bias table's row for its next symbol and its flags (STEERED ...)."""
    in_title = a["in_title"]
    # The song may end here, where a line of lyrics could end ...
    in_range = a["ink"] & ~in_title & a["long_enough"] & a["stanzas_enough"]
    # ... and only after a line that ends as the corpus's songs end.
    may_end = in_range & a["ends_ok"]
    # From its length on, at a stanza's end (as long as the stanza before, or the corpus's
    # typical one where that is shorter); from the corpus's longer songs', at a line's end.
    due = in_range & ((a["at_length"] & a["stanza_due"]) | a["hard_end"])
    steered = due & may_end
    closing = due & ~may_end & can_close
    # A title or line at its limit ends at the end of its word: where the model would write
    # a space (from the limit's last character on, so that no line ends in one), at the
    # latest WORD_GRACE characters later.
    past = np.where(in_title, a["past_title"], a["past"])
    must_end = np.where(in_title, a["end_title"], a["must_end"])
    # A title closes only where the corpus's titles may end ("Door," may not), unless it runs
    # on far past its limit.
    title_open = in_title & ~a["title_ok"]
    must_end &= ~(title_open & ~a["far_title"])
    # ... and past its limit, a line break goes to the marks they end with.
    title_closing = title_open & a["past_title"] & can_close_title
    line_start = ~a["mid_line"]
    forbid_nl = (steered | (in_title & ~a["col3"]) | title_open
                 | (line_start & (a["prev_blank"] | ~a["started"])))
    code = (FORBID_NL * forbid_nl + FORBID_EOS * ~may_end + LINE_END * (must_end & ~in_title)
            + WORD_END * past + FORBID_HASH * (lim.titled & ~in_title))
    # Forced symbols: "#" and " " to open a titled song; a line break to close a long title,
    # for the blank line after the title, and to close a runaway stanza (the last wins).
    code = np.where(lim.titled & in_title & a["col1"], FORCED + 1, code)
    code = np.where(lim.titled & ~a["started"], FORCED, code)
    code = np.where((in_title & must_end) | (line_start & ~a["prev_blank"] & a["stanza_full"])
                    | (lim.title_blank & a["title"] & a["line1"] & line_start), FORCED + 2, code)
    flags = (STEERED * steered + CLOSING * closing + WORD_ENDS * (past & (code < FORCED))
             + TITLE_CLOSING * (title_closing & (code < FORCED)))
    return code, flags


def _table_of_rules(lim: ShapeLimits, can_close: bool) -> tuple[list[int], list[int]]:
    """The rules for every answer to COMPARED of a row outside its song's start and title
    (its key: Standing.keys): its bias row and flags, looked up rather than reckoned."""
    keys = np.arange(1 << len(ANSWERS))
    a = {name: (keys >> bit) & 1 > 0 for bit, name in enumerate(ANSWERS)}
    no = np.zeros(len(keys), dtype=bool)
    a.update({name: no for name in TITLE_ANSWERS}, started=~no)
    code, flags = _rules(a, lim, can_close)
    return code.tolist(), flags.tolist()


def _bias_table(vocab: int, nl: int, hash_: int, space: int, tab: int) -> np.ndarray:
    """The bias table (rows: see FORBID_NL ...), added to the logits by row index."""
    table = np.zeros((FORCED + 3, vocab), dtype=np.float32)
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
    songs and titles end with (end_class); every id where none were measured. On the closing
    line, the probability of a line break and of marks no song ends with (`close_from`) goes
    to the marks songs end with (`close_to`), where there are such marks, or after a mark to a
    space (`close_space`); in a title past its length, a line break's to the marks titles end
    with (`title_close_to`). A title ends on a word only where the corpus's titles do (allowed
    to anywhere, a title of a corpus whose titles end "(Child 1A)" ended "(Child 17Be").

    `ends`: the song ends (a set of classes, or each class with the share of the corpus's songs
    ending so: Measures.ending_shares) and the title ends. A class at least ENDING_COMMON of
    the songs end with is open to every song (`song_ok`); a rarer one only to as many songs
    as end with it in the corpus, each song drawing it (`song_ok_for`): open to all, it came
    wherever the model's line happened to end so when the song was due to end (on the
    ballads a song in ten ended on a bare word, where one in forty of theirs does)."""

    def __init__(self, chars: list[str], ends: tuple, nl: int, space: int):
        song_ends, title_ok = ends
        shares = (song_ends if song_ends is None or isinstance(song_ends, dict)
                  else dict.fromkeys(song_ends, 1.0))
        self.classes = [end_class(c) if c.strip() else None for c in chars]
        common = None if shares is None else _common(shares)
        self.rare = {} if shares is None else {c: p for c, p in shares.items()
                                               if c not in common}
        self.song_ok = self._ok(common)
        self.title_ok = self._ok(title_ok)
        title_marks = [i for i, c in enumerate(chars)
                       if self.title_ok[i] and not c.isalnum() and c.strip()]
        self.title_close_to = (np.array(title_marks)
                               if title_ok is not None and title_marks else None)
        marks = [i for i, c in enumerate(chars) if c in ".!?…" and self.song_ok[i]]
        moved = [i for i, c in enumerate(chars) if c in ",;:-–—" and not self.song_ok[i]]
        self.close_to = np.array(marks) if song_ends is not None and marks else None
        self.close_from = np.array([nl] + moved)
        self.close_space = np.array([space]) if space >= 0 else None
        self.is_word = np.array([c.isalnum() for c in chars])

    def _ok(self, classes) -> np.ndarray:
        """Per id, whether its class is among `classes` (None: every id)."""
        return np.array([classes is None or (k is not None and k in classes)
                         for k in self.classes])

    def song_ok_for(self, rng: random.Random) -> np.ndarray:
        """The ids one song may end after: the common classes', and each rare class's where
        the song draws it (with `rng`, at the class's share of the corpus's songs)."""
        drawn = [c for c, share in self.rare.items() if rng.random() < share]
        return self.song_ok if not drawn else self.song_ok | self._ok(drawn)


ENDING_COMMON = 0.1  # an end class this share of the corpus's songs end with is open to all


def _common(shares: dict) -> set:
    """The end classes open to every song: those at least ENDING_COMMON of the corpus's songs
    end with, or the commonest where none is."""
    common = {c for c, share in shares.items() if share >= ENDING_COMMON}
    return common or {max(sorted(shares), key=shares.get)}


def _length(shape: SongShape, seed: str, stanza_chars: int) -> int:
    """Where a song starts to end: a length drawn from the corpus's songs, less half a stanza
    (it ends at the stanza end after it)."""
    return int(_draw(shape.song_chars, random.Random(seed).uniform(0.05, 0.95))
               - stanza_chars / 2)


def _draw(quantiles: list[int], u: float) -> float:
    """The value at quantile u of a distribution known at QUANTILES (linear in between)."""
    return float(np.interp(u, QUANTILES, quantiles))


def _move(logits: np.ndarray, out: np.ndarray, rows: list[int], src: np.ndarray,
          dst: np.ndarray) -> None:
    """In `out`'s `rows`, the probability (by `logits`) of the `src` symbols goes to the `dst`
    ones, shared in their own odds."""
    mine = logits[rows]
    good, bad = mine[:, dst], mine[:, src]
    lift = (logsumexp(np.concatenate([good, bad], axis=1)) - logsumexp(good))[:, None]
    at = np.array(rows)[:, None]
    out[at, dst] = good + lift
    out[at, src] = -math.inf


def logsumexp(a: np.ndarray) -> np.ndarray:
    """log(sum(exp(a))) of each row of `a` (a row of -inf alone gives -inf)."""
    return np.logaddexp.reduce(a, axis=1)
