"""The songs being written side by side: their text so far, why each stopped, its line count
and its score, one generated symbol per song at a time."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .copycheck import Copy


@dataclass
class Song:
    text: str
    title: str | None
    seed: int
    stop: str               # "end" (the model ended it), "max-lines" or "length"
    bits_per_char: float    # the model's own surprise at what it wrote (temperature 1)
    copy: Copy | None = None  # longest passage copied from the corpus, when checked
    number: int = 1           # its place among the songs asked for (a left-out one leaves a gap)
    shape: str = "free"       # [shape hook] "song": steered by the corpus's shape; "free": not
    guided_end: bool = False  # [shape hook] the end came where the shape steered it

    @property
    def chars(self) -> int:
        return len(self.text)

    @property
    def ended(self) -> bool:
        return self.stop == "end"

    @property
    def form(self) -> dict:
        """[shape hook] title line, blank line after it, stanzas and lyric lines."""
        from .shape import song_form

        return song_form(self.text)


def title_of(text: str) -> str | None:
    first = text.split("\n", 1)[0]
    return first[2:].strip() if first.startswith("# ") else None


class SongBatch:
    """Bookkeeping of songs written side by side: text so far, stop reasons, line counts."""

    def __init__(self, n: int, prime: str, chars: list[str], max_lines: int | None):
        self.chars, self.max_lines = chars, max_lines
        self.parts = [[prime] for _ in range(n)]
        self.stop: list[str | None] = [None] * n
        self.nats = [0.0] * n
        self.scored = [0] * n
        self.lines = [0] * n             # lyric lines finished so far
        self.seen = [0] * n              # all lines finished so far
        self.current = [""] * n          # the line being written
        self.shape = "free"              # [shape hook] set by the sampler, with:
        self.guided = [False] * n        # whether each song ended where the shape steered it
        for i in range(n):
            for c in prime:
                self._count_line(i, c)
            if max_lines is not None and self.lines[i] >= max_lines:
                self.stop[i] = "max-lines"

    def _count_line(self, i: int, c: str) -> None:
        if c != "\n":
            self.current[i] += c
            return
        line, self.current[i] = self.current[i], ""
        # A lyric line is not blank and not the title line the corpus format starts songs with.
        is_title = self.seen[i] == 0 and line.startswith("# ")
        self.seen[i] += 1
        if line.strip() and not is_title:
            self.lines[i] += 1

    def add(self, tokens: list[int], logps: list[float]) -> list[str | None]:
        """Take one generated symbol per song; return the new character of each live song."""
        new: list[str | None] = []
        for i, (token, lp) in enumerate(zip(tokens, logps)):
            if self.stop[i] is not None:
                new.append(None)
                continue
            self.nats[i] -= lp
            self.scored[i] += 1
            if token == 0:
                self.stop[i] = "end"
                new.append(None)
                continue
            c = self.chars[token]
            self.parts[i].append(c)
            self._count_line(i, c)
            if self.max_lines is not None and self.lines[i] >= self.max_lines:
                self.stop[i] = "max-lines"
            new.append(c)
        return new

    @property
    def finished(self) -> bool:
        return all(s is not None for s in self.stop)

    def songs(self, seed: int) -> list[Song]:
        out = []
        for i, parts in enumerate(self.parts):
            # A song cut after its last allowed line keeps no trailing line break, so songs
            # stay separated by exactly two blank lines.
            text = "".join(parts)
            if self.stop[i] == "max-lines":
                text = text.rstrip("\n")
            bpc = self.nats[i] / math.log(2) / max(self.scored[i], 1)
            out.append(Song(text, title_of(text), seed, self.stop[i] or "length", bpc,
                            number=i + 1, shape=self.shape,
                            guided_end=self.stop[i] == "end" and self.guided[i]))
        return out
