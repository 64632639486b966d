"""Fast generation: the LSTM stepped one character at a time on packed weights.

Calling nn.LSTM for a single time step pays the fused RNN kernel's set-up cost on every
character, which dominates at small batch sizes on the CPU. Here each layer is one matrix
multiply into the four gates plus a few element-wise operations. More savings: the first
layer's input projection of every symbol is computed once (a vocabulary x 4*hidden table, so
the embedding and its matrix multiply become a row lookup), the weights are transposed once,
and the state lives in buffers that each step updates in place (see StepState). Results equal
nn.LSTM's up to float rounding (tested).

On CUDA the cost is the other way round: a step is a dozen tiny kernels, and launching them from
Python takes far longer than running them. There the step is captured once per StepState as a
CUDA graph (lazily, on its first step) and replayed afterwards: one launch per character. The
graph's memory is the StepState's own buffers, a static input ids buffer and two static logits
buffers used in turn (see _Graph for why two, and why handing them out is safe). If capture
fails, the step stays eager and the reason is kept in `Stepper.cuda_graph_error`.
"""

from __future__ import annotations

import functools
import warnings
import weakref

import torch

from .lstm import CharLSTM, State


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
    """fp32 or int8 for a model on `device`. auto: int8 weights on the CPU where they sample
    faster at no measurable cost in bits per character (benchmarks/RESULTS.md): from 256
    units on CPUs with AVX-512, from 512 on others (at 256 the int8 kernels of an AVX2-only
    CPU were slower than float32); float32 elsewhere."""
    from ..errors import ConfigError

    if precision not in ("auto", "fp32", "int8"):
        raise ConfigError(f"unknown sampling precision {precision!r}; use auto, fp32 or int8")
    on_cpu = device.type == "cpu"
    if precision == "auto":
        return "int8" if (on_cpu and hidden_size >= _int8_from_units()
                          and int8_available()) else "fp32"
    if precision == "int8" and not (on_cpu and int8_available()):
        raise ConfigError("int8 sampling needs the CPU and a PyTorch build with quantised "
                          "kernels; use fp32")
    return precision


def _int8_from_units() -> int:
    probe = getattr(torch.cpu, "_is_avx512_supported", None)  # private; absent in old releases
    try:
        return 256 if probe and probe() else 512
    except RuntimeError:
        return 512


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
        self._lay_out(h.transpose(0, 1).reshape(n, layers * hidden).clone(),
                      [c[l].clone() for l in range(layers)])

    def head(self, n: int) -> "StepState":
        """The first n streams of this state, sharing its memory: a step of it steps them."""
        part = object.__new__(StepState)
        part._lay_out(self.hs[:n], [c[:n] for c in self.c])
        return part

    def take(self, rows: torch.Tensor) -> "StepState":
        """A new state of these rows of this one (a copy): to step only some streams."""
        part = object.__new__(StepState)
        part._lay_out(self.hs.index_select(0, rows), [c.index_select(0, rows) for c in self.c])
        return part

    def put(self, rows: torch.Tensor, part: "StepState") -> None:
        """Write `part` (from `take(rows)`, stepped since) back into these rows."""
        self.hs.index_copy_(0, rows, part.hs)
        for mine, theirs in zip(self.c, part.c):
            mine.index_copy_(0, rows, theirs)

    def _lay_out(self, hs: torch.Tensor, c: list[torch.Tensor]) -> None:
        n, layers = hs.shape[0], len(c)
        hidden = hs.shape[1] // layers
        self.hs, self.c = hs, c
        self.h = [self.hs[:, l * hidden:(l + 1) * hidden] for l in range(layers)]
        self.inputs = [self.h[0]] + [self.hs[:, (l - 1) * hidden:(l + 1) * hidden]
                                     for l in range(1, layers)]
        self.gates = torch.empty(n, 4 * hidden, dtype=hs.dtype, device=hs.device)
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
        # CUDA graphs (see _Graph): on by default on CUDA; set False to step eagerly.
        self._cuda = self.table.is_cuda and not int8
        self.cuda_graphs = True
        self.cuda_graph_error: str | None = None  # why capture failed, if it did
        self._graphs: weakref.WeakKeyDictionary[StepState, _Graph] = weakref.WeakKeyDictionary()
        self._warm: set[int] = set()  # batch sizes warmed up on the side stream
        self._stream = self._pool = None

    @torch.no_grad()
    def step(self, ids: torch.Tensor, s: StepState) -> torch.Tensor:
        """Feed one symbol per stream (n,); update `s` in place; return logits (n, vocab).

        On CUDA the logits may be a graph's output buffer: they keep their values for as long
        as the caller holds them (or any view of them), see _Graph."""
        if self._cuda and self.cuda_graphs:
            graph = self._graphs.get(s)
            if graph is None:
                graph = self._capture(ids, s)
            if graph is not None and ids.shape == graph.ids.shape and ids.device == graph.device:
                logits = graph.replay(ids)
                if logits is not None:
                    return logits
        return self._step(ids, s)

    def _step(self, ids: torch.Tensor, s: StepState,
              out: torch.Tensor | None = None) -> torch.Tensor:
        """The eager step; with `out`, the logits are written there."""
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
        if out is None:
            return torch.addmm(self.head_b, s.h[-1], self.head_w)
        return torch.addmm(self.head_b, s.h[-1], self.head_w, out=out)

    # -- CUDA graphs -----------------------------------------------------------------------

    def _capture(self, ids: torch.Tensor, s: StepState) -> _Graph | None:
        """Capture `s`'s step (None where it cannot be, or capture failed: eager from then on).

        As PyTorch's CUDA graph notes ask: the first capture for a batch size is preceded by
        eager warm-up steps on a side stream (cuBLAS sets up its workspace for that stream,
        lazily loaded kernels get loaded), run on a scratch copy of the state so that `s` is
        not stepped; capture then happens on that same side stream. Capturing runs nothing,
        so `s` is untouched until the first replay. Each capture synchronises and empties
        the allocator's cache (torch.cuda.graph), once per batch of songs.
        """
        if self.cuda_graph_error is not None or not _graphable(ids, s, self.table):
            return None
        device, n = self.table.device, ids.shape[0]
        try:
            current = torch.cuda.current_stream(device)
            if self._stream is None:
                self._stream = torch.cuda.Stream(device)
            side = self._stream
            # The static buffers are normal tensors even under inference_mode, so that later
            # steps outside it may still write them.
            with torch.inference_mode(False):
                static_ids = torch.empty(n, dtype=ids.dtype, device=device)
                outs = [torch.empty(n, self.head_w.shape[1], dtype=self.head_w.dtype,
                                    device=device) for _ in range(2)]
            side.wait_stream(current)
            graphs = []
            with torch.cuda.stream(side):
                static_ids.copy_(ids)
                if n not in self._warm:
                    layers, hidden = len(s.c), s.c[0].shape[1]
                    scratch = StepState((s.hs.view(n, layers, hidden).transpose(0, 1),
                                         torch.stack(s.c)))
                    for _ in range(2):
                        self._step(static_ids, scratch)
                    del scratch
                    self._warm.add(n)
                for out in outs:
                    graphs.append(_record(lambda out=out: self._step(static_ids, s, out=out),
                                          self._pool, side))
                    self._pool = self._pool or graphs[0].pool()
            current.wait_stream(side)
        except Exception as exc:  # noqa: BLE001 - any failure means: stay eager
            self.cuda_graph_error = f"{type(exc).__name__}: {exc}".strip()
            try:
                torch.cuda.current_stream(device).wait_stream(self._stream)
            except Exception:  # noqa: BLE001
                pass
            return None
        graph = _Graph(static_ids, outs, graphs)
        self._graphs[s] = graph
        return graph


def _graphable(ids: torch.Tensor, s: StepState, table: torch.Tensor) -> bool:
    """Whether this step can be a graph: ids (n,) and the state on the weights' GPU, float
    state of the weights' dtype, and no capture of the caller's own under way."""
    return (ids.is_cuda and ids.dim() == 1 and ids.device == table.device
            and s.hs.device == table.device and s.hs.dtype == table.dtype
            and s.hs.shape[0] == ids.shape[0]
            and not torch.cuda.is_current_stream_capturing())


def _record(body, pool, stream) -> torch.cuda.CUDAGraph:
    """Capture `body()` on `stream` into a new graph sharing `pool` (None: a pool of its own).

    The pool holds only the step's intermediates (its outputs and state live outside it), and
    one stepper's graphs replay one after the other on the caller's stream, so they can share
    it. torch.cuda.graph does the bookkeeping PyTorch's allocator needs around a capture."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool, stream=stream, capture_error_mode="thread_local"):
        body()
    return graph


# The strong reference count of a storage (what torch.compile's CUDA graph trees use to know
# whether an output is still held); None in a PyTorch without it, and then outputs are copied.
_use_count = getattr(torch._C, "_storage_Use_Count", None)


class _Graph:
    """One StepState's step, captured twice: the same work, the logits written to buffer 0 or
    to buffer 1.

    Why two, and why it is safe to hand a buffer out: the caller gets a fresh tensor object on
    a buffer (a detached alias) and may keep it, or views of it, for as long as it likes. Each
    alias or view holds the buffer's storage, so the storage's reference count tells whether
    anyone outside still does. A step replays the graph of a buffer nobody holds; when both
    are held, it returns None and the caller steps eagerly into fresh memory. So values the
    caller holds are never overwritten. sample._steps holds the previous step's logits when it
    asks for the next (`logits = stepper.step(chosen, layers)` rebinds them only afterwards)
    and nothing older, so it alternates between the two buffers with no copy and never falls
    back; a caller that keeps every step's logits (a list) gets correct values too, at eager
    speed after the first two steps, and one that clones them keeps graph speed.
    """

    __slots__ = ("ids", "device", "outs", "graphs", "storages", "free", "turn")

    def __init__(self, ids: torch.Tensor, outs: list[torch.Tensor],
                 graphs: list[torch.cuda.CUDAGraph]):
        self.ids, self.device, self.outs, self.graphs = ids, ids.device, outs, graphs
        self.turn = 0
        if _use_count is not None:
            self.storages = [out.untyped_storage()._cdata for out in outs]
            # The count with no alias handed out: the buffers' own references only.
            self.free = [_use_count(storage) for storage in self.storages]

    def replay(self, ids: torch.Tensor) -> torch.Tensor | None:
        """One step from `ids` (n,); the logits, or None when both buffers are still held."""
        if _use_count is None:
            self.ids.copy_(ids)
            self.graphs[0].replay()
            return self.outs[0].clone()
        k = self.turn
        if _use_count(self.storages[k]) > self.free[k]:
            k = 1 - k
            if _use_count(self.storages[k]) > self.free[k]:
                return None
        self.ids.copy_(ids)
        self.graphs[k].replay()
        self.turn = 1 - k
        return self.outs[k].detach()
