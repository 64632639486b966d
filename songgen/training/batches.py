"""Contiguous streams for truncated backpropagation through time.

The encoded text is cut into `batch_size` equal rows, each a contiguous stretch of the corpus,
and every step takes the next `seq_len` columns of all rows. Row r at step t continues exactly
where row r at step t-1 stopped, so the LSTM state carried between steps stays meaningful:

    text: a b c d e f g h i j k l m n o p q r s t u v w x    (batch_size=3, seq_len=3)

    row 0:  a b c | d e f        inputs  step 0 = [a b c]   step 1 = [d e f]
    row 1:  i j k | l m n        targets step 0 = [b c d]   step 1 = [e f g]
    row 2:  q r s | t u v

Rows are views of the one encoded tensor (1 byte a character for small vocabularies); a batch is
widened to int64 only when it is taken. In distributed training each process takes a slice of
the rows (`rows`), so the layout is the same whatever the number of processes.

A corpus with styles (songgen.text.styles) comes with the style id of every position; a batch's
style ids are those of its targets, so that the end-of-song symbol that starts a song is read
in that song's style.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError

MIN_STEPS = 4    # steps an epoch that a batch shape chosen for a short text keeps at least
MIN_SEQ_LEN = 8  # ... and characters a step


def steps_per_epoch(chars: int, batch_size: int, seq_len: int) -> int:
    return (chars - 1) // batch_size // seq_len


def fitting_shape(chars: int, batch_size: int, seq_len: int,
                  multiple: int = 1) -> tuple[int, int] | None:
    """A batch size and sequence length, no larger than the given ones, that cut a training
    text of `chars` characters into at least MIN_STEPS steps: the batch is made smaller first
    (down to `multiple`, of which it stays a multiple), then the sequence length. None when even
    the smallest shape gives less than one step."""
    for steps in (MIN_STEPS, 1):
        for b in range(batch_size - batch_size % multiple, 0, -multiple):
            if steps_per_epoch(chars, b, seq_len) >= steps:
                return b, seq_len
        b = multiple
        s = min(seq_len, (chars - 1) // b // steps)
        if s >= min(MIN_SEQ_LEN, seq_len) or (steps == 1 and s >= 1):
            return b, s
    return None


class TextTooShort(ConfigError):
    """The training text is too short for the batch shape; `fits` is a shape that would work
    (batch size, sequence length), or None when no shape would."""

    def __init__(self, chars: int, batch_size: int, seq_len: int, multiple: int = 1):
        self.fits = fitting_shape(chars, batch_size, seq_len, multiple)
        what = (f"the training text has {chars:,} characters, fewer than batch size x sequence "
                f"length + 1 = {batch_size * seq_len + 1:,}")
        advice = ("give more text" if self.fits is None else
                  f"use a smaller batch size or sequence length (batch size {self.fits[0]} x "
                  f"sequence length {self.fits[1]} fits), or more text")
        super().__init__(f"{what}; {advice}", what=what)


class StreamBatches:
    def __init__(self, data: torch.Tensor, batch_size: int, seq_len: int,
                 rows: slice = slice(None), multiple: int = 1,
                 styles: torch.Tensor | None = None):
        columns = (len(data) - 1) // batch_size
        if columns < seq_len:
            raise TextTooShort(len(data), batch_size, seq_len, multiple)
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.inputs = data[: batch_size * columns].view(batch_size, columns)[rows]
        self.targets = data[1 : batch_size * columns + 1].view(batch_size, columns)[rows]
        # The ragged last columns are dropped: every step has the same shape.
        self.steps_per_epoch = steps_per_epoch(len(data), batch_size, seq_len)
        # Style ids, laid out as the targets (styles[i]: the style of data[i]).
        self.styles = None if styles is None else \
            styles[1 : batch_size * columns + 1].view(batch_size, columns)[rows]

    def __len__(self) -> int:
        return self.steps_per_epoch

    def batch(self, index: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of step `index` of an epoch, both (rows, seq_len) int64."""
        cols = slice(index * self.seq_len, (index + 1) * self.seq_len)
        x = self.inputs[:, cols].to(device, non_blocking=True).long()
        y = self.targets[:, cols].to(device, non_blocking=True).long()
        return x, y

    def style_batch(self, index: int, device: torch.device) -> torch.Tensor | None:
        """The style ids of step `index`'s inputs, (rows, seq_len) int64; None without styles."""
        if self.styles is None:
            return None
        cols = slice(index * self.seq_len, (index + 1) * self.seq_len)
        return self.styles[:, cols].to(device, non_blocking=True).long()


def eval_rows(data: torch.Tensor, rows: int,
              limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`data` as at most `rows` contiguous rows (inputs, targets) for evaluation.

    Every character but the first is predicted once; the few left over by the row cut are
    dropped, which changes the mean by a negligible amount on any real validation set. With
    `limit`, a text longer than that is sampled instead: `rows` stretches spread evenly over
    it, `limit` characters in all, so that evaluating a huge corpus stays quick.
    """
    n = len(data) - 1
    # More rows run faster; at least ~1000 characters each, because every row starts from a
    # blank state and its first characters are predicted worse.
    rows = max(1, min(rows, n // 1000))
    if limit is not None and n > limit:
        columns = limit // rows
        starts = [i * (n - columns) // max(rows - 1, 1) for i in range(rows)]
        x = torch.stack([data[s:s + columns] for s in starts])
        y = torch.stack([data[s + 1:s + 1 + columns] for s in starts])
        return x, y
    columns = n // rows
    x = data[: rows * columns].view(rows, columns)
    y = data[1 : rows * columns + 1].view(rows, columns)
    return x, y
