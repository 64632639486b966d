"""Real words (Words, a steering step): a word being drawn may continue only as some allowed word
continues (a prefix check in songcraft.Words), and end only where it is a word; each word is left
free with probability `words` (names and invented words stay possible at that rate), and a word
that starts right after a digit is always free: it is part of a number or a code ("17th",
"(Child 4B)"), not a word to spell (kept to the list, "4B" went on as "4Bland" and ran two
titles together). The step also follows the word each row is writing (RowWords), which rhyme
and scansion read.

The allowed words: those of the corpus and the frequent English ones (songcraft's
allowed_words), less any this model cannot spell. Masks are rows of a table added to the scores
(Masks), BIG rather than -inf so that no step has to test for a row left with nothing to draw;
one table serves every sampler of the same model and words.
"""

from __future__ import annotations

import threading

import numpy as np

from ...songcraft.measures import (Measures, Words as WordList, allowed_words, corpus_words,
                                   syllables)
from .lines import BIG, Lines
from .step import Step

# The masks of the last word lists (building them takes a while; a new sampler of the same
# model and words reuses them). Samplers run in several threads at once (the studio's
# writers): the lock keeps the check and the replacement one step, so that a sampler never
# takes the table made for another model's characters.
_MASKS: dict = {}
_MASKS_LOCK = threading.Lock()
_SPELLABLE: dict = {}


class RowWords:
    """Word state of one row: the word being drawn (lower case), whether it is free, the last
    word, the line's characters so far and of them those not blank (`ink`), the syllables of its
    finished words (`syl`)."""

    __slots__ = ("word", "free", "last", "col", "ink", "syl", "digit")

    def __init__(self):
        self.word, self.free, self.last, self.col, self.ink, self.syl = "", False, None, 0, 0, 0
        self.digit = False  # the last symbol was a digit

    def copy(self) -> "RowWords":
        new = RowWords()
        new.word, new.free, new.last, new.col, new.ink, new.syl, new.digit = (
            self.word, self.free, self.last, self.col, self.ink, self.syl, self.digit)
        return new


class Words(Step):
    """The word each row writes, on the rows of `lines`; with `rate` < 1, the masks that keep words
    real (a word is free with probability `rate`, drawn from its song's own draws)."""

    name = "words"

    def __init__(self, lines: Lines, measures: Measures | None, chars: list[str], rate: float):
        self.lines, self.chars, self.rate = lines, chars, rate
        self.index = {c: i for i, c in enumerate(chars)}
        self.nl = self.index.get("\n", -1)
        # Per vocabulary id: its lower-case letter, or None for a symbol outside words.
        self.letter = [c.lower().replace("’", "'") if (c.isalpha() or c in "'’") else None
                       for c in chars]
        self.blank = [c.isspace() for c in chars]
        self.digit = [c.isdigit() for c in chars]
        letters = frozenset(c for c in self.letter if c is not None)
        # Only words this model can spell: a prefix never leads where no word can be finished.
        self.known = None if measures is None else spellable(allowed_words(measures), letters)
        self.words = None if rate >= 1 else self.known
        self.corpus = None if measures is None else spellable(corpus_words(measures), letters)
        self.by_letter: dict[str, list[int]] = {}
        for i, c in enumerate(self.letter):
            if c is not None:
                self.by_letter.setdefault(c, []).append(i)
        self.outside = [i for i, c in enumerate(self.letter) if c is None]
        # Masks outlive a batch: the next batch (a retry, the next call) meets the same words.
        key = (id(self.words), id(self.known), tuple(chars))
        with _MASKS_LOCK:
            if _MASKS.get("key") != key:
                _MASKS.update(key=key, masks=Masks(len(chars)), lists=(self.words, self.known))
            self.masks = _MASKS["masks"]
        self._prefix_rows: dict[str, int] = {}  # this sampler's own look-up of prefix masks

    def start(self, rows) -> None:
        self.rows = rows
        self.row = [RowWords() for _ in range(rows.count)]
        for token in rows.prime:  # (the prime's words are free: no song's draw is taken)
            for row in self.row:
                self._take(row, token, None)

    def steer(self, scores: np.ndarray) -> np.ndarray:
        """A row drawing a word not left free continues it as an allowed word does (its ending
        in a second round of a rhyming line is the rhyme's to spell)."""
        if self.words is None:
            return scores
        picks, songs = None, self.lines.songs
        for s, rows in self.lines.read_songs:
            song = songs[s]
            if song.round == 2 and song.mode == "lanes":
                continue
            for r in rows:
                row = self.row[r]
                if not row.word or row.free:
                    continue
                mask = self._prefix_row(row.word)
                if mask:
                    if picks is None:
                        picks = [0] * scores.shape[0]
                    picks[r] = mask
        return scores if picks is None else self.masks.add(scores, picks)

    def _mask(self, prefix: str) -> int:
        """The mask table's row for a row drawing a word that starts `prefix` (0: no mask)."""
        def allowed() -> list[int] | None:
            ids = [i for c in self.words.next_letters(prefix) for i in self.by_letter.get(c, ())]
            if self.words.is_word(prefix) or (prefix.endswith("'")
                                              and self.words.is_word(prefix.rstrip("'"))):
                ids += self.outside
            return ids or None
        return self.masks.row_for(prefix, allowed)

    def chosen(self, ids: list[int], logps: list[float]) -> None:
        for s, rows in self.lines.read_songs:
            for r in rows:
                self._take(self.row[r], ids[r], s)

    def read(self, row: int, tokens: list[int]) -> None:
        for token in tokens:
            self._take(self.row[row], token, row % self.lines.n)

    def row_state(self, row: int) -> RowWords:
        return self.row[row].copy()

    def set_rows(self, rows: list[int], state: RowWords) -> None:
        for r in rows:
            self.row[r] = state.copy()

    def explain(self, row: int) -> list[str]:
        word = self.row[row]
        if self.words is None or not word.word or word.free:
            return []
        return [f"'{word.word}' continues as an allowed word does"]

    def _take(self, row: RowWords, token: int, s: int | None) -> None:
        """Row `row` (of song `s`; None: the prime) took `token`."""
        letter = self.letter[token] if token > 0 else None
        if token == self.nl or token == 0:
            row.col = row.ink = row.syl = 0
        else:
            row.col += 1
            row.ink += not self.blank[token]
        if letter is None or (letter == "'" and not row.word):
            if row.word:
                row.last = row.word.rstrip("'")
                row.syl += syllables(row.last) if row.last else 0
            row.word, row.free, row.digit = "", False, self.digit[token]
            return
        if not row.word and row.digit:
            row.free = True  # a number's or a code's letters ("17th", "4B")
        elif not row.word and s is not None and self.words is not None:
            row.free = self.lines.songs[s].rng.random() < self.rate
        elif not row.word:
            row.free = True
        row.word += letter
        if not row.free and self.words is not None and not self._prefix_row(row.word):
            row.free = True  # a forced or prime word outside the list (no mask allows a thing)

    def _prefix_row(self, prefix: str) -> int:
        """The mask table's row for `prefix` (_mask), looked up in this sampler's own dict: it
        is asked at every letter drawn and every step."""
        found = self._prefix_rows.get(prefix)
        if found is None:
            found = self._prefix_rows[prefix] = self._mask(prefix)
        return found


def spellable(words: WordList, letters: frozenset) -> WordList:
    """The words of `words` made only of `letters` (cached for the last few lists)."""
    key = (id(words), letters)
    found = _SPELLABLE.get(key)
    if found is None:
        found = WordList([w for w in words.words if letters.issuperset(w)])
        if len(_SPELLABLE) > 4:
            _SPELLABLE.clear()
        _SPELLABLE[key] = (words, found)  # the list itself kept, so that its id stays its own
        return found
    return found[1]


class Masks:
    """Additive masks (0 allowed, -BIG not), one row each, found by key; row 0 masks nothing.
    The scores take a row per stream, picked from the array in one indexing.

    One array serves every sampler of the same model and words, and the studio writes two
    batches at once: a lock keeps the rows and their count in step (unlocked, two threads
    adding at a doubling skipped it, and every later add failed). A row, once made, is never
    written again: a sampler reading rows it was handed while another thread adds one reads
    them whole, from the array it found (a doubling copies them into a new one)."""

    def __init__(self, vocab: int):
        self.keys: dict = {}
        self.array = np.zeros((64, vocab), dtype=np.float32)
        self.used = 1
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
        if self.used >= len(self.array):
            self.array = np.concatenate([self.array, np.zeros_like(self.array)])
        self.array[self.used] = -BIG
        self.array[self.used, allowed] = 0.0
        self.used += 1
        return self.used - 1

    def add(self, scores: np.ndarray, picks: list[int]) -> np.ndarray:
        """`scores` plus, per row, the mask row `picks` names (0: none): a new array."""
        return scores + self.array[picks]
