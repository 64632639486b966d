"""What the song crafter (songgen/writing/craft.py) keeps per row and per song while it samples: each
row's word state, each song's plan and progress, the word masks added to the logits, and
snapshots of rows' state to copy a kept candidate line to every lane; the word lists it draws
rhymes from, indexed once."""

from __future__ import annotations

import random
import threading

import torch

from ..songcraft.measures import Words, rhyme_key

# What a mask takes from a symbol's score, where -inf would do: a row whose every allowed
# symbol the shape forbids then draws from what is left, as the model sees it, with no test.
# Far above the spread of scores and of the draw's noise (temperature 100 x 88 at most).
BIG = 1e6


def copy_slots(s):
    new = object.__new__(type(s))
    for name in type(s).__slots__:
        setattr(new, name, getattr(s, name))
    return new


class RowWords:
    """Word state of one row: the word being drawn (lower case), whether it is free, the last
    word, the line's characters so far and of them those not blank (`ink`), the syllables of its
    finished words (`syl`)."""

    __slots__ = ("word", "free", "last", "col", "ink", "syl")

    def __init__(self):
        self.word, self.free, self.last, self.col, self.ink, self.syl = "", False, None, 0, 0, 0

    def copy(self) -> "RowWords":
        new = RowWords()
        new.word, new.free, new.last, new.col, new.ink, new.syl = (
            self.word, self.free, self.last, self.col, self.ink, self.syl)
        return new


class SongState:
    """One song's plan and progress: its stanzas, pattern, chorus and the lanes' lines."""

    def __init__(self, rng: random.Random, chorus: bool):
        self.rng = rng
        self.line = ""                   # the line being written (accepted text)
        self.lines_seen = 0              # lines finished, blank and title included
        self.stanza: list[str] = []      # lyric lines of the current stanza
        self.ends: list[str | None] = [] # their last words
        self.stanza_index = 0
        self.pattern = "X"
        self.chorus_planned = chorus
        self.chorus_text: str | None = None
        self.chorus_back = 0             # times the chorus came back
        self.chorus_first = 0            # the stanza it was written in
        self.chars = 0
        self.mode = "follow"             # follow | lanes (candidate lines on every lane)
        self.target: str | None = None   # the word the line must rhyme with (None: none)
        self.syll: int | None = None     # the syllables it is written to (None: free)
        self.first: list[int] | None = None  # the syllables of the first stanza's lines
        self.recent: list[tuple] = []    # the last two stanzas (songgen/writing/stanzas.py)
        self.guard: str | None = None    # the text the line may not end with (stanzas.py)
        self.scan_asked = 0              # lines written to a syllable count, and of them
        self.scan_fit = 0                # those that scan
        self.round = 1
        self.tail: list[int] = []        # round 2: the best line but its last word, read again
        self.endings: Words | None = None  # round 2: the words that rhyme with the target
        self.cands: list[list] = []      # per lane: [(token, logp)], done flag
        self.done: list[bool] = []
        self.rhymed = 0
        self.asked = 0
        self.owes: tuple | None = None   # _owes_rhyme's answer for this line (None: not known)
        self.opener = False              # the line opens a rhyme: it ends on a rhymable word
        self.free_stanzas = 0            # stanzas left free of rhyme (auto), and of them
        self.free_rhymed = 0             # those the model rhymed unasked


_RHYME_INDEX: dict = {}
_SPELLABLE: dict = {}


def spellable(words: Words, letters: frozenset) -> Words:
    """The words of `words` made only of `letters` (cached for the last few lists)."""
    key = (id(words), letters)
    found = _SPELLABLE.get(key)
    if found is None:
        found = Words([w for w in words.words if letters.issuperset(w)])
        if len(_SPELLABLE) > 4:
            _SPELLABLE.clear()
        _SPELLABLE[key] = (words, found)  # the list itself kept, so that its id stays its own
        return found
    return found[1]


def rhyme_index(words: Words) -> dict[str, list[str]]:
    """Rhyme key -> the words of `words` with it (built once per word list)."""
    key = (len(words.words), tuple(words.words[:1]), tuple(words.words[-1:]))
    found = _RHYME_INDEX.get(key)
    if found is None:
        found = {}
        for word in words.words:
            if len(word) > 1 or word in ("a", "i"):
                found.setdefault(rhyme_key(word), []).append(word)
        if len(_RHYME_INDEX) > 4:
            _RHYME_INDEX.clear()
        _RHYME_INDEX[key] = found
    return found


class Masks:
    """Additive masks (0 allowed, -BIG not), one row each, found by key; row 0 masks nothing.
    The logits take a row per stream with one index_select.

    One table serves every sampler of the same model and words, and the studio writes two
    batches at once: a lock keeps its rows, their count and the table handed out in step
    (unlocked, two threads adding at a doubling skipped it, and every later add failed)."""

    def __init__(self, vocab: int):
        self.keys: dict = {}
        self.rows = torch.zeros(64, vocab)
        self.used = 1
        self._on: torch.Tensor | None = None
        self._lock = threading.Lock()

    def row_for(self, key, allowed) -> int:
        """The row of `key`, made from `allowed()` (a list of ids; None: no mask, row 0) the
        first time it is asked for."""
        with self._lock:
            found = self.keys.get(key)
            if found is None:
                ids = allowed()
                found = 0 if ids is None else self._add(ids)
                self.keys[key] = found
            return found

    def _add(self, allowed: list[int]) -> int:
        if self.used >= len(self.rows):
            self.rows = torch.cat([self.rows, torch.zeros_like(self.rows)])
        self.rows[self.used] = -BIG
        self.rows[self.used, allowed] = 0.0
        self.used += 1
        self._on = None
        return self.used - 1

    def table(self, device, dtype) -> torch.Tensor:
        """Every row made so far (a view that later rows never change), on `device`."""
        with self._lock:
            on = self._on
            if on is None or on.device != device or on.dtype != dtype:
                on = self._on = self.rows[:self.used].to(device=device, dtype=dtype)
            return on


class Snapshot:
    """Copies of rows' LSTM state, logits, shape-guide state and word state."""

    def __init__(self, layers, logits: torch.Tensor):
        self.hs = layers.hs.clone()
        self.c = [c.clone() for c in layers.c]
        self.logits = logits.clone()
        self.guide: dict = {}
        self.row: dict = {}

    def save(self, layers, logits, rows: list[int], guide, row_states) -> None:
        at = torch.tensor(rows, device=self.hs.device)
        self.hs[at] = layers.hs[at]
        for mine, theirs in zip(self.c, layers.c):
            mine[at] = theirs[at]
        self.logits[at] = logits[at].to(self.logits.dtype)
        for r in rows:
            if guide is not None:
                self.guide[r] = copy_slots(guide.songs[r])
            self.row[r] = row_states[r].copy()

    def restore(self, layers, logits, src: int, rows: list[int]) -> None:
        at = torch.tensor(rows, device=self.hs.device)
        n = len(rows)
        layers.hs[at] = self.hs[src].expand(n, -1)
        for mine, theirs in zip(self.c, layers.c):
            theirs[at] = mine[src].expand(n, -1)
        logits[at] = self.logits[src].expand(n, -1).to(logits.dtype)
