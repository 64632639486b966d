"""The LSTM rows a batch of songs is written on (Rows): the model's state and scores on each
row, which rows are drawn, read and stepped, and what the steering steps share about rows:
snapshots of rows, known text read on a row in one call of the model, and what each song keeps
of a step.

Song s is written on row s. A step that writes candidate lines (`lanes` > 1, see lines.py)
has lane k of song s on row k * n + s, so that lane 0 of every song is the first n rows. On the
CPU, rows nobody reads are not stepped: while no song writes candidate lines only the first n
rows are drawn and stepped, and otherwise only the rows read, where that spares enough of them;
on CUDA a step of every row is one graph replay, so every row is drawn and stepped.
"""

from __future__ import annotations

from array import array

import numpy as np
import torch

from ...model.stepper import StepState
from ..drawing import draw
from .row_states import RowStates
from .step import Step

# Rows spared before a step is taken on the rows read alone (CPU; taking rows out and putting
# them back costs about as much as stepping a few).
LIVE_SPARED = 6


class Rows:
    """`n` songs on n * lanes rows, the prime read on every row; `stopped`: the batch's stop
    reasons (a song with one is written no further); `steps`: the steering steps, started
    here in order."""

    def __init__(self, trained, n: int, steps: list[Step], prime: str, precision: str,
                 stopped: list):
        self.n, self.steps, self.stopped = n, steps, stopped
        self.lanes = max([step.lanes for step in steps], default=1)
        self.count = n * self.lanes
        self.model = trained.model
        self.prime = trained.vocab.encode(prime).tolist()
        # The model reads the prime after an end-of-song symbol, as every song in training
        # started, in one call; after that it steps one character at a time on packed weights.
        x = torch.tensor([0] + self.prime, device=trained.device).expand(self.count, -1)
        state = tuple(t.expand(-1, self.count, -1).contiguous() for t in trained.start_state)
        with torch.no_grad():  # (the rows' tensors are read through numpy views: copy_rows)
            logits, state = trained.model(x, state)
        self.logits = logits[:, -1].float()        # (rows, vocab)
        self.apart = self.logits.device.type == "cpu"  # rows may be stepped apart
        self.states = RowStates(state, trained.stepper(precision),
                                n if self.apart and self.count > n else None)
        self.layers = self.states.layers  # (every row's, whole once states.put_back())
        self.host = self.apart and self.logits.dtype == torch.float32  # (scores: their memory)
        self.read_ids: torch.Tensor | None = None  # the draws of the rows read (draw)
        self.given: np.ndarray | None = None  # the scores handed to the steps (scores)
        # The steps that do something at each hook (most leave most of them as Step's).
        self._readers = _doing(steps, "reading")
        self._drawers = _doing(steps, "drawn")
        self._choosers = _doing(steps, "chosen")
        self._feeders = _doing(steps, "read")
        self._keepers = _doing(steps, "row_state")
        self._indices: dict[tuple, torch.Tensor] = {}
        self._copied = True
        self.read: list[int] | None = None
        self.narrow = False
        self.kept: list[list] = [[] for _ in range(n)]
        for step in steps:
            step.start(self)

    # -- the loop --------------------------------------------------------------------------

    def scores(self) -> np.ndarray:
        """The model's scores of the rows drawn at this step, (rows drawn, vocab), as a float32
        array on the host: the steps reshape them there, where a numpy operation on a few rows
        costs a fraction of a torch one's call. The loop's own: a step copies them before
        changing them (`own`)."""
        read, wide = None, True
        for step in self._readers:
            read, wide = step.reading()
        if not self._readers and self.lanes == 1 and any(self.stopped):
            read = [s for s, stop in enumerate(self.stopped) if stop is None]  # (songs going on)
        self.read = read
        # Only lane 0 is drawn (no song writes candidate lines): only the first n rows.
        self.narrow = self.states.head is not None and not wide
        logits = (self.logits[:self.n] if self.narrow else self.logits).detach()
        if not self.host:
            logits = logits.float().cpu()
        self.given = logits.numpy()  # (on the CPU, the logits' own memory)
        return self.given

    def draw(self, scores: np.ndarray, gen: torch.Generator, greedy: bool) -> torch.Tensor:
        """One symbol per row of `scores`: the likeliest (greedy) or a draw (drawing.draw),
        made on the rows read only; a row nobody reads takes the end symbol (its state is
        restored before it is read again, or its song has stopped)."""
        read, device = self.read, self.logits.device
        self.read_ids = None
        if read is None or len(read) == scores.shape[0]:
            scores = torch.from_numpy(scores).to(device)
            return scores.argmax(dim=-1) if greedy else draw(scores, gen)
        mine = torch.from_numpy(scores[read]).to(device)
        self.read_ids = mine.argmax(dim=-1) if greedy else draw(mine, gen)  # (_step's, stepped alone)
        ids = np.zeros(scores.shape[0], dtype=np.int64)
        ids[read] = self.read_ids.cpu().numpy()
        return torch.from_numpy(ids).to(device)

    def own(self, scores: np.ndarray) -> np.ndarray:
        """`scores` where a step made them (it may change them in place), else a copy."""
        return scores.copy() if scores is self.given else scores

    def advance(self, ids: torch.Tensor, own: np.ndarray) -> list[list]:
        """The model reads the drawn `ids` (rows drawn,), every step takes them in; per song,
        what it keeps of this step: [(token, logp)] (by default its row's draw; a step writing
        candidate lines keeps nothing while it writes them, and a whole line once chosen).
        `own`: the model's own scores (rows drawn, vocab), before any step, whose
        log-probabilities are kept."""
        chosen = ids.tolist()  # the host needs them: to write the songs, and for the steps
        logps = log_probabilities(own, chosen).tolist()
        for step in self._drawers:
            step.drawn(chosen)
        self._step(ids)
        self.kept = [[(chosen[s], logps[s])] for s in range(self.n)]
        for step in self._choosers:
            step.chosen(chosen, logps)
        return self.kept

    def _step(self, ids: torch.Tensor) -> None:
        states = self.states
        if self.narrow:
            self.logits = torch.cat([states.step_head(ids), self.logits[self.n:]])
        else:
            live = self._live()
            if live is None:
                self.logits = states.step_all(ids)
            else:
                stepped = states.step_apart(live, self.read, self.read_ids)
                self.logits = self.logits.index_copy(0, live, stepped)
        # The logits may be the stepper's own buffer: copied before the first write (writable).
        self._copied = False

    def _live(self) -> torch.Tensor | None:
        """The rows read, as an index, where stepping them alone is worth it (CPU)."""
        read = self.read
        if (not self.apart or read is None or len(read) * 4 > self.count * 3
                or self.count - len(read) < LIVE_SPARED):
            return None
        return self.index(read)

    # -- what steps do to rows -------------------------------------------------------------

    def index(self, values: list[int]) -> torch.Tensor:
        """`values` as an index tensor on the rows' device; the same few lists come back step
        after step, so they are made once (building a tensor costs more than using it)."""
        key = tuple(values)
        found = self._indices.get(key)
        if found is None:
            if len(self._indices) > 4096:
                self._indices.clear()
            found = self._indices[key] = as_index(values, self.logits.device)
        return found

    def writable(self) -> torch.Tensor:
        """The logits, made the rows' own before a step writes into them."""
        if not self._copied:
            self.logits, self._copied = self.logits.clone(), True
        return self.logits

    @torch.no_grad()
    def feed(self, row: int, tokens: list[int]) -> list:
        """Read `tokens` on row `row` in one call of the model (rather than a step per
        character): its LSTM state, logits and every step's state of it move past them. Their
        [(token, logp)], the log-probabilities the model gave them."""
        if not tokens:
            return []
        self.states.rejoin()
        r, layers, logits = row, self.layers, self.writable()
        n_layers, hidden = len(layers.c), layers.c[0].shape[1]
        h = layers.hs[r].view(n_layers, 1, hidden).to(logits.dtype)
        c = torch.stack([c[r] for c in layers.c])[:, None].to(logits.dtype)
        ids = as_index(tokens, logits.device)
        out, (h, c) = self.model(ids[None], (h.contiguous(), c.contiguous()))
        scores = torch.cat([logits[r:r + 1], out[0, :-1].to(logits.dtype)])
        logps = torch.log_softmax(scores.float(), dim=-1).gather(1, ids[:, None])[:, 0]
        layers.hs[r] = h[:, 0].reshape(-1).to(layers.hs.dtype)
        for l, mine in enumerate(layers.c):
            mine[r] = c[l, 0].to(mine.dtype)
        logits[r] = out[0, -1].to(logits.dtype)
        for step in self._feeders:
            step.read(r, tokens)
        return list(zip(tokens, logps.tolist()))

    def snapshot(self) -> "Snapshot":
        """A copy of every row's LSTM state and logits (no step's state yet: see save)."""
        self.states.put_back()
        return Snapshot(self.layers, self.logits)

    def save(self, snap: "Snapshot", rows: list[int]) -> None:
        """Copy these rows, with every step's state of them, into `snap`."""
        state, places = self.states.state_of(rows)
        copy_rows(snap.hs, rows, state.hs, places)
        for mine, theirs in zip(snap.c, state.c):
            copy_rows(mine, rows, theirs, places)
        copy_rows(snap.logits, rows, self.logits, rows)
        for r in rows:
            snap.states[r] = [step.row_state(r) for step in self._keepers]

    def restore(self, snap: "Snapshot", src: int, rows: list[int]) -> None:
        """Every row of `rows` takes row `src` of `snap` (saved there before)."""
        self.states.rejoin()
        copy_rows(self.layers.hs, rows, snap.hs, src)
        for mine, theirs in zip(snap.c, self.layers.c):
            copy_rows(theirs, rows, mine, src)
        copy_rows(self.writable(), rows, snap.logits, src)
        for step, state in zip(self._keepers, snap.states[src]):
            step.set_rows(rows, state)


def copy_rows(dst: torch.Tensor, to: list[int], src: torch.Tensor, frm: list[int] | int) -> None:
    """Rows `to` of `dst` take rows `frm` of `src` (as many rows, or one row for all). On the
    CPU through numpy views of the tensors' memory: for a few rows, a tenth of the cost of
    torch's calls."""
    if dst.is_cpu and src.is_cpu:
        dst.numpy()[to] = src.numpy()[frm]
        return
    rows = src[frm] if isinstance(frm, int) else src.index_select(0, as_index(frm, src.device))
    dst[as_index(to, dst.device)] = rows.to(dst.dtype)


def log_probabilities(scores: np.ndarray, ids: list[int]) -> np.ndarray:
    """Per row of `scores` (rows, vocab), the log-probability of its id by their softmax (the
    ids' alone: cheaper than every symbol's)."""
    top = scores.max(axis=1)
    total = np.log(np.exp(scores - top[:, None]).sum(axis=1)) + top
    return scores[np.arange(len(ids)), ids] - total


def as_index(values: list[int], device) -> torch.Tensor:
    """`values` as an int64 tensor on `device`: read from a buffer of them, which costs a
    quarter of building it from the list (torch.tensor), a call made most steps."""
    if not values:
        return torch.empty(0, dtype=torch.int64, device=device)
    found = torch.frombuffer(array("q", values), dtype=torch.int64)
    return found if found.device == device else found.to(device)


def _doing(steps: list[Step], hook: str) -> list[Step]:
    """The steps whose `hook` is their own (not Step's, which does nothing)."""
    return [s for s in steps if getattr(type(s), hook) is not getattr(Step, hook)]


class Snapshot:
    """Copies of rows' LSTM state and logits, and of every step's state of the rows saved."""

    def __init__(self, layers: StepState, logits: torch.Tensor):
        self.hs = layers.hs.clone()
        self.c = [c.clone() for c in layers.c]
        self.logits = logits.clone()
        self.states: dict[int, list] = {}
