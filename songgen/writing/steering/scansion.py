"""Scansion (Scan, a line step): a line of stanza 2 or later is written to the syllables of the
line at the same place in the song's earlier stanzas (a window: songgen/writing/stanzas.py), on
every lane at once as a rhyming line is (lines.py), and the likeliest candidate within the
window is kept (a rhyme asked for comes first; when none scans, the likeliest stands). While a
lane's line is short of the window it may not end: its line break's probability goes to a
blank (the line goes on with a word; spread over every symbol, it went on glued to the end
of a sentence: "hand.''d was the men"). Past the window's top it goes on as the model writes
it, and loses to a lane that scans: a line made to end at the top ended where its phrase went
on ("That was my horse come back to", a tenth of the ballads' lines), or after a blank ("and
the king "). When it is asked for, and which stanzas a line is written to:
songgen/writing/stanzas.py.
"""

from __future__ import annotations

import numpy as np

from ...songcraft.measures import line_syllables
from ..stanzas import scans, short, syllable_window
from .lines import Lines, LineStep
from .words import Words


class Scanning:
    """One song's scansion: its stanzas' syllables, the line's window, counts."""

    __slots__ = ("models", "syll", "asked", "fit")

    def __init__(self):
        # The syllables of the lines of the song's first stanza of each length.
        self.models: dict[int, list[int]] = {}
        self.syll: tuple[int, int] | None = None  # the line's window (None: free)
        self.asked = self.fit = 0  # lines written to a window; of them, those that scan


class Scan(LineStep):
    """Lines written to their window of syllables; no line longer than `line_cap` characters
    is held open for want of them."""

    name = "scan"

    def __init__(self, lines: Lines, words: Words, line_cap: int):
        super().__init__(lines)
        self.words, self.line_cap = words, line_cap
        self.songs = [Scanning() for _ in lines.songs]
        self.space = words.index.get(" ")

    def steer(self, scores: np.ndarray) -> np.ndarray:
        """Lines short of their window held open (told to the lines), a line break's chance
        given to a blank."""
        lines, words, held = self.lines, self.words.row, []
        for s, rows in lines.read_songs:
            syll = self.songs[s].syll
            if syll is None or lines.songs[s].round != 1:
                continue  # (a second round ends on its rhyme)
            for r in rows:
                row = words[r]
                if row.ink and row.col < self.line_cap and short(row, syll):
                    held.append(r)  # (a line far too long ends anyway)
        if not held:
            return scores
        lines.ends.open += held
        if self.space is None:
            return scores
        out, nl = lines.rows.own(scores), self.words.nl
        out[held, self.space] = np.logaddexp(out[held, self.space], out[held, nl])
        return out

    def explain(self, row: int) -> list[str]:
        syll = self.songs[row % self.lines.n].syll
        if syll is None:
            return []
        words, text = self.words.row[row], self.lines.songs[row % self.lines.n]
        out = [f"the line is written to {syll[0]} to {syll[1]} syllables"]
        if text.round == 1 and words.ink and words.col < self.line_cap and short(words, syll):
            out.append("it is still short of them: it may not end yet (a line break's chance "
                       "goes to a blank)")
        return out

    def line_start(self, s: int) -> None:
        self.songs[s].syll = None

    def plan_line(self, s: int) -> bool:
        song, text = self.songs[s], self.lines.songs[s]
        song.syll = syllable_window(song.models, len(text.stanza))
        return song.syll is not None

    def rank(self, s: int, text: str, word: str) -> bool:
        return scans(text, self.songs[s].syll)

    def hopeless(self, s: int, row: int) -> bool:
        syll = self.songs[s].syll  # (syllables only grow as a line goes on)
        return syll is not None and self.words.row[row].syl > syll[1]

    def kept_line(self, s: int, text: str, word: str) -> None:
        song = self.songs[s]
        if song.syll is not None:
            song.asked += 1
            song.fit += scans(text, song.syll)

    def stanza_end(self, s: int) -> None:
        stanza = self.lines.songs[s].stanza
        if len(stanza) not in self.songs[s].models:
            self.songs[s].models[len(stanza)] = [line_syllables(line) for line in stanza]

    def report(self, s: int) -> dict:
        return {"scan": True, "scan_lines_asked": self.songs[s].asked,
                "scan_lines_scanning": self.songs[s].fit}
