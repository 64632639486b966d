"""Explaining a text character by character: the probability the model gave each character of
a text, from the text before it, and the choices it had there (`songgen explain`).

The text is read and scored exactly as `songgen eval` scores it (songgen.training.evaluation: the same
reading into songs with an end-of-song symbol after each, the same rows and the same pass),
so the mean of -ln p over an explanation is eval's loss. Like eval, a text longer than about
2,000 characters is read as up to 32 stretches of at least 1,000 characters, each from a
blank state: the first character of a stretch is marked `restart`. The few characters the cut
leaves at the end are read on from the last stretch, by eval too.

Characters the model never saw are shown, not scored: their p is None, and the model reads
the text without them (as `eval --skip-unknown` does), so their choices are those it had for
the next character it knows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CorpusError
from ..text.vocab import EOS

CHOICES = 20  # choices kept for every character (the page recomputes temperatures from them)
PAGE_LIMIT = 20_000  # characters a page shows: more than any song, and a page that opens fast


class PageTooLong(CorpusError):
    """A text too long for the page; `chars` says how long it is."""

    def __init__(self, chars: int):
        self.chars = chars
        what = (f"the text has {chars:,} characters, more than a page shows "
                f"({PAGE_LIMIT:,})")
        super().__init__(f"{what}; explain a part of it (one song, say), or ask for JSON, "
                         "which has no limit", what=what)


@dataclass
class Explanation:
    """A text scored character by character. Arrays have one row per character of the text as
    songgen reads it (songs, each followed by the end-of-song symbol, id 0)."""

    chars: list[str]          # the vocabulary: the model's, then the text's unknown characters
    known: int                # how many of `chars` the model has
    ids: np.ndarray           # (n,) the characters, as ids into `chars`
    logp: np.ndarray          # (n,) ln p of each character at temperature 1 (nan: unknown)
    top_ids: np.ndarray       # (n, k) the likeliest choices, most likely first
    top_logp: np.ndarray      # (n, k) their ln p
    rest_logp: np.ndarray     # (n,) ln of the mass of every other choice (-inf: none)
    restart: np.ndarray       # (n,) bool: read from a blank state (a stretch's start)
    source: str = ""
    checkpoint: str = ""
    # Filled for the page (songgen.inside.cells): cell activations and suggested cells.
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def unknown(self) -> np.ndarray:
        return self.ids >= self.known

    @property
    def loss(self) -> float:
        """Mean -ln p over the characters the model knows: eval's loss on the text."""
        return float(-self.logp[~self.unknown].astype(np.float64).mean())

    def text(self) -> str:
        return "".join(self.chars[i] for i in self.ids)

    def records(self, top: int = 10):
        """One dict per character, in order: "char" ("" for the end of a song, which is no
        character of the text; "end": true then), "p" (None where unknown: "unknown": true),
        "top": [[character, p], ...] most likely first; "restart": true where read from a
        blank state."""
        names = ["" if c == EOS else c for c in self.chars]
        top = min(top, self.top_ids.shape[1])
        probs = np.exp(self.top_logp[:, :top].astype(np.float64))
        for i, char in enumerate(self.ids.tolist()):
            record = {"char": names[char],
                      "p": None if char >= self.known else _short(math.exp(self.logp[i])),
                      "top": [[names[c], _short(p)] for c, p in
                              zip(self.top_ids[i, :top].tolist(), probs[i].tolist())]}
            if char == 0:
                record["end"] = True
            if char >= self.known:
                record["unknown"] = True
            if self.restart[i]:
                record["restart"] = True
            yield record


def _short(p: float) -> float:
    return float(f"{p:.6g}")


def explain_text(path: str | Path, checkpoint, *, encoding: str = "utf-8",
                 device: str = "auto", choices: int = CHOICES,
                 most: int | None = None) -> Explanation:
    """Score every character of the lyrics file `path` with `checkpoint` (a path or a loaded
    `trained.Trained`), keeping the `choices` likeliest choices at each. `most`: refuse a text
    of more characters than that (PAGE_LIMIT: one for a page) before scoring it."""
    from ..run.trained import Trained, load_checkpoint
    from ..training.evaluation import scoring_ids

    trained = checkpoint if isinstance(checkpoint, Trained) else load_checkpoint(checkpoint, device)
    # Read as eval reads it, never through a cache: an explained text is short.
    _, vocab, data, _ = scoring_ids(path, trained, encoding, cache="none", keep_unknown=True)
    known = len(trained.vocab)
    targets = data[1:].numpy().astype(np.int64)
    is_known = targets < known
    if most is not None and len(targets) > most:
        raise PageTooLong(len(targets))
    scored = data[torch.from_numpy(np.concatenate([[True], is_known]))]
    if len(scored) < 2:
        raise CorpusError(f"{path} has no character the model knows; explain a text in the "
                          "characters it was trained on")
    k = min(choices, known)
    found = score_characters(trained.model, scored, trained.device, k)
    # Every character of the text: an unknown one shows the choices for the next known one,
    # which the model reads right after the text before it.
    order = np.cumsum(is_known) - is_known  # for each character, the next scored one
    logp = np.full(len(targets), np.nan, dtype=np.float32)
    logp[is_known] = found["logp"]
    return Explanation(chars=list(vocab.chars), known=known, ids=targets, logp=logp,
                       top_ids=found["top_ids"][order], top_logp=found["top_logp"][order],
                       rest_logp=found["rest_logp"][order],
                       restart=found["restart"][order] & is_known,
                       source=str(path), checkpoint=str(trained.path),
                       extra={"trained": trained, "scored": scored, "order": order})


@torch.no_grad()
def score_characters(model, data: torch.Tensor, device: torch.device, k: int) -> dict:
    """ln p of every character of `data` after the first, and the `k` likeliest choices, from
    eval's own pass (`evaluation.scored_chunks` over `eval_rows`)."""
    from ..training.batches import eval_rows
    from ..training.evaluation import TEXT_CHUNK, TEXT_ROWS, read_tail, scored_chunks

    n = len(data) - 1
    x, y = eval_rows(data, TEXT_ROWS)
    rows, columns = x.shape
    out = {"logp": np.empty(n, np.float32), "top_ids": np.empty((n, k), np.int64),
           "top_logp": np.empty((n, k), np.float32), "rest_logp": np.empty(n, np.float32),
           "restart": np.zeros(n, bool)}
    out["restart"][columns:rows * columns:columns] = True
    where = np.arange(rows)[:, None] * columns  # row r, column c: character r * columns + c
    state = None
    for start, logits, yb, state in scored_chunks(model, x, y, device, chunk=TEXT_CHUNK):
        _keep(out, (where + np.arange(start, start + yb.shape[1])).ravel(), logits, yb, k)
    if rows * columns < n:  # the few the row cut leaves, read on from the last row as eval does
        logits, targets = read_tail(model, data, rows * columns, state, device)
        _keep(out, np.arange(rows * columns, n), logits, targets, k)
    return out


def _keep(out: dict, positions: np.ndarray, logits: torch.Tensor, targets: torch.Tensor,
          k: int) -> None:
    """Store the scores of a chunk: logits (rows, columns, vocab), targets (rows, columns)."""
    logp = F.log_softmax(logits.float(), dim=-1).flatten(0, 1)
    targets = targets.flatten()
    top_logp, top_ids = logp.topk(k, dim=-1)
    rest = (1 - top_logp.double().exp().sum(-1)).clamp(min=0)
    out["logp"][positions] = logp.gather(1, targets[:, None])[:, 0].cpu().numpy()
    out["top_ids"][positions] = top_ids.cpu().numpy()
    out["top_logp"][positions] = top_logp.cpu().numpy()
    out["rest_logp"][positions] = torch.where(rest > 0, rest.log(),
                                              torch.full_like(rest, -math.inf)).cpu().numpy()
