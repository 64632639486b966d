"""The trace of a writing (Trace, asked for with SampleOptions(trace=True)): for each character
written into each song, the choices the model had there and what every steering step did to
them. It is what the studio shows when a character of a song is clicked.

The one loop (sampling._steps) hands the trace the scores of the rows whose draw is used, and
the trace runs the steps itself, keeping those rows' scores before the steps and after each
one, and each step's own words for the row (`Step.explain`). Nothing knows one step from
another: a step removed a choice where it took its probability to 0, forced one where it left
it the only one, and raised or lowered one where it changed its odds markedly.

Per character (CharTrace): the model's TOP likeliest choices at temperature 1, before any step,
and the character drawn, each with its probability in the draw that was made (after every
step). A line written on several lanes at once and chosen among them (steering/lines.py: a
rhyme, scansion) keeps the trace of the lane kept, with a note naming the candidates and the
line steps' words; known text (a chorus coming back), read in one call of the model or drawn
as set, was not chosen, and its characters say so with the probability the model gave them.
Without a trace the loop runs as it always has: none of this is called.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..text.vocab import EOS
from .steering.lines import LineStep, Lines

TOP = 8            # the model's likeliest choices listed at each character
FINAL_TOP = 3      # and the draw's likeliest, where the steps raised others
RAISED = 1.5       # a step raised (lowered) a choice it made this many times likelier (less
NOTICED = 0.02     # likely) and by at least this much probability
SURE = 1 - 1e-6    # a probability this high is the only choice left


@dataclass
class StepEffect:
    """What one step did to one character's choices: its words, the listed choices it took to
    probability 0, the one it left alone where there had been others, whether it changed the
    probabilities at all."""

    step: str
    words: list[str]
    removed: list[int] = field(default_factory=list)
    forced: int | None = None
    changed: bool = False


@dataclass
class CharTrace:
    """One character written: its id, the model's probability of it (temperature 1, before any
    step) and its probability in the draw made (None: not drawn, `known` says why); `choices`:
    (id, model's p, draw's p, what the steps did) for the model's likeliest and the character
    drawn, the model's likeliest first; `steps`: the steps that changed the choices or said
    something of them, in the loop's order; `line`: how its line was chosen among candidates."""

    token: int
    p: float
    p_drawn: float | None
    choices: list[tuple[int, float, float | None, str]]
    steps: list[StepEffect]
    line: str | None = None
    known: str | None = None

    def as_json(self, chars: list[str]) -> dict:
        """The studio's form: characters, not ids ("" for the end of a song)."""
        name = ["" if c == EOS else c for c in chars]
        out = {"char": name[self.token], "p": _short(self.p), "p_final": _short(self.p_drawn),
               "choices": [[name[i], _short(pm), _short(pd), note]
                           for i, pm, pd, note in self.choices],
               "steps": [{"step": e.step, "words": e.words,
                          "removed": [name[i] for i in e.removed],
                          "forced": None if e.forced is None else name[e.forced]}
                         for e in self.steps]}
        if self.line:
            out["line"] = self.line
        if self.known:
            out["known"] = self.known
        return out


def _short(p: float | None) -> float | None:
    return None if p is None else round(p, 6)


KNOWN = ("not chosen: a line step knew this line (the chorus coming back), and the model read "
         "it as it was")


class Trace:
    """The trace of one writing: `begin` with each batch's rows and steps, then per step of the
    loop `steer` (in place of running the steps) and `after` the rows advanced; `last` holds,
    per song of the batch, the traces of what it kept at that step, one per symbol kept."""

    def __init__(self, chars: list[str], greedy: bool):
        self.chars, self.greedy = chars, greedy
        self.last: list[list[CharTrace]] = []

    def begin(self, rows, steps: list) -> None:
        self.rows, self.steps, self.n = rows, steps, rows.n
        self.lines = next((step for step in steps if isinstance(step, Lines)), None)
        # The line steps that rank candidate lines (rhyme, scansion): their words say why.
        self.rankers = {step.name for step in steps if isinstance(step, LineStep)
                        and type(step).rank is not LineStep.rank}
        # Per song, per lane: the traces of the candidate line it is writing (lines.py).
        self.lanes = [[[] for _ in range(rows.lanes)] for _ in range(rows.n)]
        self.first_round: list[list[str] | None] = [None] * rows.n
        self.pending: tuple = ([], [], [])
        self.before: list[tuple] = []

    # -- one step of the loop ------------------------------------------------------------------

    def steer(self, scores: np.ndarray) -> np.ndarray:
        """The steps run on `scores` (rows drawn, vocab), as the loop runs them, with the
        scores of the traced rows kept before the steps and after each, and their words."""
        traced = self._traced(scores.shape[0])
        stages = [torch.from_numpy(scores[traced])] if traced else []
        for step in self.steps:
            scores = step.steer(scores)
            if traced:
                stages.append(torch.from_numpy(scores[traced]))
        # (asked before the draw: a step's words are of its last steer)
        words = [[step.explain(r) for r in traced] for step in self.steps]
        self.pending = (traced, stages, words)
        if self.lines is not None:
            self.before = [(song.mode, song.round, list(song.done), bool(song.known))
                           for song in self.lines.songs]
        return scores

    def _traced(self, drawn: int) -> list[int]:
        """The rows whose draw may be kept: those read, of songs still being written."""
        read, stopped, n = self.rows.read, self.rows.stopped, self.n
        rows = range(drawn) if read is None else read
        return [r for r in rows if r < drawn and stopped[r % n] is None]

    def after(self, ids: torch.Tensor, kept: list[list]) -> None:
        """The draw was `ids` and each song kept `kept` ([(token, logp)] per song): the traces
        of what each kept, in `last`."""
        made = self._made(ids)
        self.last = [self._song(s, kept[s], made) for s in range(self.n)]

    # -- a character's trace -------------------------------------------------------------------

    def _made(self, ids: torch.Tensor) -> dict[int, CharTrace]:
        """Each traced row's draw, traced."""
        traced, stages, words = self.pending
        if not traced:
            return {}
        probs = torch.softmax(torch.stack(stages), dim=-1).nan_to_num_(0.0)  # (steps+1, R, V)
        drawn = ids.index_select(0, self.rows.index(traced)).tolist()
        final = probs[-1]
        if self.greedy:  # temperature 0: the likeliest is taken, nothing is drawn
            at = torch.tensor(drawn, device=final.device)[:, None]
            final = torch.zeros_like(final).scatter_(1, at, 1.0)
        changed = ((probs[1:] - probs[:-1]).abs().amax(dim=-1) > 1e-6).tolist()  # (steps, R)
        vocab = probs.shape[-1]
        tops = probs[0].topk(min(TOP, vocab), dim=-1).indices.tolist()
        bests = final.topk(min(FINAL_TOP, vocab), dim=-1)
        made = {}
        for j, row in enumerate(traced):
            best = [i for i, p in zip(bests.indices[j].tolist(), bests.values[j].tolist()) if p > 0]
            listed = list(dict.fromkeys(tops[j] + [drawn[j]] + best))
            each = probs[:, j, listed].T.tolist()          # per choice: p before and after steps
            last = final[j, listed].tolist()
            effects = [StepEffect(step.name, words[k][j], changed=changed[k][j])
                       for k, step in enumerate(self.steps)]
            choices = []
            for i, stages_p, p_final in zip(listed, each, last):
                notes = [note for k, effect in enumerate(effects)
                         if (note := _effect(effect, i, stages_p[k], stages_p[k + 1]))]
                if self.greedy and p_final == 0:
                    notes.append("not the likeliest: temperature 0 takes the likeliest")
                choices.append((i, stages_p[0], p_final, "; ".join(notes)))
            shown = [e for e in effects if e.words or e.changed]
            if self.greedy:
                shown.append(StepEffect("greedy", ["temperature 0: the likeliest is taken"]))
            made[row] = CharTrace(drawn[j], each[listed.index(drawn[j])][0],
                                  last[listed.index(drawn[j])], choices, shown)
        return made

    # -- what each song kept -------------------------------------------------------------------

    def _song(self, s: int, piece: list, made: dict[int, CharTrace]) -> list[CharTrace]:
        """The traces of what song `s` kept at this step: its row's draw, or the line kept among
        its lanes' candidates, then any known text read in one call."""
        mode, round_, done, known = (self.before[s] if self.lines is not None
                                     else ("follow", 1, [], False))
        n, lanes = self.n, self.lanes[s]
        drawn: list[CharTrace] = []
        if mode == "lanes":
            for lane, finished in enumerate(done):
                if not finished and lane * n + s in made:
                    lanes[lane].append(made[lane * n + s])
            if piece:
                drawn = self._kept_line(s, piece)
        elif piece and not known and s in made and made[s].token == piece[0][0]:
            drawn = [made[s]]  # (known text drawn as set, lines.py, was not the model's choice)
        traces = drawn + [_known(token, logp) for token, logp in piece[len(drawn):]]
        if self.lines is not None:
            self._lanes_start(s, mode, round_, bool(piece))
        return traces

    def _kept_line(self, s: int, piece: list) -> list[CharTrace]:
        """The traces of the candidate line kept (the first lane that wrote what was kept: lanes
        that wrote the same line drew the same), each with a note on how it was chosen."""
        tokens = [token for token, _ in piece]
        lanes = self.lanes[s]
        for lane, traces in enumerate(lanes):
            if traces and [t.token for t in traces] == tokens[:len(traces)]:
                break
        else:
            return []
        note = self._line_note(s, lane)
        for t in traces:
            t.line = note
        return list(traces)

    def _line_note(self, s: int, kept: int) -> str:
        """How a line was chosen: among which candidates, and the line steps' words."""
        lanes = self.lanes[s]
        texts = [self._text(traces) for traces in lanes]
        why = list(dict.fromkeys(f"{e.step}: {w}" for t in lanes[kept] for e in t.steps
                                 if e.step in self.rankers for w in e.words))
        shown = "; ".join(f"{text} (kept)" if k == kept else text for k, text in enumerate(texts))
        note = (f"This line was chosen among {len(lanes)} candidate lines written side by side "
                f"from the same state: {shown}. The line steps rank them (rhyme first, then "
                "scansion), the line the model found likeliest breaking ties.")
        first = self.first_round[s]
        if first is not None:
            note = (f"None of the first {len(first)} candidate lines ({'; '.join(first)}) ended "
                    "as the line steps asked: the best was kept up to its last word, and its "
                    "ending written again on every lane. " + note.replace("was chosen",
                                                                          "was then chosen"))
        return note + (" " + "; ".join(why) + "." if why else "")

    def _text(self, traces: list[CharTrace]) -> str:
        text = "".join(self.chars[t.token] for t in traces if t.token != 0).strip("\n")
        ending = "the song ends" if traces and traces[-1].token == 0 else "a blank line"
        return f"'{text}'" if text.strip() else f"({ending})"

    def _lanes_start(self, s: int, mode: str, round_: int, kept: bool) -> None:
        """Song `s` starts writing candidate lines at this step (a new line, or the same line's
        ending again): its lanes' traces start empty, or with the kept part of the best line."""
        song = self.lines.songs[s]
        if song.mode != "lanes":
            return
        if song.round == 2 and mode == "lanes" and round_ == 1 and not kept:
            tail, lanes = song.tail, self.lanes[s]
            start = next((traces[:len(tail)] for traces in lanes
                          if [t.token for t in traces[:len(tail)]] == tail), [])
            self.first_round[s] = [self._text(traces) for traces in lanes]
            self.lanes[s] = [list(start) for _ in lanes]
        elif mode != "lanes" or kept:
            self.lanes[s] = [[] for _ in self.lanes[s]]
            self.first_round[s] = None


def _effect(effect: StepEffect, i: int, before: float, after: float) -> str:
    """What step `effect` did to choice `i`, in words ("" for nothing worth saying), noted in
    the effect too."""
    if before > 0 and after == 0:
        effect.removed.append(i)
        return f"removed by {effect.step}"
    if after >= SURE > before:
        effect.forced = i
        return f"forced by {effect.step}"
    if after >= RAISED * before and after - before >= NOTICED:
        return f"raised by {effect.step}"
    if before >= RAISED * after and before - after >= NOTICED:
        return f"lowered by {effect.step}"
    return ""


def _known(token: int, logp: float) -> CharTrace:
    """A character read as known text: the model's probability of it, nothing drawn."""
    p = math.exp(logp)
    return CharTrace(token, p, None, [(token, p, None, "")], [], known=KNOWN)
