"""The choice among candidate lines (Candidates, for steering/lines.py): a line a line step asks
a choice for is written on every lane of its song at once, from the same state; the lanes stop
when each has ended its line, or as soon as one ended a line that is all the steps ask
(`satisfied`: the lanes less likely so far stop, those ahead go on); the line steps rank the
lines ended (rhyme first, then scansion), the model's mean log-probability per character breaking
ties, and the best line's state (the LSTM's and every step's) is copied to every lane. Where a
step asks for the line again (rhyme: none rhymes), every lane goes on from the best line's state
where its last word started, kept as the lanes drew (`drawn`), and draws only the ending.
"""

from __future__ import annotations

from ...songcraft.measures import last_word


class Candidates:
    """The candidate lines of `lines` (a steering.lines.Lines): its songs, their lanes' rows."""

    def __init__(self, lines):
        self.lines = lines
        self.chars, self.nl, self.n, self.lanes = lines.chars, lines.nl, lines.n, lines.lanes
        self.letters = {i for i, c in enumerate(lines.chars) if c.isalpha()}
        self.apostrophes = {lines.index[c] for c in "'’" if c in lines.index}

    def start(self, rows) -> None:
        self.rows = rows
        self.saved = rows.snapshot()       # rows as their candidate line ended
        self.start_snap = rows.snapshot()  # rows as a candidate line started
        self.word_snap = rows.snapshot()   # lanes as their last word started
        self._all = [list(range(s, rows.count, self.n)) for s in range(self.n)]

    def begin(self, s: int, song) -> None:
        """Song `s` writes its next line on every lane, from lane 0's state."""
        song.mode = "lanes"
        song.cands = [[] for _ in range(self.lanes)]
        song.done = [False] * self.lanes
        song.word_at = [-1] * self.lanes
        song.dropped, song.settled = set(), False
        song.may_again = any(step.may_ask_again(s) for step in self.lines.line_steps)
        self._spread(s)

    def drawn(self, ids: list[int]) -> None:
        """A lane of a first round starting a word: its state before it reads the word's first
        letter is kept, so that the line written again up to its last word (a second round)
        goes on from there rather than reading it anew."""
        saved, n = [], self.n
        for s, rows in self.lines.read_songs:
            song = self.lines.songs[s]
            if song.mode != "lanes" or song.round != 1 or not song.may_again:
                continue
            for r in rows:
                cand = song.cands[r // n]
                if cand and self._word_starts(cand, ids[r]):
                    song.word_at[r // n] = len(cand)
                    saved.append(r)
        if saved:
            self.rows.save(self.word_snap, saved)

    def _word_starts(self, cand: list, token: int) -> bool:
        """Whether `token`, after the candidate line `cand`, starts a word (measures.WORD: letters,
        with apostrophes between them)."""
        if token not in self.letters:
            return False
        before = cand[-1][0]
        if before in self.letters:
            return False
        return not (before in self.apostrophes and len(cand) > 1 and cand[-2][0] in self.letters)

    def take(self, ids: list[int], logps: list[float], kept: list[list]) -> None:
        """Lanes writing a candidate line take their draws (lanes other than 0 outside one,
        and lanes that ended their line, drew unread: a candidate line starts every lane from
        lane 0's state, and a kept line's state comes from its snapshot); songs stopped or
        writing candidates keep nothing yet (`kept`, per song)."""
        n, songs, ends = self.n, self.lines.songs, []
        for s, stop in enumerate(self.rows.stopped):
            if stop is not None:
                kept[s] = []
        for s, rows in self.lines.read_songs:
            song = songs[s]
            if song.mode != "lanes":
                continue
            kept[s] = []
            for r in rows:  # (the lanes still writing, in order)
                lane = r // n
                if song.done[lane]:  # (stopped at this step by another lane's end)
                    continue
                token = ids[r]
                song.cands[lane].append((token, logps[r]))
                if token == self.nl or token == 0:
                    song.done[lane] = True
                    ends.append(r)
                    if self._satisfied(s, song, lane):
                        self._drop_open_lanes(song, lane)
                    elif (song.round == 1 and song.may_again and not song.settled
                          and self._satisfied(s, song, lane, but_again=True)):
                        self._drop_open_lanes(song, lane, settled=False)
                elif song.settled and self._hopeless(s, r):
                    song.done[lane] = True
                    song.dropped.add(lane)
        if ends:
            self.rows.save(self.saved, ends)  # as the model read the line's end

    def chosen_line(self, s: int, song) -> list | None:
        """Once every lane of song `s` is done: the line kept, [(token, logp)], with its state
        on every lane; None while they write, or where the line is written again."""
        if not all(song.done):
            return None
        picked = self._pick(s, song)
        if picked is None:  # a second round, from the best line's last word
            self._again(s, song)
            return None
        self.rows.restore(self.saved, picked * self.n + s, self._all[s])
        return list(song.cands[picked])

    def _again(self, s: int, song) -> None:
        """Every lane of song `s` goes on from the kept part of the best line (song.tail): from
        that lane's state where it ended, kept as it was drawn (drawn), else from the line's
        start, reading it in one call of the model."""
        lane, tail = song.again_lane, song.tail
        if tail and song.word_at[lane] == len(tail):
            self.rows.restore(self.word_snap, lane * self.n + s, self._all[s])
            kept = song.again_kept
        else:
            self.rows.restore(self.start_snap, s, self._all[s])
            kept = self.rows.feed(s, tail)
            self._spread(s)
        song.cands = [list(kept) for _ in range(self.lanes)]

    def _spread(self, s: int) -> None:
        """Every lane of song s from lane 0's state."""
        self.rows.save(self.start_snap, [s])
        self.rows.restore(self.start_snap, s, self._all[s])

    def _text(self, song, cand: list) -> str:
        """The line a candidate wrote: the song's line so far and the candidate's symbols."""
        return song.line + "".join(self.chars[t] for t, _ in cand if t not in (0, self.nl))

    def _satisfied(self, s: int, song, lane: int, but_again: bool = False) -> bool:
        """Whether the line lane `lane` ended is all every line step asks (not blank);
        `but_again`: all but what a step would write the line again for (its last word)."""
        text = self._text(song, song.cands[lane])
        word = last_word(text)
        return word is not None and all(step.satisfied(s, text, word)
                                        for step in self.lines.line_steps
                                        if not (but_again and step.may_ask_again(s)))

    def _drop_open_lanes(self, song, ended: int, settled: bool = True) -> None:
        """A line that is all the steps ask has ended on lane `ended`: the lanes still writing
        one less likely so far stop (waiting for the longest candidate made a song wait a
        third longer a line); those ahead go on (stopping all, the ballads' songs were 11%
        less likely per character than free sampling's, not 7% more)."""
        kept, song.settled = _mean(song.cands[ended]), settled
        for lane, done in enumerate(song.done):
            if not done and _mean(song.cands[lane]) <= kept:
                song.done[lane] = True
                song.dropped.add(lane)

    def _hopeless(self, s: int, r: int) -> bool:
        """Whether the lane on row `r` can no longer write a line every step finds all it asks:
        once one such line has ended, it could not be chosen over it."""
        return any(step.hopeless(s, r) for step in self.lines.line_steps)

    def _pick(self, s: int, song) -> int | None:
        """The lane whose line to keep; None to write the line again (a second round)."""
        scored, blank = [], []
        for lane, cand in enumerate(song.cands):
            if lane in song.dropped:
                continue
            text = self._text(song, cand)
            mean = _mean(cand)
            word = last_word(text)
            if word is None:
                blank.append((mean, -lane, lane))  # a stanza or the song ends here
            else:
                ranks = tuple(rank for step in self.lines.line_steps
                              if (rank := step.rank(s, text, word)) is not None)
                scored.append((ranks, mean, -lane, lane, text, word))
        if song.round == 1 and len(blank) * 2 >= self.lanes:
            for step in self.lines.line_steps:  # the model ends the stanza: no line
                step.no_line(s)
            return max(blank)[2]
        if not scored:
            return max(blank)[2]
        *_, lane, text, word = max(scored, key=lambda c: c[:4])
        if song.round == 1:
            for step in self.lines.line_steps:
                tail = step.again(s, text, word, song.cands[lane])
                if tail is not None:
                    song.tail, song.round = tail, 2
                    song.again_lane, song.again_kept = lane, song.cands[lane][:len(tail)]
                    song.cands = [[] for _ in range(self.lanes)]
                    song.done = [False] * self.lanes
                    song.dropped, song.settled = set(), False
                    return None
        for step in self.lines.line_steps:
            step.kept_line(s, text, word)
        return lane


def _mean(cand: list) -> float:
    """A candidate line's mean log-probability per character ([(token, logp)])."""
    return sum(lp for _, lp in cand) / max(len(cand), 1)
