"""The one interface of the steering steps (Step): what the sampler's loop calls, and what a
step that keeps state per LSTM row tells the rows' snapshots."""

from __future__ import annotations

import numpy as np


class Step:
    """One way of steering the draws. The loop (songgen/writing/sampling.py), per step:

        scores = rows.scores()                    # the model's scores of the rows drawn
        for step in steps: scores = step.steer(scores)
        ids = draw(scores)                        # one symbol per row drawn
        rows.advance(ids)                         # every step's drawn(ids); the model
                                                  # reads them; every step's chosen(ids, logps)

    The scores are a float32 numpy array on the host (rows drawn, vocab): for a few rows a
    numpy operation costs a fraction of a torch call. `steer` returns them reshaped; it
    changes them in place only where `rows.own` says a step made them (the model's own are
    the loop's). Rows are those of `rows` (rows.py): song
    s on row s, and where a step writes candidate lines (`lanes` > 1), lane k of song s on row
    k * n + s. A step that keeps state per row says how to copy it (`row_state`, `set_rows`),
    so that a row can be snapshotted and restored with everything the steps know of it, and
    takes in known text a row reads in one call of the model (`read`). `explain(row)` says in
    words what the step did to that row's choices at its last `steer` (ask before `chosen`)."""

    name = "step"
    lanes = 1  # rows each song is written on

    def start(self, rows) -> None:
        """Before the first draw: `rows` (rows.Rows) has read the prime (rows.prime, ids) on
        every row."""

    def steer(self, scores: np.ndarray) -> np.ndarray:
        """The scores (rows drawn, vocab), reshaped."""
        return scores

    def drawn(self, ids: list[int]) -> None:
        """After the draw, before the model reads it (the rows' state is still the one the draw
        was made from): one id per row drawn."""

    def chosen(self, ids: list[int], logps: list[float]) -> None:
        """After the draw, once the model has read it: one id per row drawn, and the model's
        own log-probability of each."""

    def reading(self) -> tuple[list[int], bool] | None:
        """The rows whose draw is used at the next step, in order, and whether any row past
        the first n is drawn at all (None: every row is drawn and used)."""
        return None

    def read(self, row: int, tokens: list[int]) -> None:
        """Row `row` read `tokens` in one call of the model (a chorus, a line's kept part)."""

    def row_state(self, row: int):
        """A copy of what the step keeps of row `row` (None: nothing)."""
        return None

    def set_rows(self, rows: list[int], state) -> None:
        """Every row of `rows` takes `state`, a `row_state` of another row."""

    def explain(self, row: int) -> list[str]:
        """What the step did to row `row`'s choices at its last `steer`, in words."""
        return []

    def report(self, song: int) -> dict:
        """What the step did to song `song`, for the song's record."""
        return {}
