"""A stanza measured against the song's earlier ones while sampling (the steps in
songgen/writing/steering/ steer with it): a line of stanza 2 or later written to the syllables
of the line at the same place in the song's first stanza (scansion; the measure:
songcraft.scansion), and no stanza sung a third time in a row.

Scansion: such a line is written on every lane, as a rhyming line is, and the likeliest
candidate (the model's mean log-probability per character) within SCAN_TOLERANCE syllables of
its model line is kept (and none may end far short of it: its line break is masked while it
is, and no word may start once it is at the most the tolerance allows); a rhyme the pattern
asks for comes first, and when no candidate scans the likeliest stands. The sampler cannot know
how many lines a stanza will have, so the model line is the first stanza's (the measure
compares stanzas of the same length, and most songs keep one). `scan="auto"` does this when the
corpus's own lines scan at least SCAN_RATE of the time, over SCAN_MIN_LINES lines or more: a
collection whose stanzas share no metre is left free. The opening stanza and the chorus stay
free.

Repeats: a stanza may come twice in a row (a chorus sung again), never three times. When the two
stanzas before are the same and the one being written has copied them up to its last line, that
line may not end (its line break and the song's end are masked) where it would end as theirs
does, so the model writes on; and a chorus due to come back right after the model sang it itself
does not come (it came back).
"""

from __future__ import annotations

from ..songcraft.measures import SCAN_TOLERANCE, Measures, line_syllables, syllables

SCAN_RATE = 0.6       # auto: the share of the corpus's lines that scan, at least
SCAN_MIN_LINES = 20   # auto: lines compared in the corpus, at least
SCANS = ("auto", "off")


def scan_wanted(measures: Measures | None, scan: str) -> bool:
    """Whether lines are written to the first stanza's syllables (see the docstring)."""
    if scan != "auto" or measures is None or measures.scan_rate is None:
        return False
    return measures.scan_rate >= SCAN_RATE and measures.scan_lines[1] >= SCAN_MIN_LINES


def stanza_key(lines: list[str]) -> tuple:
    """A stanza as compared for repeats: its lines, blanks at their ends not counted."""
    return tuple(line.strip() for line in lines if line.strip())


def syllable_target(first: list[int] | None, stanza_index: int, line: int,
                    chorus_due: bool) -> int | None:
    """The syllables line `line` of stanza `stanza_index` is written to, from the `first`
    stanza's lines' syllables; None: free (the first stanza, the chorus being written, a line
    past the first stanza's)."""
    if first is None or stanza_index == 0 or chorus_due:
        return None
    return first[line] if line < len(first) else None


def scans(text: str, target: int | None) -> bool:
    return target is None or abs(line_syllables(text) - target) <= SCAN_TOLERANCE


def short(row, target: int) -> bool:
    """Whether a row's line (steering.words.RowWords) ended now would fall short of `target`
    syllables by more than the tolerance."""
    return row.syl + (syllables(row.word) if row.word else 0) < target - SCAN_TOLERANCE


def full(row, target: int) -> bool:
    """Whether a row's line, between words, has as many syllables as `target` allows."""
    return not row.word and row.syl >= target + SCAN_TOLERANCE


def copied_line(recent: list[tuple], stanza: list[str]) -> str | None:
    """The text the line about to be written may not end with (see the docstring), or None:
    `recent`, the song's last two stanzas (stanza_key); `stanza`, the lines of this one."""
    if len(recent) < 2 or recent[0] != recent[1]:
        return None
    before, i = recent[1], len(stanza)
    if i != len(before) - 1 or stanza_key(stanza) != before[:i]:
        return None
    return before[i]


def sung_just_before(recent: list[tuple], chorus: str) -> bool:
    """Whether the stanza just closed (the last of `recent`) is the song's `chorus`."""
    return bool(recent) and recent[-1] == stanza_key(chorus.split("\n"))
