"""The LSTM's cells over a text: each cell's value after every character (tanh of its cell
state, between -1 and 1), and the cells whose value best follows a feature of the lyrics
(the position in the line, being inside a title, the last line of a stanza, being inside
quotes), found by correlating every cell with each feature over the text.

nn.LSTM gives the hidden output of its last layer only, so the layers are run one at a time
with their own weights; the cell state is recovered from the output without a Python loop
over time: h = o * tanh(c), and the output gate o is worked out for every step at once from
the layer's input and its previous output.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..text.lyrics import TITLE_MARK
from ..text.vocab import EOS

# The features a cell may follow: name -> what the page calls it.

FEATURES = {"line position": "the position in the line",
            "title": "the inside of a title",
            "stanza end": "the last line of a stanza",
            "quotes": "the inside of quotes"}
SUGGESTED = 3  # cells suggested for each feature


@torch.no_grad()
def cell_values(model, data: torch.Tensor, device: torch.device, rows: int = 32) -> np.ndarray:
    """tanh(cell state) of every cell (all layers, layer 0 first) after reading each symbol of
    `data`: (len(data), layers * hidden) float32. Read in up to `rows` contiguous rows at
    once, each from a blank state, at least 1,000 symbols each (as eval reads a text)."""
    n = len(data)
    rows = max(1, min(rows, n // 1000))
    columns = -(-n // rows)
    padded = torch.cat([data.long(), data.new_zeros(rows * columns - n).long()])
    x = padded.view(rows, columns).to(device)
    layer_input = model.embed(x)
    values = []
    for layer in range(model.config.layers):
        h, tanh_c = _layer(model.lstm, layer, layer_input)
        values.append(tanh_c)
        layer_input = h
    # (rows, columns, layers * hidden) -> one row per symbol, the padding dropped
    return torch.cat(values, -1).flatten(0, 1)[:n].float().cpu().numpy()


def _layer(lstm: nn.LSTM, layer: int, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer of `lstm` over `inputs` (rows, columns, features) from a blank state: its
    outputs h and tanh of its cell states, both (rows, columns, hidden)."""
    w_ih, w_hh = (getattr(lstm, f"weight_{k}_l{layer}") for k in ("ih", "hh"))
    b = getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
    hidden = w_hh.shape[1]
    single = nn.LSTM(inputs.shape[-1], hidden, batch_first=True).to(inputs.device)
    single.load_state_dict({"weight_ih_l0": w_ih, "weight_hh_l0": w_hh,
                            "bias_ih_l0": getattr(lstm, f"bias_ih_l{layer}"),
                            "bias_hh_l0": getattr(lstm, f"bias_hh_l{layer}")})
    h, _ = single(inputs)
    before = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], 1)  # h of the step before
    # Gates are i, f, g, o in PyTorch's order: o is the last quarter.
    o = torch.sigmoid(inputs @ w_ih[3 * hidden:].T + before @ w_hh[3 * hidden:].T
                      + b[3 * hidden:])
    return h, (h / o.clamp(min=1e-6)).clamp(-1, 1)


def features(text: str) -> dict[str, np.ndarray]:
    """Each feature's value at every character of `text` (songs each followed by EOS)."""
    n = len(text)
    line_pos = np.zeros(n, np.float32)
    title = np.zeros(n, np.float32)
    stanza_end = np.zeros(n, np.float32)
    quotes = np.zeros(n, np.float32)
    pos, line_start, first_line, inside = 0, 0, True, False
    lines: list[tuple[int, int]] = []  # (start, end) of each line of the current song
    for i, c in enumerate(text):
        line_pos[i] = pos
        if c in "\"\u201c\u201d":
            inside = {"\u201c": True, "\u201d": False}.get(c, not inside)
        elif inside:
            quotes[i] = 1
        if c == "\n" or c == EOS:
            if first_line and text.startswith(TITLE_MARK, line_start):
                title[line_start:i] = 1
            lines.append((line_start, i))
            first_line = False
            pos, line_start = 0, i + 1
            if c == EOS:
                _mark_stanza_ends(lines, stanza_end)
                lines, first_line, inside = [], True, False
        else:
            pos += 1
    return {"line position": line_pos, "title": title, "stanza end": stanza_end,
            "quotes": quotes}


def _mark_stanza_ends(lines: list[tuple[int, int]], out: np.ndarray) -> None:
    """Mark the last line of every stanza of a song (a non-blank line before a blank one or
    the song's end)."""
    for k, (start, end) in enumerate(lines):
        blank_next = k + 1 == len(lines) or lines[k + 1][0] == lines[k + 1][1]
        if end > start and blank_next:
            out[start:end] = 1


def suggest(values: np.ndarray, found: dict[str, np.ndarray],
            count: int = SUGGESTED) -> dict[str, list[tuple[int, float]]]:
    """For each feature, the `count` cells whose values correlate best with it (either sign),
    as (cell, Pearson r), strongest first; [] for a feature the text does not have."""
    centred = values - values.mean(0)
    spread = np.sqrt((centred ** 2).sum(0))
    out = {}
    for name, signal in found.items():
        s = signal - signal.mean()
        norm = float(np.sqrt((s ** 2).sum()))
        if norm == 0:
            out[name] = []
            continue
        r = (s @ centred) / np.maximum(spread * norm, 1e-12)
        best = np.argsort(-np.abs(r))[:count]
        out[name] = [(int(c), round(float(r[c]), 3)) for c in best]
    return out
