"""Sampling with rhyme, a chorus and real words (the measures: songgen/songcraft/measures.py).

Every song of the batch is written on K lanes (rows of the LSTM batch, lane k of song s at row
k * n + s, so that lane 0 of every song is the first n rows), K = LANES when rhyme is on, else
1. Most lines are written on lane 0 (on the CPU the other lanes are then not stepped,
see `live`; on CUDA they draw too, unread: one graph replay steps every row). A line that the
song's rhyme pattern says must rhyme is written on all K lanes at once, each drawing freely
from the same carried state; when every lane has ended its line, the most likely line per
character (the model's own log-probabilities) whose last word rhymes is kept, and its state,
shape-guide state and word state are copied to every lane. When none rhymes, the line is
written again on K lanes that may end it only after a rhyming word: the best line but its last
word is read again in one call of the model, and the lanes draw only the ending; when that
fails too the most likely line stands.

A chorus: the stanza where the corpus's repeated lines first come (its median) is kept, and
comes back verbatim every `chorus_gap` stanzas after it, read by the model in one call (not a
step per character) so that what follows reads it. A song planned with a chorus may not end
before the chorus came back once.

Real words: a word being drawn may continue only as some allowed word continues (a prefix
check in songcraft.Words), and end only where it is a word; each word is left free with
probability `words` (names and invented words stay possible at that rate).

Host-side state is small and per row (the sampler reads the chosen ids on the host anyway);
the logits see one added bias per step, and masks take BIG rather than -inf, so that no step
has to test for a row left with nothing to draw. Where the time goes (issue #23's speed
target; 2x128 model, 1 song): the model step, then the shape guide's and these masks' few
tensor operations; per-character Python is kept to the rows that are read.
"""

from __future__ import annotations

import math
import random
import threading

import torch

from ..songcraft.measures import (WORD, Measures, Words, allowed_words, corpus_words, last_word,
                                  rhyme_key, rhymes, stanza_rhymes, syllables)
from .craft_state import (BIG, Masks, RowWords, Snapshot, SongState, copy_slots, rhyme_index,
                          spellable)
from .stanzas import (close_stanza, copied_line, full, lane_line, scan_wanted, scans, short,
                      sung_just_before, syllable_target)

# The masks of the last word lists (building them takes a while; a new sampler of the same
# model and words reuses them). Samplers run in several threads at once (the studio's
# writers): the lock keeps the check and the replacement one step, so that a sampler never
# takes the table made for another model's characters.
_MASKS: dict = {}
_MASKS_LOCK = threading.Lock()

LANES = 4
# Auto rhyme: the share of stanzas a model rhymes unasked, before a song shows its own, and
# how many stanzas that guess weighs.
FREE_RHYME, FREE_PRIOR = 0.25, 3
# Rows spared before a step is taken on the read rows alone (CPU; see Crafter.live).
LIVE_SPARED = 6


class Crafter:
    """Steers a batch of n songs on n * lanes rows; see the module's docstring."""

    def __init__(self, measures: Measures | None, chars: list[str], n: int, seed: int,
                 rhyme: str, chorus: str, words: float, line_cap: int, hold_limit: int,
                 scan: str = "off"):
        self.chars, self.n = chars, n
        self.index = {c: i for i, c in enumerate(chars)}
        self.nl = self.index.get("\n", -1)
        self.rhyme = rhyme if "\n" in self.index else "off"
        self.scan = scan_wanted(measures, scan) and "\n" in self.index
        self.lanes = LANES if self.rhyme != "off" or self.scan else 1
        self.rows = n * self.lanes
        self.line_cap = line_cap
        self.hold_limit = hold_limit  # characters a song waits at most for its chorus
        # Per vocabulary id: its lower-case letter, or None for a symbol outside words.
        self.letter = [c.lower().replace("’", "'") if (c.isalpha() or c in "'’") else None
                       for c in chars]
        letters = frozenset(c for c in self.letter if c is not None)
        # Only words this model can spell: a prefix never leads where no word can be finished.
        known = None if measures is None else spellable(allowed_words(measures), letters)
        self.words = None if words >= 1 else known
        self.known = known
        self.corpus = None if measures is None else spellable(corpus_words(measures),
                                                                letters)
        self._rhyme_sets: dict[str, Words | None] = {}
        self.rate = words
        self.patterns = self._patterns(measures)
        self.rhyme_rate = measures.rhyme_rate if measures is not None else 0.0
        rate = measures.repeat_rate if measures is not None else 0.0
        # A chorus comes after a verse and never twice in a row (an unseen collection's
        # measures said "first stanza, back every stanza": one song sang its chorus four times
        # before its first verse).
        self.chorus_at = max(1, measures.chorus_at if measures is not None else 1)
        self.chorus_gap = max(2, measures.chorus_gap if measures is not None else 2)
        self.songs = []
        for i in range(n):
            rng = random.Random(f"{seed}:{i}")
            planned = chorus != "off" and "\n" in self.index and rng.random() < rate
            self.songs.append(SongState(rng, planned))
        self.row = [RowWords() for _ in range(self.rows)]
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
        self.saved = None        # set by start(): snapshots of rows at a line's end
        self._indices: dict[tuple, torch.Tensor] = {}
        for song in self.songs:
            self._new_stanza(song)

    def _patterns(self, measures: Measures | None):
        if self.rhyme not in ("auto", "off"):
            return [(self.rhyme, 1)]
        if self.rhyme == "off" or measures is None or not measures.patterns:
            return [("X", 1)]
        return list(measures.patterns.items())

    def _new_stanza(self, song: SongState) -> None:
        if song.stanza and song.pattern.strip("X") == "":
            # A stanza left free: did the model rhyme in it all the same?
            song.free_stanzas += 1
            song.free_rhymed += stanza_rhymes(song.ends)
        song.pattern = self._draw_pattern(song)
        song.stanza, song.ends = [], []

    def _draw_pattern(self, song: SongState) -> str:
        """The next stanza's pattern. Auto: the corpus's patterns, rhyming ones drawn so often
        that with the stanzas the model rhymes unasked (its rate so far in this song, from a
        prior of FREE_RHYME) the song rhymes as often as the corpus's stanzas, not more."""
        if self.rhyme != "auto" or len(self.patterns) == 1:
            choices, weights = zip(*self.patterns)
            return song.rng.choices(choices, weights)[0]
        free = [(p, n) for p, n in self.patterns if p.strip("X") == ""] or [("X", 1)]
        rhymed = [(p, n) for p, n in self.patterns if p.strip("X") != ""]
        unasked = ((song.free_rhymed + FREE_RHYME * FREE_PRIOR)
                   / (song.free_stanzas + FREE_PRIOR))
        share = (self.rhyme_rate - unasked) / max(1e-9, 1 - unasked)
        pool = rhymed if rhymed and song.rng.random() < share else free
        choices, weights = zip(*pool)
        return song.rng.choices(choices, weights)[0]

    # -- the steps ------------------------------------------------------------------------------

    def start(self, layers, logits: torch.Tensor, guide, prime_ids: list[int], model) -> None:
        """Take in the prime (the same for every song) and get ready for the first draw.
        `model` (the CharLSTM) reads known text, a chorus or a line's kept part, in one call."""
        self.layers, self.guide, self.model = layers, guide, model
        self._out, self._copied = logits, True
        self.saved = Snapshot(layers, logits)
        self.start_snap = Snapshot(layers, logits)
        for token in prime_ids:
            for song in self.songs:
                self._accept(song, token)
            for r in range(self.rows):
                self._row_take(self.row[r], token, None)
        for s, song in enumerate(self.songs):
            self._line_start(s, song)

    def _holding(self, song: SongState) -> bool:
        """Whether the song may not end yet: its chorus has not come back."""
        return song.chorus_planned and song.chorus_back == 0 and song.chars < self.hold_limit

    def _owes_rhyme(self, song: SongState) -> tuple[bool, bool]:
        """Whether the stanza has a line to come that its pattern rhymes with an earlier one,
        and no rhyme yet (a stanza closed before it would not rhyme at all); and whether it
        has one after the line being written."""
        if song.owes is None:
            # (the line being written aside: the line after it is owed too, so the song may
            # not end with this one)
            song.owes = (self._owes(song), self._owes(song, 1))
        return song.owes

    def _owes(self, song: SongState, ahead: int = 0) -> bool:
        i, period = len(song.stanza) + ahead, len(song.pattern)
        # Auto asks for a stanza that rhymes, which one pair makes; a pattern asked for, every
        # pair it promises.
        if (self.lanes == 1 or i == 0 or i >= period
                or (self.rhyme == "auto" and stanza_rhymes(song.ends))):
            return False
        later = song.pattern[i:]
        return any(c != "X" and c in song.pattern[:i] + later[:k] for k, c in enumerate(later))

    def steer(self, scores: torch.Tensor, stopped: list) -> torch.Tensor:
        """The scores (rows, vocab) with the word masks, rhyme endings and held ends (new)."""
        picks, held, open_ = [0] * scores.shape[0], [], []
        for s, song in enumerate(self.songs):
            if stopped[s] is not None:
                continue
            owes, owes_next = self._owes_rhyme(song)
            hold = owes_next or self._holding(song)
            for lane in (range(self.lanes) if song.mode == "lanes" else (0,)):
                if song.mode == "lanes" and song.done[lane]:
                    continue
                r = lane * self.n + s
                if hold:
                    held.append(r)
                if owes and self.row[r].ink == 0:  # (a line of spaces is a blank line too)
                    open_.append(r)
                elif song.guard is not None and lane_line(song, lane, self.chars) == song.guard:
                    open_.append(r)  # a stanza the third time in a row: no, write on
                elif (song.syll is not None and song.round == 1 and self.row[r].ink
                      and self.row[r].col < self.line_cap and short(self.row[r], song.syll)):
                    open_.append(r)  # a line written to a syllable count: not far short of it
                    # (a second round ends on its rhyme; a line far too long ends anyway)
                elif song.opener and self.row[r].col > 0 and not self._rhymable(self.row[r]):
                    open_.append(r)  # a line a later one must rhyme with ends on a word that can
                if song.mode == "lanes" and song.round == 2:
                    picks[r] = self._ending_mask(song, self.row[r])
                elif song.syll is not None and full(self.row[r], song.syll):
                    picks[r] = self._closing()  # no word more: the line ends within the count
                else:
                    picks[r] = self._mask(self.row[r])
        if not held and not open_ and not any(picks):
            return scores
        if any(picks):
            table = self.masks.table(scores.device, scores.dtype)
            out = scores + table.index_select(0, self._index(picks, scores.device))
        else:
            out = scores.clone()
        # Whole columns with a per-row choice: cheaper than indexing rows of them.
        line_break, end = out[:, self.nl], out[:, 0]
        if held:
            # A held end: the probability of ending the song moves to a line break.
            at = self._rows(held, out)
            line_break.copy_(torch.where(at, torch.logaddexp(line_break, end), line_break))
            end.masked_fill_(at, -math.inf)
        if open_:
            # The stanza still owes the rhyme its pattern promised: no blank line, no end yet;
            # or the line's last word has no rhyme to be found: no line end yet.
            at = self._rows(open_, out)
            line_break.masked_fill_(at, -BIG)
            end.masked_fill_(at, -BIG)
        return out

    def _rows(self, rows: list[int], out: torch.Tensor) -> torch.Tensor:
        """A (rows,) bool tensor, True at `rows` (made once per list, as _index)."""
        key = ("rows", out.shape[0], *rows)
        found = self._indices.get(key)
        if found is None or found.device != out.device:
            found = torch.zeros(out.shape[0], dtype=torch.bool)
            found[rows] = True
            found = self._indices[key] = found.to(out.device)
        return found

    def _index(self, values: list[int], device) -> torch.Tensor:
        """`values` as an index tensor; the same few lists come back step after step, so they
        are made once (building a tensor costs more than the masks' arithmetic)."""
        key = tuple(values)
        found = self._indices.get(key)
        if found is None or found.device != device:
            if len(self._indices) > 4096:
                self._indices.clear()
            found = self._indices[key] = torch.tensor(values, device=device)
        return found

    def after_draw(self, ids: list[int], logps: list[float], stopped: list) -> list[list]:
        """Take the drawn ids (rows) and their log-probabilities; per song, the characters it
        accepts now: [(token, logp)] (none while its lanes are writing a rhyming line).
        Lanes other than 0 outside a rhyming line, and lanes that ended their candidate line,
        are fed what they drew, unread: a rhyming line starts every lane from lane 0's state,
        and a kept line's state comes from its snapshot."""
        self._ends: list[int] = []
        out: list[list] = []
        for s, song in enumerate(self.songs):
            if stopped[s] is not None:
                out.append([])
                continue
            if song.mode != "lanes":
                token = ids[s]
                self._row_take(self.row[s], token, song)
                out.append([(token, logps[s])])
                continue
            for lane in range(self.lanes):
                if song.done[lane]:
                    continue
                r = lane * self.n + s
                song.cands[lane].append((ids[r], logps[r]))
                self._row_take(self.row[r], ids[r], song)
                if ids[r] == self.nl or ids[r] == 0:
                    song.done[lane] = True
                    self._ends.append(r)
            out.append([])
        return out

    def narrow(self, stopped: list) -> bool:
        """Whether only lane 0 of each song is read at the next step (no candidate lines)."""
        return not any(song.mode == "lanes" and stopped[s] is None
                       for s, song in enumerate(self.songs))

    def live(self, stopped: list) -> torch.Tensor | None:
        """The rows whose next step is read (lane 0, the lanes writing a candidate line or
        ending it now), as an index; None when that is every row, or too many to be worth
        stepping apart (a row spared costs less than taking them out and back)."""
        rows = []
        ends = set(self._ends)
        for s, song in enumerate(self.songs):
            if stopped[s] is not None:
                continue
            if song.mode != "lanes":
                rows.append(s)
            else:
                rows += [lane * self.n + s for lane in range(self.lanes)
                         if not song.done[lane] or lane * self.n + s in ends]
        if len(rows) * 4 > self.rows * 3 or self.rows - len(rows) < LIVE_SPARED:
            return None
        return self._index(rows, self.layers.hs.device)

    def after_step(self, logits: torch.Tensor, accepted: list[list], stopped: list
                   ) -> tuple[torch.Tensor, list[list]]:
        """After the model read the fed ids: keep the state of lanes that ended a line, choose
        among finished candidates, and plan each song's next line."""
        if self._ends:
            self.saved.save(self.layers, logits, self._ends, self.guide, self.row)
        # The logits may be the stepper's own buffer: copied before the first write (_writable).
        self._out, self._copied = logits, False
        for s, song in enumerate(self.songs):
            if stopped[s] is not None:
                continue
            if song.mode == "lanes" and all(song.done):
                picked = self._pick(s, song)
                if picked is None:  # a second round, from the line's start
                    self._restore(self.start_snap, s, s, self._writable())
                    # The kept part of the best line is read in one call, on every lane.
                    tail = self._feed(s, song, song.tail)
                    self._spread(s)
                    song.cands = [list(tail) for _ in range(self.lanes)]
                    continue
                self._restore(self.saved, picked * self.n + s, s, self._writable())
                accepted[s] = list(song.cands[picked])
                song.mode = "follow"
            kept = accepted[s]
            for token, _ in kept:  # a chorus read at a line start adds to `kept` as it goes
                self._accept(song, token)
                if token == self.nl:
                    kept += self._line_start(s, song)
        return self._out, accepted

    def _writable(self) -> torch.Tensor:
        if not self._copied:
            self._out, self._copied = self._out.clone(), True
        return self._out

    def _feed(self, s: int, song: SongState, tokens: list[int]) -> list:
        """Read `tokens` on the song's lane 0 in one call of the model (rather than a step per
        character): its LSTM state, logits, shape-guide and word state move past them. Their
        [(token, logp)], the log-probabilities the model gave them."""
        if not tokens:
            return []
        r, layers, logits = s, self.layers, self._writable()
        n_layers, hidden = len(layers.c), layers.c[0].shape[1]
        h = layers.hs[r].view(n_layers, 1, hidden).to(logits.dtype)
        c = torch.stack([c[r] for c in layers.c])[:, None].to(logits.dtype)
        ids = torch.tensor(tokens, device=logits.device)
        out, (h, c) = self.model(ids[None], (h.contiguous(), c.contiguous()))
        scores = torch.cat([logits[r:r + 1], out[0, :-1].to(logits.dtype)])
        logps = torch.log_softmax(scores.float(), dim=-1).gather(1, ids[:, None])[:, 0]
        layers.hs[r] = h[:, 0].reshape(-1).to(layers.hs.dtype)
        for l, mine in enumerate(layers.c):
            mine[r] = c[l, 0].to(mine.dtype)
        logits[r] = out[0, -1].to(logits.dtype)
        if self.guide is not None:
            # The guide steps every row it holds: hand it this row alone for the while.
            rows, self.guide.songs = self.guide.songs, [self.guide.songs[r]]
            try:
                for token in tokens:
                    self.guide.update([token])
            finally:
                self.guide.songs = rows
        for token in tokens:
            self._row_take(self.row[r], token, song)
        return list(zip(tokens, logps.tolist()))

    def _spread(self, s: int) -> None:
        """Every lane of song s from lane 0's state."""
        self.start_snap.save(self.layers, self._writable(), [s], self.guide, self.row)
        self._restore(self.start_snap, s, s, self._out)

    # -- lines, stanzas, candidates ---------------------------------------------------------

    def _pick(self, s: int, song: SongState) -> int | None:
        """The lane whose line to keep; None to write the line again (a second round)."""
        scored, blank = [], []
        for lane, cand in enumerate(song.cands):
            text = song.line + "".join(self.chars[t] for t, _ in cand if t not in (0, self.nl))
            mean = sum(lp for _, lp in cand) / max(len(cand), 1)
            word = last_word(text)
            if word is None:
                blank.append((mean, -lane, lane))  # a stanza or the song ends here
            else:
                # A rhyme asked for first, then a line that scans, then the likeliest.
                scored.append((song.target is not None and rhymes(word, song.target),
                               scans(text, song.syll), mean, -lane, lane))
        if song.round == 1 and len(blank) * 2 >= self.lanes:
            song.asked -= song.target is not None  # the model ends the stanza: no line
            return max(blank)[2]
        if not scored:
            return max(blank)[2]
        best = max(scored)
        if best[0] or song.round == 2 or song.target is None:
            song.rhymed += best[0]
            if song.syll is not None:
                song.scan_asked += 1
                song.scan_fit += best[1]
            return best[-1]
        # None rhymes: write the most likely line again up to its last word, and end it with
        # a word that rhymes, drawn by the model among the corpus's and the frequent English words.
        endings = self._endings(song.target)
        if endings is None:
            return best[-1]
        cand = song.cands[best[-1]]
        text = "".join(self.chars[t] for t, _ in cand if t not in (0, self.nl))
        words = list(WORD.finditer(song.line + text))
        cut = words[-1].start() - len(song.line) if words else len(text)
        song.tail = [self.index[c] for c in text[:max(cut, 0)]]
        song.endings = endings
        song.round = 2
        song.cands = [[] for _ in range(self.lanes)]
        song.done = [False] * self.lanes
        return None

    def _restore(self, snap: "Snapshot", src: int, s: int, logits: torch.Tensor) -> None:
        lanes = list(range(s, self.rows, self.n))
        snap.restore(self.layers, logits, src, lanes)
        if self.guide is not None:
            for r in lanes:
                self.guide.songs[r] = copy_slots(snap.guide[src])
        for r in lanes:
            self.row[r] = snap.row[src].copy()

    def _line_start(self, s: int, song: SongState) -> list:
        """Plan the line about to be written: the chorus again, a rhyming line or a free one.
        The chorus is read at once: its [(token, logp)] are returned (else nothing)."""
        song.mode, song.round, song.tail = "follow", 1, []
        song.opener, song.target, song.syll = False, None, None
        song.guard = copied_line(song)
        at_stanza_start = not song.stanza and song.lines_seen > 0 and song.line == ""
        if (at_stanza_start and song.chorus_text is not None and song.stanza_index > song.chorus_first
                and (song.stanza_index - song.chorus_first) % self.chorus_gap == 0
                and song.chorus_back < 3):
            song.chorus_back += 1
            if sung_just_before(song):
                return []  # the model sang it again itself: it came back (not twice in a row)
            return self._feed(s, song, [self.index[c] for c in song.chorus_text])
        if self.lanes == 1 or song.line:
            return []
        if self.scan:
            song.syll = syllable_target(song, song.chorus_planned and song.chorus_text is None
                                        and song.stanza_index >= self.chorus_at)
        i = len(song.stanza)
        period = len(song.pattern)
        letter = song.pattern[i % period]
        first = i - i % period
        partner = next((j for j in range(first, i) if song.pattern[j % period] == letter
                        and letter != "X"), None)
        if partner is None:
            # The first line of a rhyme the pattern promises: it ends on a word that has one.
            song.opener = letter != "X" and letter in song.pattern[i % period + 1:]
        elif song.ends[partner] is not None:
            song.target = song.ends[partner]
            song.asked += 1
        if song.target is None and song.syll is None:
            return []
        song.mode = "lanes"
        song.cands = [[] for _ in range(self.lanes)]
        song.done = [False] * self.lanes
        self._spread(s)
        return []

    def _accept(self, song: SongState, token: int) -> None:
        """A character the song keeps: track its lines and stanzas."""
        if token == 0:
            return
        song.chars += 1
        c = self.chars[token]
        if c != "\n":
            song.line += c
            return
        line, song.line = song.line, ""
        song.owes = None
        is_title = song.lines_seen == 0 and line.startswith("# ")
        song.lines_seen += 1
        if is_title:
            return
        if line.strip():
            song.stanza.append(line)
            song.ends.append(last_word(line))
            return
        if song.stanza:  # a blank line closes a stanza
            close_stanza(song)
            if (song.chorus_planned and song.chorus_text is None
                    and song.stanza_index >= self.chorus_at and len(song.stanza) >= 2):
                song.chorus_text = "\n".join(song.stanza) + "\n"
                song.chorus_first = song.stanza_index
            song.stanza_index += 1
            self._new_stanza(song)

    # -- words -----------------------------------------------------------------------------

    def _row_take(self, row: RowWords, token: int, song: SongState | None) -> None:
        letter = self.letter[token] if token > 0 else None
        if token == self.nl or token == 0:
            row.col = row.ink = row.syl = 0
        else:
            row.col += 1
            row.ink += not self.chars[token].isspace()
        if letter is None or (letter == "'" and not row.word):
            if row.word:
                row.last = row.word.rstrip("'")
                row.syl += syllables(row.last) if row.last else 0
            row.word, row.free = "", False
            return
        if not row.word and song is not None and self.words is not None:
            row.free = song.rng.random() < self.rate
        elif not row.word:
            row.free = True
        row.word += letter
        if not row.free and self.words is not None and not (
                self.words.next_letters(row.word) or self.words.is_word(row.word)
                or self.words.is_word(row.word.rstrip("'"))):
            row.free = True  # a forced or prime word outside the list

    def _rhymable(self, row: RowWords) -> bool:
        """Whether the row's word (being drawn, else the last) has a rhyme among the known
        words (every word when there are none to go by)."""
        word = row.word.rstrip("'") or row.last
        return self.known is None or word is None or self._endings(word) is not None

    def _endings(self, target: str) -> Words | None:
        """The known words that rhyme with `target` (None: none, or no word list)."""
        if self.known is None:
            return None
        key = rhyme_key(target)
        if key not in self._rhyme_sets:
            # The corpus's own words first: they are the songs' own.
            found = [w for w in rhyme_index(self.corpus).get(key, ()) if w != target]
            if len(found) < 3:
                found += [w for w in rhyme_index(self.known).get(key, ()) if w != target]
            self._rhyme_sets[key] = Words(found) if found else None
        return self._rhyme_sets[key]

    def _ending_mask(self, song: SongState, row: RowWords) -> int:
        """Round 2, after the tail: a rhyming word, then at most a mark, then the line ends."""
        words = song.endings
        if row.word:
            state = ("in", row.word)
        elif rhymes(row.last, song.target) and row.col > len(song.tail):
            state = ("after", "")
        else:
            state = ("start", "")
        key = ("end", song.target, state)

        def allowed() -> list[int]:
            # (the end of the song too: the shape guide says where it may come)
            if state[0] == "after":
                return [self.nl, 0]
            ids = [i for c in words.next_letters(state[1]) for i in self.by_letter.get(c, ())]
            if state[0] == "in" and words.is_word(state[1]):
                ids += [self.nl, 0] + [self.index[c] for c in ",.!?;:" if c in self.index]
            return ids
        return self.masks.row_for(key, allowed)

    def _closing(self) -> int:
        """The mask table's row allowing only a line's end or a mark (no blank: a line of
        trailing blanks would never end)."""
        return self.masks.row_for(("closing",), lambda: [self.nl, 0] + [
            self.index[c] for c in ',.!?;:"”' if c in self.index])

    def _mask(self, row: RowWords) -> int:
        """The mask table's row for a row drawing a word (0: no mask)."""
        if self.words is None or not row.word or row.free:
            return 0
        prefix = row.word

        def allowed() -> list[int] | None:
            ids = [i for c in self.words.next_letters(prefix) for i in self.by_letter.get(c, ())]
            if self.words.is_word(prefix) or (prefix.endswith("'")
                                              and self.words.is_word(prefix.rstrip("'"))):
                ids += self.outside
            return ids or None
        return self.masks.row_for(prefix, allowed)

    def report(self) -> list[dict]:
        return [{"rhyme_lines_asked": song.asked, "rhyme_lines_rhymed": song.rhymed,
                 "scan_lines_asked": song.scan_asked, "scan_lines_scanning": song.scan_fit,
                 "chorus": song.chorus_planned, "chorus_back": song.chorus_back}
                for song in self.songs]
