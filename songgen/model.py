"""The model: embedding -> multi-layer LSTM over the whole sequence -> dropout -> linear."""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig

State = tuple[torch.Tensor, torch.Tensor]


class CharLSTM(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        self.lstm = nn.LSTM(config.embed_dim, config.hidden_size, config.layers,
                            batch_first=True,
                            dropout=config.dropout if config.layers > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        # x: (batch, time) int64 -> logits: (batch, time, vocab); state: 2 x (layers, batch, hidden)
        out, state = self.lstm(self.embed(x), state)
        return self.head(self.drop(out)), state


def detach(state: State | None) -> State | None:
    """Cut the graph between truncated-BPTT steps but keep the values."""
    return None if state is None else (state[0].detach(), state[1].detach())
