"""The model: embedding -> multi-layer LSTM over the whole sequence -> dropout -> linear."""

from __future__ import annotations

import math

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


def weight_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in CharLSTM(config).state_dict(), worked out without building
    the model (even on the meta device that costs PyTorch a second of imports)."""
    V, E, H = config.vocab_size, config.embed_dim, config.hidden_size
    shapes: dict[str, tuple[int, ...]] = {"embed.weight": (V, E)}
    for l in range(config.layers):
        shapes.update({f"lstm.weight_ih_l{l}": (4 * H, E if l == 0 else H),
                       f"lstm.weight_hh_l{l}": (4 * H, H),
                       f"lstm.bias_ih_l{l}": (4 * H,), f"lstm.bias_hh_l{l}": (4 * H,)})
    shapes.update({"head.weight": (V, H), "head.bias": (V,)})
    return shapes


def parameter_count(config: ModelConfig) -> int:
    return sum(math.prod(shape) for shape in weight_shapes(config).values())


def training_bytes(config: ModelConfig, rows: int, seq_len: int) -> int:
    """A rough estimate of the memory one training process needs for the model: fp32 weights,
    gradients and AdamW's two moments (16 bytes a parameter), a low-precision weight copy (2),
    and what backpropagation keeps (about 12 values per unit, layer and character, and three
    copies of the logits). It is checked against measured peaks in benchmarks/RESULTS.md; the
    check it serves only has to catch models that are far too big, before they are built."""
    per_char = 4 * (12 * config.hidden_size * config.layers + 3 * config.vocab_size)
    return 18 * parameter_count(config) + rows * seq_len * per_char


@torch.no_grad()
def context_state(model: CharLSTM, ids: torch.Tensor, device: torch.device) -> State:
    """The LSTM state after reading `ids` (1-D), batch of one: 2 x (layers, 1, hidden)."""
    was_training = model.training
    model.eval()
    if len(ids):
        _, state = model(ids.to(device).long()[None])
    else:
        zeros = torch.zeros(model.config.layers, 1, model.config.hidden_size, device=device)
        state = (zeros, zeros.clone())
    model.train(was_training)
    return state


def detach(state: State | None) -> State | None:
    """Cut the graph between truncated-BPTT steps but keep the values."""
    return None if state is None else (state[0].detach(), state[1].detach())


def load_grown(model: CharLSTM, state: dict) -> None:
    """Load weights of a model with a smaller vocabulary: the rows of the old symbols are copied,
    the new symbols keep their fresh initialisation. Everything else must match exactly."""
    own = model.state_dict()
    for name, value in state.items():
        if name in ("embed.weight", "head.weight", "head.bias") and value.shape[1:] == own[name].shape[1:]:
            own[name][: value.shape[0]] = value
        else:
            own[name] = value
    model.load_state_dict(own)
