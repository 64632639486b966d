"""A stanza measured against the song's earlier ones while sampling (the steps in
songgen/writing/steering/ steer with it): a line of stanza 2 or later written to the syllables
of the line at the same place in the song's earlier stanzas (scansion; the measure:
songcraft.scansion), and no stanza sung a third time in a row.

Scansion: such a line is written on every lane, as a rhyming line is, and the likeliest
candidate (the model's mean log-probability per character) within its window of syllables is
kept (none may end short of it: it goes on with a word while it is); a rhyme the pattern
asks for comes first, and when no candidate scans the likeliest stands. The measure compares a
stanza with the song's first stanza of as many lines; the sampler cannot know how many lines a
stanza will have, so the window is where the line is within SCAN_TOLERANCE syllables of the
line at its place in every stanza the measure may compare it with: the first stanza of each
length so far that has a line there (`syllable_window`). Written to the first stanza alone, a
song's later stanzas of another length (compared with each other) and their lines past the
first stanza's were three quarters of the ballads' lines that did not scan. The chorus is
written to it too: it comes back, compared with the first stanza each time (written freely,
it was nearly half of the demo songs' lines that did not scan). `scan="auto"` does this when
the corpus's own lines scan at least SCAN_RATE of the time, over SCAN_MIN_LINES lines or more:
a collection whose stanzas share no metre is left free. The opening stanza stays free.

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


def syllable_window(models: dict[int, list[int]], line: int) -> tuple[int, int] | None:
    """The syllables (least, most) line `line` of a stanza is written to, from `models`, the
    syllables of the lines of the song's first stanza of each length (in the order they came):
    within SCAN_TOLERANCE of the line at its place in each that has one, or where no count is
    close to them all, of the first of them; None: free (none has a line there)."""
    targets = [lines[line] for lines in models.values() if len(lines) > line]
    if not targets:
        return None
    low, high = max(targets) - SCAN_TOLERANCE, min(targets) + SCAN_TOLERANCE
    if low > high:
        low, high = targets[0] - SCAN_TOLERANCE, targets[0] + SCAN_TOLERANCE
    return max(low, 0), high


def scans(text: str, window: tuple[int, int] | None) -> bool:
    return window is None or window[0] <= line_syllables(text) <= window[1]


def short(row, window: tuple[int, int]) -> bool:
    """Whether a row's line (steering.words.RowWords) ended now would have fewer syllables than
    `window` allows."""
    return row.syl + (syllables(row.word) if row.word else 0) < window[0]


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
