"""The model: embedding -> multi-layer LSTM over the whole sequence -> dropout -> linear; the
shapes of its weights, and the helpers that carry its state between steps. What a model of a
given shape costs (parameters, memory, seconds a step) is songgen.model.probes'."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig

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
        if config.styles:
            # A vector per style (row 0: no style) added to every character's embedding
            # (songgen.model.style_input). Made last and zero, so that the other weights are
            # drawn as for a model without styles, and the model starts as that model.
            self.style = nn.Embedding(config.styles + 1, config.embed_dim)
            nn.init.zeros_(self.style.weight)

    def forward(self, x: torch.Tensor, state: State | None = None,
                style: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:
        # x: (batch, time) int64 -> logits: (batch, time, vocab); state: 2 x (layers, batch, hidden)
        # style: (batch, time) style ids; None: no style (for a model with styles)
        inputs = self.embed(x)
        if self.config.styles:
            inputs = inputs + (self.style.weight[0] if style is None else self.style(style))
        out, state = self.lstm(inputs, state)
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
    if config.styles:
        shapes["style.weight"] = (config.styles + 1, E)
    return shapes


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


def detach(state: State | None, dtype: torch.dtype | None = None) -> State | None:
    """Cut the graph between truncated-BPTT steps but keep the values (in `dtype` if given)."""
    if state is None:
        return None
    return tuple(t.detach() if dtype is None else t.detach().to(dtype) for t in state)


def load_grown(model: CharLSTM, state: dict) -> None:
    """Load weights of a model with a smaller vocabulary (or fewer styles): the rows of the old
    symbols (styles) are copied, the new ones keep their fresh initialisation. Everything else
    must match exactly; a base without styles gives a model with styles all but their vectors."""
    own = model.state_dict()
    for name, value in state.items():
        if (name in ("embed.weight", "head.weight", "head.bias", "style.weight")
                and value.shape[1:] == own[name].shape[1:]):
            own[name][: value.shape[0]] = value
        else:
            own[name] = value
    model.load_state_dict(own)
