"""Rhyme (Rhyme, a line step): each stanza gets a rhyme pattern (the corpus's, or the one asked
for), and a line the pattern says must rhyme with an earlier one is written on every lane at
once (lines.py); the candidate that rhymes is kept. When none rhymes, the likeliest is written
again but its last word, and the lanes draw an ending among the known words that rhyme (the
corpus's first). Until the stanza has the rhymes it promised it may not close, nor the song
end; a line a later one must rhyme with ends on a word that has a rhyme.

Auto follows the corpus's patterns, rhyming ones drawn so often that with the stanzas the
model rhymes unasked, and those asked that do not rhyme after all (a chorus sung again over a
rhyming plan, a line with no rhyme to end on), the song rhymes as often as the corpus's stanzas,
not more (issue #33).
"""

from __future__ import annotations

import numpy as np

from ...songcraft.measures import WORD, Measures
from ...songcraft.measures import Words as WordList
from ...songcraft.measures import rhyme_key, rhymes, stanza_rhymes
from .lines import Lines, LineStep
from .words import Words

# Auto rhyme: the share of stanzas a model rhymes unasked, before a song shows its own, and
# how many stanzas that guess weighs (the same weight for the share of stanzas asked to rhyme
# that do, guessed to be all). Measured, free sampling rhymes 3% to 6% of the stanzas of the
# ballads and 5% of the demo songs', and the stanzas left free in steered songs 7% (a guess of
# a quarter, weighing three stanzas, had the ballads rhyme 36% of their stanzas, not 48%).
FREE_RHYME, FREE_PRIOR = 0.1, 3
_RHYME_INDEX: dict = {}


class Rhyming:
    """One song's rhyme: its stanza's pattern, the line being written's part in it, counts."""

    __slots__ = ("pattern", "target", "opener", "endings", "owes", "asked", "rhymed",
                 "free_stanzas", "free_rhymed", "asked_stanzas", "asked_rhymed")

    def __init__(self):
        self.pattern = "X"
        self.target: str | None = None    # the word the line must rhyme with (None: none)
        self.opener = False               # the line opens a rhyme: it ends on a rhymable word
        self.endings: WordList | None = None  # round 2: the words that rhyme with the target
        self.owes: tuple | None = None    # owes()'s answer for this line (None: not known)
        self.asked = self.rhymed = 0      # lines asked to rhyme, and of them those that do
        self.free_stanzas = 0             # stanzas left free of rhyme (auto), and of them
        self.free_rhymed = 0              # those the model rhymed unasked
        self.asked_stanzas = 0            # stanzas planned to rhyme (auto), and of them
        self.asked_rhymed = 0             # those that do

    def count(self, ends: list[str | None]) -> None:
        """A stanza closed with these line ends, planned with `pattern`: did it rhyme, asked
        or left free? (A stanza of one line rhymes in no collection's count.)"""
        if len(ends) < 2:
            return
        rhymed = stanza_rhymes(ends)
        if self.pattern.strip("X") == "":
            self.free_stanzas += 1
            self.free_rhymed += rhymed
        else:
            self.asked_stanzas += 1
            self.asked_rhymed += rhymed


class Rhyme(LineStep):
    """`rhyme`: auto, off, or a pattern such as AABB; the words it rhymes with are `words`'."""

    name = "rhyme"

    def __init__(self, lines: Lines, words: Words, measures: Measures | None, rhyme: str):
        super().__init__(lines)
        self.words = words
        self.rhyme = rhyme if "\n" in words.index else "off"
        self.patterns = self._patterns(measures)
        self.rhyme_rate = measures.rhyme_rate if measures is not None else 0.0
        self.songs = [Rhyming() for _ in lines.songs]
        self.rhyming = RhymeWords(words)
        self._ending_rows: dict[tuple, int] = {}  # (_ending_mask)

    def _patterns(self, measures: Measures | None) -> list:
        if self.rhyme not in ("auto", "off"):
            return [(self.rhyme, 1)]
        if self.rhyme == "off" or measures is None or not measures.patterns:
            return [("X", 1)]
        return list(measures.patterns.items())

    def start(self, rows) -> None:
        for s, song in enumerate(self.songs):  # the first stanza's pattern
            song.pattern = self._draw_pattern(s, song)

    def _draw_pattern(self, s: int, song: Rhyming) -> str:
        """The next stanza's pattern. Auto: the corpus's patterns, rhyming ones drawn so often
        (rhyming_share) that the song rhymes as often as the corpus's stanzas, not more."""
        rng = self.lines.songs[s].rng
        if self.rhyme != "auto" or len(self.patterns) == 1:
            choices, weights = zip(*self.patterns)
            return rng.choices(choices, weights)[0]
        free = [(p, n) for p, n in self.patterns if p.strip("X") == ""] or [("X", 1)]
        rhymed = [(p, n) for p, n in self.patterns if p.strip("X") != ""]
        share = rhyming_share(song, self.rhyme_rate)
        pool = rhymed if rhymed and rng.random() < share else free
        choices, weights = zip(*pool)
        return rng.choices(choices, weights)[0]

    def owes(self, s: int) -> tuple[bool, bool]:
        """Whether the stanza has a line to come that its pattern rhymes with an earlier one,
        and no rhyme yet (a stanza closed before it would not rhyme at all); and whether it
        has one after the line being written."""
        song = self.songs[s]
        if song.owes is None:
            # (the line being written aside: the line after it is owed too, so the song may
            # not end with this one)
            song.owes = (self._owes(s, song), self._owes(s, song, 1))
        return song.owes

    def _owes(self, s: int, song: Rhyming, ahead: int = 0) -> bool:
        text = self.lines.songs[s]
        i, period = len(text.stanza) + ahead, len(song.pattern)
        # Auto asks for a stanza that rhymes, which one pair makes; a pattern asked for, every
        # pair it promises.
        if (self.lines.lanes == 1 or i == 0 or i >= period
                or (self.rhyme == "auto" and stanza_rhymes(text.ends))):
            return False
        later = song.pattern[i:]
        return any(c != "X" and c in song.pattern[:i] + later[:k] for k, c in enumerate(later))

    # -- the step ------------------------------------------------------------------------------

    def steer(self, scores: np.ndarray) -> np.ndarray:
        """Held ends and open lines (told to the lines); a second round's ending mask."""
        if self.rhyme == "off":
            return scores
        lines, words, ends = self.lines, self.words.row, self.lines.ends
        picks = None
        for s, rows in lines.read_songs:
            owes, owes_next = self.owes(s)
            if owes_next:
                ends.held += rows
            song, text = self.songs[s], lines.songs[s]
            if owes or song.opener:
                for r in rows:
                    row = words[r]
                    if owes and row.ink == 0:  # (a line of spaces is a blank line too)
                        ends.open.append(r)  # no blank line, no end yet: a rhyme is owed
                    elif song.opener and row.col > 0:
                        # It opens a rhyme: it ends on a word that has one (asked only where
                        # no other step keeps the line open: RhymeWords).
                        ends.open_unless(r, self.rhyming.unrhymable)
            if text.mode == "lanes" and text.round == 2:
                if picks is None:
                    picks = [0] * scores.shape[0]
                for r in rows:
                    picks[r] = self._ending_mask(s, words[r])
        return scores if picks is None else self.words.masks.add(scores, picks)

    def explain(self, row: int) -> list[str]:
        s = row % self.lines.n
        owes, owes_next = self.owes(s) if self.rhyme != "off" else (False, False)
        song, out = self.songs[s], []
        if owes_next:
            out.append("the stanza owes a rhyme after this line: the song may not end yet")
        if owes and self.words.row[row].ink == 0:
            out.append("the stanza owes a rhyme: no blank line and no end yet")
        if song.target is not None:
            out.append(f"the line is to rhyme with '{song.target}'")
            text = self.lines.songs[s]
            if text.mode == "lanes" and text.round == 2:
                out.append(f"only letters that continue a word rhyming with '{song.target}' "
                           "may be drawn, then the line ends")
        return out

    def _ending_mask(self, s: int, row) -> int:
        """Round 2, after the tail: a rhyming word, then at most a mark, then the line ends."""
        song, words = self.songs[s], self.songs[s].endings
        if row.word:
            state = ("in", row.word)
        elif rhymes(row.last, song.target) and row.col > len(self.lines.songs[s].tail):
            state = ("after", "")
        else:
            state = ("start", "")
        key = ("end", song.target, state)
        found = self._ending_rows.get(key)  # (this sampler's own look-up: no lock, no closure)
        if found is None:
            found = self._ending_rows[key] = self.words.masks.row_for(
                key, lambda: self.rhyming.ending_ids(words, state))
        return found

    # -- line by line --------------------------------------------------------------------------

    def line_start(self, s: int) -> None:
        song = self.songs[s]
        song.opener, song.target = False, None

    def plan_line(self, s: int) -> bool:
        """A line its pattern rhymes with an earlier one: written on every lane, to rhyme with
        that line's last word; the first line of a rhyme ends on a word that has one."""
        song, text = self.songs[s], self.lines.songs[s]
        i = len(text.stanza)
        period = len(song.pattern)
        letter = song.pattern[i % period]
        first = i - i % period
        partner = next((j for j in range(first, i) if song.pattern[j % period] == letter
                        and letter != "X"), None)
        if partner is None:
            song.opener = letter != "X" and letter in song.pattern[i % period + 1:]
        elif text.ends[partner] is not None:
            song.target = text.ends[partner]
            song.asked += 1
        return song.target is not None

    def rank(self, s: int, text: str, word: str) -> bool:
        target = self.songs[s].target
        return target is not None and rhymes(word, target)

    def satisfied(self, s: int, text: str, word: str) -> bool:
        target = self.songs[s].target
        return target is None or rhymes(word, target)

    def may_ask_again(self, s: int) -> bool:
        return self.songs[s].target is not None

    def again(self, s: int, text: str, word: str, cand: list) -> list[int] | None:
        """None rhymes (the best line ends on `word`): write the best line again up to its last
        word, and end it with a word that rhymes, drawn by the model among the corpus's and
        the frequent English words; None where there is nothing to do so with."""
        song = self.songs[s]
        if song.target is None or rhymes(word, song.target):
            return None
        endings = self.rhyming.endings(song.target)
        if endings is None:
            return None
        line = self.lines.songs[s].line
        chars, nl = self.words.chars, self.words.nl
        drawn = "".join(chars[t] for t, _ in cand if t not in (0, nl))
        found = list(WORD.finditer(line + drawn))
        cut = found[-1].start() - len(line) if found else len(drawn)
        song.endings = endings
        return [self.words.index[c] for c in drawn[:max(cut, 0)]]

    def kept_line(self, s: int, text: str, word: str) -> None:
        self.songs[s].rhymed += self.rank(s, text, word)

    def no_line(self, s: int) -> None:
        self.songs[s].asked -= self.songs[s].target is not None

    def line_end(self, s: int, line: str) -> None:
        self.songs[s].owes = None

    def stanza_end(self, s: int) -> None:
        song = self.songs[s]
        song.count(self.lines.songs[s].ends)
        song.pattern = self._draw_pattern(s, song)

    def report(self, s: int) -> dict:
        return {"rhyme_lines_asked": self.songs[s].asked,
                "rhyme_lines_rhymed": self.songs[s].rhymed}


def rhyming_share(song: Rhyming, rate: float) -> float:
    """The share of stanzas a song asks to rhyme so that, with the stanzas the model rhymes
    unasked (their rate so far in the song, from a prior of FREE_RHYME) and the asked ones
    that rhyme (their rate so far, from a prior of all), it rhymes at `rate`."""
    unasked = (song.free_rhymed + FREE_RHYME * FREE_PRIOR) / (song.free_stanzas + FREE_PRIOR)
    kept = (song.asked_rhymed + FREE_PRIOR) / (song.asked_stanzas + FREE_PRIOR)
    return (rate - unasked) / max(1e-9, kept - unasked)


class RhymeWords:
    """The known words that rhyme with a word: the corpus's own first, they are the songs'
    own; the frequent English words too where the corpus has fewer than three (`words`: the
    Words step, which holds both lists).

    Each word's list leaves the word itself out. (Kept by sound, made for the first word asked
    of that sound, a word asked later was told a list with itself in it: a second round drew
    the very word it was to rhyme with, found it no rhyme, and glued another on, "hand.sand".)
    """

    def __init__(self, words: Words):
        self.words = words
        self._sets: dict[str, WordList | None] = {}
        self._rhymable: dict[str, bool] = {}

    def rhymable(self, row) -> bool:
        """Whether the row's word (being drawn, else the last) has a rhyme among the known
        words (every word when there are none to go by)."""
        word = row.word.rstrip("'") or row.last
        if self.words.known is None or word is None:
            return True
        found = self._rhymable.get(word)
        if found is None:
            key = rhyme_key(word)
            found = self._rhymable[word] = any(
                w != word for words in (self.words.corpus, self.words.known)
                for w in rhyme_index(words).get(key, ()))
        return found

    def unrhymable(self, r: int) -> bool:
        """Whether row `r`'s word has no rhyme among the known words (Ends.open_unless)."""
        return not self.rhymable(self.words.row[r])

    def ending_ids(self, endings: WordList, state: tuple) -> list[int]:
        """The ids a second round's ending may draw in `state` (Rhyme._ending_mask), among
        `endings` (the target's rhymes): letters that lead to one; after a whole one, the line's
        end or a mark; after the rhyme and its mark, the line's end (or the song's: the shape
        guide says where it may come)."""
        words, index = self.words, self.words.index
        if state[0] == "after":
            return [words.nl, 0]
        ids = [i for c in endings.next_letters(state[1]) for i in words.by_letter.get(c, ())]
        if state[0] == "in" and endings.is_word(state[1]):
            ids += [words.nl, 0] + [index[c] for c in ",.!?;:" if c in index]
        return ids

    def endings(self, target: str) -> WordList | None:
        """The known words that rhyme with `target` (None: none, or no word list)."""
        if self.words.known is None:
            return None
        if target not in self._sets:
            key = rhyme_key(target)
            found = [w for w in rhyme_index(self.words.corpus).get(key, ()) if w != target]
            if len(found) < 3:
                found += [w for w in rhyme_index(self.words.known).get(key, ()) if w != target]
            self._sets[target] = WordList(found) if found else None
        return self._sets[target]


def rhyme_index(words: WordList) -> dict[str, list[str]]:
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
