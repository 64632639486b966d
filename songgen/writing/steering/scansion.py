"""Scansion (Scan, a line step): a line of stanza 2 or later is written to the syllables of the
line at the same place in the song's first stanza, on every lane at once as a rhyming line is
(lines.py), and the likeliest candidate within SCAN_TOLERANCE syllables of it is kept (a rhyme
asked for comes first; when none scans, the likeliest stands). While a lane's line is far
short of its syllables its line break is masked; once it has the most the tolerance allows, no
word may start. When it is asked for, and why the first stanza: songgen/writing/stanzas.py.
"""

from __future__ import annotations

import torch

from ...songcraft.measures import line_syllables
from ..stanzas import full, scans, short, syllable_target
from .chorus import Chorus
from .lines import Lines, LineStep
from .words import Words


class Scanning:
    """One song's scansion: its first stanza's syllables, the line's target, counts."""

    __slots__ = ("first", "syll", "asked", "fit")

    def __init__(self):
        self.first: list[int] | None = None  # the syllables of the first stanza's lines
        self.syll: int | None = None          # the syllables the line is written to (None: free)
        self.asked = self.fit = 0             # lines written to a count; of them, those that scan


class Scan(LineStep):
    """Lines written to the first stanza's syllables; no line longer than `line_cap` characters
    is held open for want of them; the chorus being written (`chorus`) stays free."""

    name = "scan"

    def __init__(self, lines: Lines, words: Words, chorus: Chorus | None, line_cap: int):
        super().__init__(lines)
        self.words, self.chorus, self.line_cap = words, chorus, line_cap
        self.songs = [Scanning() for _ in lines.songs]

    def steer(self, scores: torch.Tensor) -> torch.Tensor:
        lines, words = self.lines, self.words.row
        picks = None
        for s, rows in lines.read_songs:
            syll = self.songs[s].syll
            if syll is None:
                continue
            text = lines.songs[s]
            for r in rows:
                row = words[r]
                if text.round == 1 and row.ink and row.col < self.line_cap and short(row, syll):
                    lines.ends.open.append(r)  # written to a syllable count: not far short
                    # (a second round ends on its rhyme; a line far too long ends anyway)
                if not (text.mode == "lanes" and text.round == 2) and full(row, syll):
                    if picks is None:
                        picks = [0] * scores.shape[0]
                    picks[r] = self.words.closing()  # no word more: it ends within the count
        return scores if picks is None else self.words.masks.add(scores, picks, self.words.rows)

    def explain(self, row: int) -> list[str]:
        syll = self.songs[row % self.lines.n].syll
        if syll is None:
            return []
        words, text = self.words.row[row], self.lines.songs[row % self.lines.n]
        out = [f"the line is written to {syll} syllables"]
        if text.round == 1 and words.ink and words.col < self.line_cap and short(words, syll):
            out.append("it is still far short of them: it may not end yet")
        if not (text.mode == "lanes" and text.round == 2) and full(words, syll):
            out.append("it has them: no word may start, the line ends")
        return out

    def line_start(self, s: int) -> None:
        self.songs[s].syll = None

    def plan_line(self, s: int) -> bool:
        song, text = self.songs[s], self.lines.songs[s]
        chorus_due = self.chorus is not None and self.chorus.due(s)
        song.syll = syllable_target(song.first, text.stanza_index, len(text.stanza), chorus_due)
        return song.syll is not None

    def rank(self, s: int, text: str, word: str) -> bool:
        return scans(text, self.songs[s].syll)

    def kept_line(self, s: int, text: str, word: str) -> None:
        song = self.songs[s]
        if song.syll is not None:
            song.asked += 1
            song.fit += scans(text, song.syll)

    def stanza_end(self, s: int) -> None:
        song = self.songs[s]
        if song.first is None:
            song.first = [line_syllables(line) for line in self.lines.songs[s].stanza]

    def report(self, s: int) -> dict:
        return {"scan": True, "scan_lines_asked": self.songs[s].asked,
                "scan_lines_scanning": self.songs[s].fit}
