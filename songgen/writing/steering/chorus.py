"""A chorus, and no stanza a third time (line steps).

Chorus: the stanza where the corpus's repeated lines first come (its median) is kept, and comes
back verbatim every `chorus_gap` stanzas after it, read by the model in one call (not a step
per character) so that what follows reads it. A song planned with a chorus may not end before
the chorus came back once (within reason: `hold_limit` characters). A chorus comes after a
verse and never twice in a row; one due right after the model sang it itself does not come (it
came back).

Repeats: a stanza may come twice in a row (a chorus sung again), never three times. When the two
stanzas before are the same and the one being written has copied them up to its last line,
that line may not end where it would end as theirs does, so the model writes on.
"""

from __future__ import annotations

from ...songcraft.measures import Measures
from ..stanzas import copied_line, sung_just_before
from .lines import Lines, LineStep


class Choruses:
    """One song's chorus: planned or not, its text once written, where, times back."""

    __slots__ = ("planned", "text", "first", "back")

    def __init__(self, planned: bool):
        self.planned = planned
        self.text: str | None = None
        self.first = 0   # the stanza it was written in
        self.back = 0    # times it came back


class Chorus(LineStep):
    """Choruses planned for the share of songs the corpus repeats lines in (`measures`)."""

    name = "chorus"

    def __init__(self, lines: Lines, measures: Measures | None, hold_limit: int):
        super().__init__(lines)
        self.rate = measures.repeat_rate if measures is not None else 0.0
        # A chorus comes after a verse and never twice in a row (an unseen collection's
        # measures said "first stanza, back every stanza": one song sang its chorus four times
        # before its first verse).
        self.at = max(1, measures.chorus_at if measures is not None else 1)
        self.gap = max(2, measures.chorus_gap if measures is not None else 2)
        self.hold_limit = hold_limit  # characters a song waits at most for its chorus
        self.songs: list[Choruses] = []

    def start(self, rows) -> None:
        # (each song's first draw: before its first stanza's pattern)
        self.songs = [Choruses(text.rng.random() < self.rate) for text in self.lines.songs]

    def holding(self, s: int) -> bool:
        """Whether the song may not end yet: its chorus has not come back."""
        song = self.songs[s]
        return song.planned and song.back == 0 and self.lines.songs[s].chars < self.hold_limit

    def steer(self, scores):
        """A held end (told to the lines) while the chorus has not come back."""
        held = self.lines.ends.held
        for s, rows in self.lines.read_songs:
            if self.holding(s):
                held += rows
        return scores

    def explain(self, row: int) -> list[str]:
        if self.holding(row % self.lines.n):
            return ["the chorus has not come back yet: the song may not end"]
        return []

    def known_line(self, s: int) -> list[int] | None:
        """At a stanza's start where the chorus is due: the chorus ([] where the model just
        sang it itself: it came back)."""
        song, text = self.songs[s], self.lines.songs[s]
        at_stanza_start = not text.stanza and text.lines_seen > 0 and text.line == ""
        if not (at_stanza_start and song.text is not None and text.stanza_index > song.first
                and (text.stanza_index - song.first) % self.gap == 0 and song.back < 3):
            return None
        song.back += 1
        if sung_just_before(text.recent, song.text):
            return []
        return [self.lines.index[c] for c in song.text]

    def stanza_end(self, s: int) -> None:
        song, text = self.songs[s], self.lines.songs[s]
        if song.planned and song.text is None and text.stanza_index >= self.at \
                and len(text.stanza) >= 2:
            song.text = "\n".join(text.stanza) + "\n"
            song.first = text.stanza_index

    def report(self, s: int) -> dict:
        return {"chorus": self.songs[s].planned, "chorus_back": self.songs[s].back}


class Repeats(LineStep):
    """No stanza three times in a row: the line that would end the third copy stays open."""

    name = "repeats"

    def __init__(self, lines: Lines):
        super().__init__(lines)
        self.guard: list[str | None] = [None] * lines.n  # the text the line may not end with

    def line_start(self, s: int) -> None:
        text = self.lines.songs[s]
        self.guard[s] = copied_line(text.recent, text.stanza)

    def steer(self, scores):
        lines, n = self.lines, self.lines.n
        for s, rows in lines.read_songs:
            guard = self.guard[s]
            if guard is not None:
                for r in rows:
                    if lines.line_text(s, r // n) == guard:
                        lines.ends.open.append(r)  # a stanza the third time in a row: write on
        return scores

    def explain(self, row: int) -> list[str]:
        s = row % self.lines.n
        if self.guard[s] is not None and self.lines.line_text(s, row // self.lines.n) \
                == self.guard[s]:
            return ["the line would end a stanza sung twice already: it goes on"]
        return []
