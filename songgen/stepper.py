"""Fast generation: the LSTM stepped one character at a time on packed weights.

Calling nn.LSTM for a single time step pays the fused RNN kernel's set-up cost on every
character, which dominates at small batch sizes on the CPU. Here each layer is one matrix
multiply into the four gates plus a few element-wise operations. Two more savings:
the first layer's input projection of every symbol is computed once (a vocabulary x 4*hidden
table, so the embedding and its matrix multiply become a row lookup), and the weights are
transposed once, not per step. Results equal nn.LSTM's up to float rounding (tested).
"""

from __future__ import annotations

import functools
import warnings

import torch

from .model import CharLSTM, State


def _int8_linear(weight: torch.Tensor, bias: torch.Tensor | None):
    """Prepacked int8 weights (one scale per output row) for torch's dynamic int8 linear."""
    scales = (weight.abs().amax(dim=1).clamp(min=1e-8) / 127).double()
    zeros = torch.zeros(weight.shape[0], dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's notice that eager quantisation moves on
        q = torch.quantize_per_channel(weight.float(), scales, zeros, 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(q, bias)


@functools.lru_cache(maxsize=None)
def int8_available() -> bool:
    """Whether this PyTorch build can run dynamic int8 linear layers on the CPU."""
    try:
        packed = _int8_linear(torch.ones(4, 4), torch.zeros(4))
        torch.ops.quantized.linear_dynamic(torch.ones(1, 4), packed)
        return True
    except (RuntimeError, AttributeError, NotImplementedError):
        return False


class Stepper:
    """`int8`: keep the recurrent and upper-layer weights as int8 (a quarter of the memory
    traffic per character, 2-5x faster on the CPU); costs about 0.1% in bits per character
    (see README). The embedding table and the output layer stay in float."""

    def __init__(self, model: CharLSTM, int8: bool = False):
        lstm, cfg = model.lstm, model.config
        self.hidden, self.layers, self.int8 = cfg.hidden_size, cfg.layers, int8
        with torch.no_grad():
            bias = [getattr(lstm, f"bias_ih_l{l}") + getattr(lstm, f"bias_hh_l{l}")
                    for l in range(self.layers)]
            # (vocab, 4*hidden): embedding -> first layer's input gates, bias included.
            self.table = torch.addmm(bias[0], model.embed.weight, lstm.weight_ih_l0.t())
            self.w_hh = [getattr(lstm, f"weight_hh_l{l}").t().contiguous()
                         for l in range(self.layers)]
            self.w_ih = [None] + [getattr(lstm, f"weight_ih_l{l}").t().contiguous()
                                  for l in range(1, self.layers)]
            self.bias = bias
            self.head_w = model.head.weight.t().contiguous()
            self.head_b = model.head.bias.detach().clone()
            if int8:
                # Layer 0: recurrent weights only; above: input and recurrent side by side.
                self.packed = [_int8_linear(lstm.weight_hh_l0, None)] + [
                    _int8_linear(torch.cat([getattr(lstm, f"weight_ih_l{l}"),
                                            getattr(lstm, f"weight_hh_l{l}")], 1), bias[l])
                    for l in range(1, self.layers)]

    @staticmethod
    def split(state: State) -> list[list[torch.Tensor]]:
        """nn.LSTM's state, 2 x (layers, n, hidden), as [h, c] per layer."""
        h, c = state
        return [[h[l].contiguous(), c[l].contiguous()] for l in range(h.shape[0])]

    @torch.no_grad()
    def step(self, ids: torch.Tensor, state: list[list[torch.Tensor]]) -> torch.Tensor:
        """Feed one symbol per stream (n,); update `state` in place; return logits (n, vocab)."""
        H = self.hidden
        x = None
        for l in range(self.layers):
            h, c = state[l]
            if self.int8:
                linear = torch.ops.quantized.linear_dynamic
                gates = (self.table[ids] + linear(h, self.packed[0]) if l == 0 else
                         linear(torch.cat([x, h], 1), self.packed[l]))
            elif l == 0:
                gates = torch.addmm(self.table[ids], h, self.w_hh[0])
            else:
                gates = torch.addmm(self.bias[l], x, self.w_ih[l]).addmm_(h, self.w_hh[l])
            # PyTorch's gate order: input, forget, cell candidate, output.
            i, f, _, o = torch.sigmoid(gates).chunk(4, 1)
            c = torch.addcmul(f * c, i, torch.tanh(gates[:, 2 * H:3 * H]))
            h = o * torch.tanh(c)
            state[l] = [h, c]
            x = h
        return torch.addmm(self.head_b, x, self.head_w)
