"""Scansion (Scan, a line step): a line of stanza 2 or later is written to the syllables of the
line at the same place in the song's earlier stanzas (a window: songgen/writing/stanzas.py), on
every lane at once as a rhyming line is (lines.py), and the likeliest candidate within the
window is kept (a rhyme asked for comes first; when none scans, the likeliest stands). While a
lane's line is short of the window its line break is masked; once it is at the window's top,
no word may start, and the word that brings it there ends the line: where the model would
write a blank after it, the blank's probability goes to the line break (the line ended after
the blank: "and the king \n", or "bright and ,"). When it is asked for, and which stanzas a
line is written to: songgen/writing/stanzas.py.
"""

from __future__ import annotations

import torch

from ...songcraft.measures import line_syllables
from ..stanzas import fills, full, scans, short, syllable_window
from .lines import BIG, Lines, LineStep
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
        self.blanks = [i for i, c in enumerate(words.chars) if c in " \t"]

    def steer(self, scores: torch.Tensor) -> torch.Tensor:
        lines, words = self.lines, self.words.row
        picks, ending = None, []
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
                if text.mode == "lanes" and text.round == 2:
                    continue
                if full(row, syll):
                    if picks is None:
                        picks = [0] * scores.shape[0]
                    picks[r] = self.words.closing()  # no word more: it ends within the count
                elif row.word and fills(row, syll):
                    ending.append(r)  # this word fills the line: no blank after it
        if picks is not None:
            scores = self.words.masks.add(scores, picks, self.words.rows)
        return self._end_at_word(scores, ending) if ending and self.blanks else scores

    def _end_at_word(self, scores: torch.Tensor, rows: list[int]) -> torch.Tensor:
        """In `rows`, the probability of a blank goes to the line break."""
        out, index = self.lines.rows.own(scores), self.lines.rows.index
        at, nl = index(rows), self.words.nl
        moved = out.index_select(0, at)[:, [nl] + self.blanks]
        out[at, nl] = torch.logsumexp(moved, dim=1)
        out[at[:, None], index(self.blanks)] = -BIG
        return out

    def explain(self, row: int) -> list[str]:
        syll = self.songs[row % self.lines.n].syll
        if syll is None:
            return []
        words, text = self.words.row[row], self.lines.songs[row % self.lines.n]
        out = [f"the line is written to {syll[0]} to {syll[1]} syllables"]
        if text.round == 1 and words.ink and words.col < self.line_cap and short(words, syll):
            out.append("it is still far short of them: it may not end yet")
        if not (text.mode == "lanes" and text.round == 2):
            if full(words, syll):
                out.append("it has them: no word may start, the line ends")
            elif words.word and fills(words, syll):
                out.append("this word gives it them: the line ends with it (a blank's chance "
                           "goes to the line break)")
        return out

    def line_start(self, s: int) -> None:
        self.songs[s].syll = None

    def plan_line(self, s: int) -> bool:
        song, text = self.songs[s], self.lines.songs[s]
        song.syll = syllable_window(song.models, len(text.stanza))
        return song.syll is not None

    def rank(self, s: int, text: str, word: str) -> bool:
        return scans(text, self.songs[s].syll)

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
