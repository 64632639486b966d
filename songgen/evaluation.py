"""Loss of a model on text: during training (validation) and on any file (songgen eval)."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .batches import eval_rows
from .checkpoint import Trained, load_checkpoint
from .devices import autocast
from .distributed import Team
from .errors import CorpusError
from .lyrics import EOS, UnknownCharacters, join_songs, read_songs
from .model import CharLSTM

LN2 = math.log(2)


@torch.no_grad()
def evaluate(model: CharLSTM, data: torch.Tensor, device: torch.device,
             dtype: torch.dtype = torch.float32, rows: int = 32, chunk: int = 512,
             team: Team | None = None, limit: int | None = None, bar: bool = False) -> float:
    """Mean cross-entropy (nats per character) over all of `data` (or `limit` characters
    sampled evenly from it), streamed in contiguous rows. With a team of processes each scores
    its share of the rows and the sums are combined. `bar`: show progress in a terminal."""
    was_training = model.training
    model.eval()
    x, y = eval_rows(data, rows, limit)
    team = team or Team()
    x, y = x[team.rank::team.world], y[team.rank::team.world]
    total = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, characters
    state = None
    starts = range(0, x.shape[1] if len(x) else 0, chunk)
    for start in tqdm(starts, disable=not (bar and sys.stderr.isatty()), leave=False,
                      file=sys.stderr, unit=" chunks", desc="scoring"):
        xb = x[:, start:start + chunk].to(device).long()
        yb = y[:, start:start + chunk].to(device).long()
        with autocast(device, dtype):
            logits, state = model(xb, state)
        total[0] += F.cross_entropy(logits.float().flatten(0, 1), yb.flatten(), reduction="sum")
    total[1] = y.numel()
    model.train(was_training)
    loss_sum, count = team.total(total).tolist()
    return loss_sum / count


@dataclass
class Score:
    loss: float          # nats per character
    chars: int           # characters scored
    skipped: int         # characters dropped because the vocabulary lacks them

    @property
    def bits_per_char(self) -> float:
        return self.loss / LN2


def evaluate_text(path: str | Path, checkpoint: str | Path | Trained | None = None, *,
                  skip_unknown: bool = False, device: str = "auto",
                  encoding: str = "utf-8") -> Score:
    """Loss of a checkpoint on a lyrics file or folder, read and split like a training corpus
    (the files in `encoding`)."""
    trained = checkpoint if isinstance(checkpoint, Trained) else load_checkpoint(checkpoint, device)
    text = join_songs(read_songs(path, encoding))
    unknown = trained.vocab.unknown(text)
    skipped = 0
    if unknown:
        if not skip_unknown:
            raise UnknownCharacters(unknown, str(path), "pass skip_unknown=True to score the rest")
        drop = set(unknown)
        kept = "".join(c for c in text if c not in drop)
        skipped, text = len(text) - len(kept), kept
    data = trained.vocab.encode(EOS + text)  # scored as after an end of song, like training
    if len(data) < 2:
        raise CorpusError(f"{path} has nothing left to score")
    loss = evaluate(trained.model, data, trained.device, rows=32, chunk=1024, bar=True)
    return Score(loss, len(data) - 1, skipped)
