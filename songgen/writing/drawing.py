"""Drawing one symbol per stream from the steered scores: the exponential race that draws from a
softmax without computing it, and the top-k and top-p filters (the steps that use them:
songgen/writing/steering/tempered.py). Temperature 0 draws nothing: the sampler takes the
likeliest symbol."""

from __future__ import annotations

import math

import torch

_TINY = torch.finfo(torch.float32).tiny


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Keep the `top_k` most likely symbols and the smallest set whose probability reaches
    `top_p`; the rest get -inf. logits: (batch, vocab)."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a symbol when the ones before it already reach top_p (the first always stays).
        drop = probs.cumsum(dim=-1) - probs >= top_p
        drop = torch.zeros_like(drop).scatter(-1, order, drop)
        logits = logits.masked_fill(drop, -math.inf)
    return logits


def draw(scores: torch.Tensor, gen: torch.Generator, temperature: float = 1.0) -> torch.Tensor:
    """One symbol per row of `scores` (n, vocab), drawn from softmax(scores / temperature).

    Exponential race: with E ~ Exp(1), the argmax of p / E is a draw from p, and so is the
    argmax of scores - temperature * log E (the same order, in logs). That is a few cheap
    operations, where torch.multinomial and a softmax cost several times more for one row.
    The clamp keeps log 0 out, so a symbol whose score is -inf can never win.
    """
    race = torch.empty_like(scores).exponential_(generator=gen).clamp_(min=_TINY).log_()
    return torch.add(scores, race, alpha=-temperature).argmax(dim=-1)
