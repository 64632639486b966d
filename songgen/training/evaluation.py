"""Loss of a model on text: during training (validation) and on any file (songgen eval)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import CorpusError
from ..model.devices import autocast
from ..model.lstm import CharLSTM
from ..model.style_input import Styled
from ..run.folder import RunFolder
from ..run.trained import Trained, load_checkpoint
from ..text.cache import folder_for, load_encoded, mapped, user_folder
from ..text.corpus import Encoded, encode_corpus, in_vocab
from ..text.styles import Styles, song_labels, style_names
from ..text.vocab import UnknownCharacters, Vocab
from .batches import eval_rows
from .progress import LN2
from .team import Team

# How a text is read to be scored: in at most this many rows, this many columns at a time.
TEXT_ROWS, TEXT_CHUNK = 32, 1024


@torch.no_grad()
def evaluate(model: CharLSTM, data: torch.Tensor, device: torch.device,
             dtype: torch.dtype = torch.float32, rows: int = 32, chunk: int = 512,
             team: Team | None = None, limit: int | None = None, bar: bool = False,
             whole: bool = False) -> float:
    """Mean cross-entropy (nats per character) over all of `data` (or `limit` characters
    sampled evenly from it), streamed in contiguous rows. With a team of processes each scores
    its share of the rows and the sums are combined. `bar`: show progress in a terminal.
    `whole` (one process, no limit): the few characters the row cut leaves at the end are
    scored too, read on from the last row, so that every character counts (songgen eval)."""
    x, y = eval_rows(data, rows, limit)
    team = team or Team()
    x, y = x[team.rank::team.world], y[team.rank::team.world]
    total = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, characters
    state = None
    for _, logits, yb, state in scored_chunks(model, x, y, device, dtype, chunk, bar):
        total[0] += F.cross_entropy(logits.float().flatten(0, 1), yb.flatten(), reduction="sum")
    total[1] = y.numel()
    if whole and team.world == 1 and limit is None and x.numel() < len(data) - 1:
        logits, yb = read_tail(model, data, x.numel(), state, device, dtype)
        total[0] += F.cross_entropy(logits.float().flatten(0, 1), yb.flatten(), reduction="sum")
        total[1] += yb.numel()
    loss_sum, count = team.total(total).tolist()
    return loss_sum / count


@torch.no_grad()
def read_tail(model: CharLSTM, data: torch.Tensor, start: int, state, device: torch.device,
              dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (1, columns, vocab) and targets for the characters of `data` after the first
    `start` + 1 that the row cut left out, read on from the last row's final `state` (None: a
    blank state)."""
    was_training = model.training
    model.eval()
    last = None if state is None else tuple(t[:, -1:].contiguous() for t in state)
    with autocast(device, dtype):
        logits, _ = model(data[start:-1].to(device).long()[None], last)
    model.train(was_training)
    return logits, data[start + 1:].to(device).long()[None]


@torch.no_grad()
def scored_chunks(model: CharLSTM, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                  dtype: torch.dtype = torch.float32, chunk: int = 512, bar: bool = False):
    """The model read over rows `x` (from `eval_rows`), `chunk` columns at a time with the
    state carried: yields (first column, logits (rows, columns, vocab), targets, state). The one
    pass that both a loss (`evaluate`) and a per-character explanation (songgen.inside.explain) use."""
    was_training = model.training
    model.eval()
    state = None
    starts = range(0, x.shape[1] if len(x) else 0, chunk)
    try:
        for start in tqdm(starts, disable=not (bar and sys.stderr.isatty()), leave=False,
                          file=sys.stderr, unit=" chunks", desc="scoring"):
            xb = x[:, start:start + chunk].to(device).long()
            yb = y[:, start:start + chunk].to(device).long()
            with autocast(device, dtype):
                logits, state = model(xb, state)
            yield start, logits, yb, state
    finally:
        model.train(was_training)


@dataclass
class Score:
    loss: float          # nats per character
    chars: int           # characters scored
    skipped: int         # characters dropped because the vocabulary lacks them
    styles: dict | None = None  # a model with styles: the loss of each style of the text

    @property
    def bits_per_char(self) -> float:
        return self.loss / LN2


# -- with styles: each style's songs read in that style (songgen.text.styles labels them) ----

def evaluate_styles(model, styles: "Styles", val: torch.Tensor, limit: int,
             **options) -> tuple[float, dict[str, float]]:
    """The validation loss of each style on its own validation text (read in its style), and
    their mean weighted by characters: (mean, {name: loss})."""
    parts = [(s, a, b) for s, a, b in styles.val_parts if b - a >= 2]
    each = max(limit // max(len(parts), 1), 10_000)
    losses, total, weight = {}, 0.0, 0
    for style, begin, end in parts:
        loss = evaluate(Styled(model, style), val[begin:end], limit=each, **options)
        losses[styles.name(style)] = loss
        total += loss * (end - begin)
        weight += end - begin
    return total / weight, losses


def score_by_style(trained, encoded, data: torch.Tensor, **options) -> dict | None:
    """The loss of a model with styles on each style of a text whose songs have styles it
    knows (each style's songs read in that style): {name: loss}, or None when there is none
    to score. `data`: the text's ids in the model's vocabulary, the first end-of-song symbol
    included (as `lyrics.Encoded.ids`)."""
    names = style_names(trained.checkpoint)
    if not names or not encoded.styles or not any(name for name, _ in encoded.styles):
        return None
    labelled = song_labels(encoded.styles, "auto", names, grow=True)
    if labelled is None:
        return None
    _, labels = labelled
    sizes = np.asarray(encoded.sizes, dtype=np.int64)
    starts = np.cumsum(sizes) - sizes + 1  # after the first end-of-song symbol
    ids, eos = data.numpy(), data[:1].numpy()
    losses = {}
    for style in range(1, len(names) + 1):
        songs = np.flatnonzero(labels == style)
        if len(songs) == 0:
            continue
        # Each song read after an end-of-song symbol, as in training.
        text = np.concatenate([eos] + [ids[starts[s]:starts[s] + sizes[s]] for s in songs])
        losses[names[style - 1]] = evaluate(Styled(trained.full_model, style), torch.from_numpy(text),
                                           trained.device, **options)
    return losses or None


def evaluate_text(path: str | Path, checkpoint: str | Path | Trained | None = None, *,
                  skip_unknown: bool = False, device: str = "auto",
                  encoding: str = "utf-8", cache: str | Path | None = "auto") -> Score:
    """Loss of a checkpoint on a lyrics file or folder, read and split like a training corpus
    (the files in `encoding`). `cache`: the corpus cache's folder ("auto": the training run's
    own cache when it holds the text, only read; else the user's cache folder,
    `corpuscache.user_folder`; "none": read the text), so that a training text is not read
    again, and a text scored again is read once. Nothing is written in the run's folder."""
    trained = checkpoint if isinstance(checkpoint, Trained) else load_checkpoint(checkpoint, device)
    encoded, _, data, skipped = scoring_ids(path, trained, encoding, cache, skip_unknown)
    loss = evaluate(trained.model, data, trained.device, rows=TEXT_ROWS, chunk=TEXT_CHUNK,
                    bar=True, whole=True)
    per_style = None if skipped else score_by_style(trained, encoded, data, rows=TEXT_ROWS,
                                                    chunk=TEXT_CHUNK)
    return Score(loss, len(data) - 1, skipped, per_style)


def scoring_ids(path, trained: Trained, encoding: str = "utf-8", cache="auto",
                skip_unknown: bool = False, keep_unknown: bool = False):
    """A text as `evaluate_text` scores it (read and split as a corpus, in the model's
    vocabulary), without the characters the model lacks if `skip_unknown`, with them (ids from
    len(vocab) on) if `keep_unknown`, else refused."""
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
    if unknown and not keep_unknown:
        if not skip_unknown:
            raise UnknownCharacters(unknown, str(path), "pass skip_unknown=True to score the rest")
        data, skipped = _without(data, known)
    if len(data) < 2:
        raise CorpusError(f"{path} has nothing left to score")
    return Scoring(encoded, grown if keep_unknown else trained.vocab, data, skipped)


class Scoring(NamedTuple):
    encoded: Encoded   # the text read as a corpus
    vocab: Vocab       # the model's vocabulary (with `keep_unknown`: and the text's others after it)
    data: torch.Tensor  # ids, the first end-of-song symbol included
    skipped: int       # characters dropped because the model lacks them


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
