"""Every row's LSTM state while a batch of songs is written (RowStates, for steering/rows.py):
stepped whole, the first n rows alone (no song writes candidate lines), or, on the CPU, only
the rows read, taken out into a state of their own. Most steps read the same rows as the step
before, so those rows stay out, stepped there, and are put back only when every row's state is
read (a snapshot) or written or stepped as a whole (they rejoin the others)."""

from __future__ import annotations

import torch

from ...model.lstm import State
from ...model.stepper import StepState


class RowStates:
    """The state of every row (`layers`, from nn.LSTM's `state`), stepped by `stepper`;
    `head`: the first rows, stepped alone (None: never)."""

    def __init__(self, state: State, stepper, head: int | None):
        self.stepper = stepper
        self.layers = StepState(state)
        self.head = None if head is None else self.layers.head(head)
        self._parts: dict[int, StepState] = {}  # states of rows apart, by their number (_take)
        # [the rows' index, their state, stepped since put back, each row's place in it]
        self._out: list | None = None

    def step_all(self, ids: torch.Tensor) -> torch.Tensor:
        """Every row reads its id (ids: one per row); their logits."""
        self.rejoin()
        return self.stepper.step(ids, self.layers)

    def step_head(self, ids: torch.Tensor) -> torch.Tensor:
        """The first rows read their ids; their logits."""
        self.rejoin()
        return self.stepper.step(ids, self.head)

    def step_apart(self, live: torch.Tensor, rows: list[int], ids: torch.Tensor) -> torch.Tensor:
        """The rows `rows` (as the index `live`) read their ids, stepped apart from the
        others: from the state still apart where it holds those rows, else taken out anew;
        their logits."""
        out = self._out
        if out is not None and out[0] is live:  # (Rows.index: the same rows, the same index)
            out[2] = True
            return self.stepper.step(ids, out[1])
        self.rejoin()
        part = self._take(live)
        self._out = [live, part, True, {r: i for i, r in enumerate(rows)}]
        return self.stepper.step(ids, part)

    def state_of(self, rows: list[int]) -> tuple[StepState, list[int]]:
        """Where these rows' state is read from, and at which rows of it: the rows apart where
        they hold them all (not put back for it), else every row's."""
        out = self._out
        if out is not None and out[2] and all(r in out[3] for r in rows):
            return out[1], [out[3][r] for r in rows]
        self.put_back()
        return self.layers, rows

    def put_back(self) -> None:
        """Every row's state made whole: the rows apart, stepped since they were put back, are
        copied back (they stay apart, unchanged, for the next step)."""
        out = self._out
        if out is not None and out[2]:
            self.layers.put(out[0], out[1])
            out[2] = False

    def rejoin(self) -> None:
        """Every row's state made whole before it is written or stepped as a whole: the rows
        apart no longer hold their state."""
        self.put_back()
        self._out = None

    def _take(self, live: torch.Tensor) -> StepState:
        """The state of the rows `live`, copied into a state of that many rows kept for the
        next time (a new one, laid out anew, each step cost more than the copy)."""
        part = self._parts.get(len(live))
        if part is None:
            part = self._parts[len(live)] = self.layers.take(live)
        else:
            torch.index_select(self.layers.hs, 0, live, out=part.hs)
            for mine, theirs in zip(part.c, self.layers.c):
                torch.index_select(theirs, 0, live, out=mine)
        return part
