"""Songs written line by line (Lines, a steering step): each song's text as it is kept (its lines,
stanzas and their last words), the line steps that plan each line (LineStep: rhyme, chorus,
scansion, repeats), and the lanes a line is written on when one of them asks for a choice.

Every song of the batch is written on K lanes (rows of the LSTM batch, lane k of song s at row
k * n + s, so that lane 0 of every song is the first n rows), K = LANES when a line step may
ask for candidate lines, else 1. Most lines are written on lane 0 (the other lanes are not read:
see rows.py). A line a step asks a choice for (it must rhyme, or scan) is written on all K lanes
at once, each drawing freely from the same state, and chosen among (candidates.py).

A line step may also say that a row's line or song may not end yet (`hold`, `keep_open`): the
lanes apply every step's word at once, after the steps' own masks. Known text (a chorus coming
back) is read in one call of the model where a song is written alone, and drawn as set, a
character a step, beside other songs (their rows step anyway).
"""

from __future__ import annotations

import math
import random

import numpy as np

from ...songcraft.measures import last_word
from ..stanzas import stanza_key
from .candidates import Candidates
from .step import Step

# Candidate lines per line asked for: 3 met every #33 target on the demo songs and the ballads
# at 0.8 and 1.0 (4 did too, at 0.88x of 3's speed with 8 songs).
LANES = 3
# What a mask takes from a symbol's score, where -inf would do: a row whose every allowed
# symbol the shape forbids then draws from what is left, as the model sees it, with no test.
# Far above the spread of scores and of the draw's noise (temperature 100 x 88 at most).
BIG = 1e6


class SongText:
    """One song as kept so far, and the state of its lanes."""

    __slots__ = ("rng", "line", "lines_seen", "stanza", "ends", "stanza_index", "chars",
                 "recent", "mode", "round", "tail", "cands", "done", "known", "known_by",
                 "word_at", "again_lane", "again_kept", "dropped", "may_again", "settled")

    def __init__(self, rng: random.Random):
        self.rng = rng                   # the song's own draws (patterns, chorus, free words)
        self.line = ""                   # the line being written (kept text)
        self.lines_seen = 0              # lines finished, blank and title included
        self.stanza: list[str] = []      # lyric lines of the current stanza
        self.ends: list[str | None] = []  # their last words
        self.stanza_index = 0
        self.chars = 0
        self.recent: list[tuple] = []    # the last two stanzas (stanzas.stanza_key)
        self.mode = "follow"             # follow | lanes (candidate lines on every lane)
        self.round = 1                   # 2: the line written again, its last word drawn anew
        self.tail: list[int] = []        # round 2: the best line but its last word
        self.cands: list[list] = []      # per lane: [(token, logp)]
        self.done: list[bool] = []       # per lane: its candidate line has ended
        self.known: list[int] = []       # known text still to come, drawn one by one (reversed)
        self.known_by = ""               # the step that knew it
        self.word_at: list[int] = []     # per lane: where its last word started (Lines.drawn)
        self.again_lane = 0              # round 2: the lane whose line is written again
        self.again_kept: list = []       # ... and its kept part, [(token, logp)]
        self.dropped: set[int] = set()   # lanes stopped before their line ended
        self.may_again = False           # a step may ask for the line again (second round)
        self.settled = False             # a lane ended a line that is all the steps ask


class LineStep(Step):
    """A step planned line by line. Lines calls, for each song s: `line_start(s)` where a line
    starts (every step); `known_line(s)`, the text the line is where a step knows it (the
    chorus; [] for none after all), which the model then reads in one call; else, where
    candidate lines may be written, `plan_line(s)`: whether this step asks a choice of lines.
    Among candidates, `rank` (a value to sort by, or None for no say), `satisfied` (the line
    is all the step asks), `again` (a tail to write the line again from, or None) and
    `kept_line` where one is kept; `no_line` where
    the lanes ended the stanza instead; `line_end` and `stanza_end` as the text is kept."""

    def __init__(self, lines: "Lines"):
        self.lines = lines

    def line_start(self, s: int) -> None:
        pass

    def known_line(self, s: int) -> list[int] | None:
        return None

    def plan_line(self, s: int) -> bool:
        return False

    def rank(self, s: int, text: str, word: str):
        return None

    def satisfied(self, s: int, text: str, word: str) -> bool:
        """Whether the candidate line is all this step asks of it (once one that every step
        finds so has ended, the lanes less likely so far stop: candidates.py)."""
        rank = self.rank(s, text, word)
        return rank is None or bool(rank)

    def hopeless(self, s: int, row: int) -> bool:
        """Whether the candidate line still being written on row `row` can no longer be all
        this step asks, however it ends (it then loses to a line that is: candidates.py)."""
        return False

    def again(self, s: int, text: str, word: str, cand: list) -> list[int] | None:
        return None

    def may_ask_again(self, s: int) -> bool:
        """Whether `again` may ask for the line planned to be written again (the lanes then
        keep where their words start: candidates.py)."""
        return False

    def kept_line(self, s: int, text: str, word: str) -> None:
        pass

    def no_line(self, s: int) -> None:
        pass

    def line_end(self, s: int, line: str) -> None:
        pass

    def stanza_end(self, s: int) -> None:
        pass


class Lines(Step):
    """The lanes of `n` songs (`lanes` each) and their text; `seed` names the songs' draws."""

    name = "lines"

    def __init__(self, chars: list[str], n: int, lanes: int, seed: str):
        self.chars, self.n, self.lanes = chars, n, lanes
        self.index = {c: i for i, c in enumerate(chars)}
        self.nl = self.index.get("\n", -1)
        self.songs = [SongText(random.Random(f"{seed}:{i}")) for i in range(n)]
        self.line_steps: list[LineStep] = []
        self.read_songs: list[tuple] = []  # the rows read at this step, by song: (s, rows)
        self.singing: list[int] = []  # the songs drawing known text as set (steer)
        self.ends = Ends(self.nl)
        self.candidates = Candidates(self)

    def start(self, rows) -> None:
        """Take in the prime (the same for every song) and plan each song's first line."""
        self.rows = rows
        self.candidates.start(rows)
        self._lane0 = [[s] for s in range(self.n)]  # (never changed: shared step to step)
        for token in rows.prime:
            for s, song in enumerate(self.songs):
                self._accept(s, song, token)
        for s, song in enumerate(self.songs):
            self._line_start(s, song)

    def reading(self) -> tuple[list[int], bool]:
        """Lane 0 of each song writing, and the lanes writing a candidate line; every lane is
        drawn while some song writes candidate lines."""
        read, songs, n, stopped, wide = [], [], self.n, self.rows.stopped, False
        for s, song in enumerate(self.songs):
            if stopped[s] is not None:
                continue
            if song.mode != "lanes":
                rows = self._lane0[s]
            else:
                rows = [lane * n + s for lane in range(self.lanes) if not song.done[lane]]
                wide = True
            read += rows
            songs.append((s, rows))
        self.read_songs = songs
        self.ends.reset()
        return read, wide

    def line_text(self, s: int, lane: int) -> str:
        """The text of the line a song's lane is writing, blanks at its ends out."""
        song = self.songs[s]
        if song.mode != "lanes":
            return song.line.strip()
        return (song.line + "".join(self.chars[t] for t, _ in song.cands[lane])).strip()

    def steer(self, scores: np.ndarray) -> np.ndarray:
        """The line steps' holds and opens, applied at once (Ends); then a song singing known
        text may draw only its next character."""
        scores = self.ends.apply(scores, self.rows)
        if not self.singing:
            return scores
        stopped = self.rows.stopped
        forced = [s for s in self.singing if stopped[s] is None]
        if not forced:
            return scores
        out = self.rows.own(scores)
        out[forced] = -math.inf
        out[forced, [self.songs[s].known[-1] for s in forced]] = 0.0
        return out

    def explain(self, row: int) -> list[str]:
        out = []
        if row in self.ends.held:
            out.append("a line step holds the song open: the chance of its end goes to a line "
                       "break")
        if row in self.ends.open:
            out.append("a line step holds the line open: no line break and no end here")
        song = self.songs[row % self.n]
        if row < self.n and song.known:
            out.append(f"{song.known_by}: known text, sung again: its next character is set")
        return out

    # -- after the draw ----------------------------------------------------------------------

    def drawn(self, ids: list[int]) -> None:
        self.candidates.drawn(ids)

    def chosen(self, ids: list[int], logps: list[float]) -> None:
        """Lanes writing a candidate line take their draws, and a finished set of candidates is
        chosen among (candidates.py); every song's kept text is taken in, and its next line
        planned."""
        kept, songs = self.rows.kept, self.songs
        self.candidates.take(ids, logps, kept)
        for s, _ in self.read_songs:  # (the songs still being written)
            song = songs[s]
            if song.mode == "lanes":
                line = self.candidates.chosen_line(s, song)
                if line is None:  # still writing, or written again from its last word
                    continue
                kept[s], song.mode = line, "follow"
            piece = kept[s]
            if song.known and piece:
                song.known.pop()  # (drawn as set: steer)
                if not song.known:
                    self.singing.remove(s)
            for token, _ in piece:  # a chorus read at a line start adds to the piece as it goes
                self._accept(s, song, token)
                if token == self.nl:
                    piece += self._line_start(s, song)

    # -- the kept text -------------------------------------------------------------------------

    def _line_start(self, s: int, song: SongText) -> list:
        """Plan the line about to be written: known text (a chorus), read at once and returned
        as [(token, logp)], or candidate lines where a step asks, or a free line."""
        song.mode, song.round, song.tail = "follow", 1, []
        for step in self.line_steps:
            step.line_start(s)
        if song.known:  # a line of known text: its lines are set
            return []
        for step in self.line_steps:
            known = step.known_line(s)
            if known is None:
                continue
            # Beside other songs, known text is drawn as set, a character a step: those rows
            # step anyway, where reading it alone in one call of the model costs a call per
            # character of one row. A song written alone reads it in one call.
            if len(known) > 1 and sum(stop is None for stop in self.rows.stopped) > 1:
                song.known, song.known_by = known[::-1], step.name
                self.singing.append(s)
                return []
            return self.rows.feed(s, known)
        if self.lanes == 1 or song.line:
            return []
        wanted = [step.plan_line(s) for step in self.line_steps]  # (every step plans)
        if not any(wanted):
            return []
        self.candidates.begin(s, song)
        return []

    def _accept(self, s: int, song: SongText, token: int) -> None:
        """A character the song keeps: track its lines and stanzas."""
        if token == 0:
            return
        song.chars += 1
        c = self.chars[token]
        if c != "\n":
            song.line += c
            return
        line, song.line = song.line, ""
        for step in self.line_steps:
            step.line_end(s, line)
        is_title = song.lines_seen == 0 and line.startswith("# ")
        song.lines_seen += 1
        if is_title:
            return
        if line.strip():
            song.stanza.append(line)
            song.ends.append(last_word(line))
            return
        if song.stanza:  # a blank line closes a stanza
            song.recent = (song.recent + [stanza_key(song.stanza)])[-2:]
            for step in self.line_steps:
                step.stanza_end(s)
            song.stanza_index += 1
            song.stanza, song.ends = [], []


class Ends:
    """Where line steps said at this step that a row's song may not end yet (`held`: the end's
    probability moves to a line break) or its line may not end yet (`open`: neither a line
    break nor the end, nor so a blank line); applied to the scores at once, after the steps'
    own masks, in that order. A reason dearer to check is asked last, and only for a row no
    other keeps open (`open_unless`)."""

    def __init__(self, nl: int):
        self.nl = nl
        self.held: list[int] = []
        self.open: list[int] = []
        self.maybe: list[tuple] = []

    def reset(self) -> None:
        self.held, self.open, self.maybe = [], [], []

    def open_unless(self, row: int, check) -> None:
        """Keep `row`'s line open where `check(row)` says so, asked only if no other reason
        does."""
        self.maybe.append((row, check))

    def apply(self, scores: np.ndarray, rows) -> np.ndarray:
        if self.maybe:
            opened = set(self.open)
            self.open += [r for r, check in self.maybe if r not in opened and check(r)]
        if not self.held and not self.open:
            return scores
        out = rows.own(scores)
        line_break, end = out[:, self.nl], out[:, 0]  # (columns: views of `out`)
        if self.held:
            held = self.held
            line_break[held] = np.logaddexp(line_break[held], end[held])
            end[held] = -math.inf
        if self.open:
            line_break[self.open] = -BIG
            end[self.open] = -BIG
        return out
