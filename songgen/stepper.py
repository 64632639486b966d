"""Fast generation: the LSTM stepped one character at a time on packed weights.

Calling nn.LSTM for a single time step pays the fused RNN kernel's set-up cost on every
character, which dominates at small batch sizes on the CPU. Here each layer is one matrix
multiply into the four gates plus a few element-wise operations. More savings: the first
layer's input projection of every symbol is computed once (a vocabulary x 4*hidden table, so
the embedding and its matrix multiply become a row lookup), the weights are transposed once,
and the state lives in buffers that each step updates in place (see StepState). Results equal
nn.LSTM's up to float rounding (tested).
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


def sampling_precision(precision: str, device: torch.device, hidden_size: int) -> str:
    """fp32 or int8 for a model on `device`. auto: int8 weights on the CPU for models of 256
    units or more, where they sample faster at no measurable cost in bits per character
    (benchmarks/RESULTS.md); float32 elsewhere."""
    from .errors import ConfigError

    if precision not in ("auto", "fp32", "int8"):
        raise ConfigError(f"unknown sampling precision {precision!r}; use auto, fp32 or int8")
    on_cpu = device.type == "cpu"
    if precision == "auto":
        return "int8" if on_cpu and hidden_size >= 256 and int8_available() else "fp32"
    if precision == "int8" and not (on_cpu and int8_available()):
        raise ConfigError("int8 sampling needs the CPU and a PyTorch build with quantised "
                          "kernels; use fp32")
    return precision


class StepState:
    """The LSTM state of n streams, laid out for in-place steps.

    Every layer's h sits side by side in one (n, layers*hidden) buffer, so the input of layer
    l > 0, [new h of layer l-1, old h of layer l], is a view of it rather than a concatenation.
    The gate buffers and their views are made once, not per step: at one stream, each
    tensor operation saved is a measurable share of a character's time.
    """

    def __init__(self, state: State):
        """From nn.LSTM's state, 2 x (layers, n, hidden); a copy."""
        h, c = state
        layers, n, hidden = h.shape
        self.hs = h.transpose(0, 1).reshape(n, layers * hidden).clone()
        self.h = [self.hs[:, l * hidden:(l + 1) * hidden] for l in range(layers)]
        self.inputs = [self.h[0]] + [self.hs[:, (l - 1) * hidden:(l + 1) * hidden]
                                     for l in range(1, layers)]
        self.c = [c[l].clone() for l in range(layers)]
        self.gates = torch.empty(n, 4 * hidden, dtype=h.dtype, device=h.device)
        # PyTorch's gate order: input, forget, cell candidate, output. The candidate's tanh is
        # taken out of place, so these column views are only ever read.
        self.i, self.f, _, self.o = self.gates.chunk(4, 1)
        self.tanh_c = torch.empty_like(self.c[0])


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
            # Per layer, the weights that multiply the layer's input view: layer 0 its own h,
            # the others [h below, own h], as (in, 4*hidden).
            weights = [lstm.weight_hh_l0] + [
                torch.cat([getattr(lstm, f"weight_ih_l{l}"), getattr(lstm, f"weight_hh_l{l}")], 1)
                for l in range(1, self.layers)]
            self.bias = [None] + bias[1:]
            if int8:
                self.packed = [_int8_linear(w, b) for w, b in zip(weights, self.bias)]
            else:
                self.w = [w.t().contiguous() for w in weights]
            self.head_w = model.head.weight.t().contiguous()
            self.head_b = model.head.bias.detach().clone()

    @torch.no_grad()
    def step(self, ids: torch.Tensor, s: StepState) -> torch.Tensor:
        """Feed one symbol per stream (n,); update `s` in place; return logits (n, vocab)."""
        H = self.hidden
        for l in range(self.layers):
            if l == 0:
                rows = self.table.index_select(0, ids)
                if self.int8:
                    pre = torch.ops.quantized.linear_dynamic(s.inputs[0], self.packed[0])
                    pre += rows
                else:
                    pre = rows.addmm_(s.inputs[0], self.w[0])
            elif self.int8:
                pre = torch.ops.quantized.linear_dynamic(s.inputs[l], self.packed[l])
            else:
                pre = torch.addmm(self.bias[l], s.inputs[l], self.w[l])
            torch.sigmoid(pre, out=s.gates)
            c = s.c[l].mul_(s.f).addcmul_(s.i, torch.tanh(pre[:, 2 * H:3 * H]))
            torch.mul(s.o, torch.tanh(c, out=s.tanh_c), out=s.h[l])
        return torch.addmm(self.head_b, s.h[-1], self.head_w)
