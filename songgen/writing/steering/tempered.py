"""How far the draw strays from the model's likeliest symbols: temperature, then top-k and
top-p (the last steps before the draw; temperature 0 is no step but a greedy draw)."""

from __future__ import annotations

import numpy as np
import torch

from ..drawing import filter_logits
from .step import Step


class Temperature(Step):
    """Scores divided by the temperature: below 1 the likely symbols more so, above 1 less."""

    name = "temperature"

    def __init__(self, temperature: float):
        self.temperature = temperature

    def steer(self, scores: np.ndarray) -> np.ndarray:
        return scores / np.float32(self.temperature)

    def explain(self, row: int) -> list[str]:
        return [f"scores divided by the temperature, {self.temperature:g}"]


class TopK(Step):
    """Only the k likeliest symbols may be drawn."""

    name = "top-k"

    def __init__(self, k: int):
        self.k = k

    def steer(self, scores: np.ndarray) -> np.ndarray:
        return filter_logits(torch.from_numpy(scores), self.k, 1.0).numpy()

    def explain(self, row: int) -> list[str]:
        return [f"only the {self.k} likeliest symbols may be drawn"]


class TopP(Step):
    """Only the likeliest symbols whose probability together reaches p may be drawn."""

    name = "top-p"

    def __init__(self, p: float):
        self.p = p

    def steer(self, scores: np.ndarray) -> np.ndarray:
        return filter_logits(torch.from_numpy(scores), 0, self.p).numpy()

    def explain(self, row: int) -> list[str]:
        return [f"only the likeliest symbols that together reach {self.p:g} may be drawn"]


def tempered(temperature: float, top_k: int, top_p: float) -> list[Step]:
    """The steps for these options: none at temperature 0 (the draw takes the likeliest
    symbol, which no filter changes) or where an option leaves the scores as they are."""
    if temperature == 0:
        return []
    steps: list[Step] = [] if temperature == 1 else [Temperature(temperature)]
    if top_k:
        steps.append(TopK(top_k))
    if top_p < 1:
        steps.append(TopP(top_p))
    return steps
