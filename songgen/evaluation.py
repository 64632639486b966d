"""Loss of a model on text: during training (validation) and on any file (songgen eval)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .batches import eval_rows
from .checkpoint import RunFolder
from .trained import Trained, load_checkpoint
from .corpuscache import folder_for, load_encoded, mapped, user_folder
from .devices import autocast
from .distributed import Team
from .errors import CorpusError
from .lyrics import UnknownCharacters, encode_corpus, in_vocab
from .model import CharLSTM
from .progress import LN2


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
    styles: dict | None = None  # a model with styles: the loss of each style of the text

    @property
    def bits_per_char(self) -> float:
        return self.loss / LN2


def evaluate_text(path: str | Path, checkpoint: str | Path | Trained | None = None, *,
                  skip_unknown: bool = False, device: str = "auto",
                  encoding: str = "utf-8", cache: str | Path | None = "auto") -> Score:
    """Loss of a checkpoint on a lyrics file or folder, read and split like a training corpus
    (the files in `encoding`). `cache`: the corpus cache's folder ("auto": the training run's
    own cache when it holds the text, only read; else the user's cache folder,
    `corpuscache.user_folder`; "none": read the text), so that a training text is not read
    again, and a text scored again is read once. Nothing is written in the run's folder."""
    trained = checkpoint if isinstance(checkpoint, Trained) else load_checkpoint(checkpoint, device)
    folder = folder_for(cache, user_folder())
    encoded = None
    if cache is None or str(cache) == "auto":
        encoded = mapped(path, RunFolder(Path(trained.path).parent).cache, encoding)
    if encoded is None and folder is None:
        encoded = encode_corpus(path, encoding, trained.vocab, extend=True)
    elif encoded is None:
        encoded = load_encoded(path, folder, encoding, vocab=trained.vocab, extend=True)
    # Characters the model lacks get ids after its own (and are present in the text).
    grown, data, _ = in_vocab(encoded, trained.vocab, extend=True)
    known = len(trained.vocab)
    unknown = grown.chars[known:]
    skipped = 0
    if unknown:
        if not skip_unknown:
            raise UnknownCharacters(unknown, str(path), "pass skip_unknown=True to score the rest")
        data, skipped = _without(data, known)
    if len(data) < 2:
        raise CorpusError(f"{path} has nothing left to score")
    loss = evaluate(trained.model, data, trained.device, rows=32, chunk=1024, bar=True)
    from .styles import score_by_style

    per_style = None if skipped else score_by_style(trained, encoded, data, evaluate, rows=32,
                                                    chunk=1024)
    return Score(loss, len(data) - 1, skipped, per_style)


def _without(data: torch.Tensor, known: int) -> tuple[torch.Tensor, int]:
    """`data` without the ids from `known` on, and how many there were."""
    source = data.numpy()
    kept = np.empty(len(source), dtype=source.dtype)
    used, step = 0, 1 << 22
    for start in range(0, len(source), step):
        part = source[start:start + step]
        part = part[part < known]
        kept[used:used + len(part)] = part
        used += len(part)
    kept.resize(used, refcheck=False)
    return torch.from_numpy(kept), len(source) - used
