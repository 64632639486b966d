"""Ways to step a 2-layer LSTM one character at a time on the CPU, timed against songgen's own
int8 stepper on the same untrained model (the one bench_sample.py builds): the README's
"10x would need ..." paragraph rests on these figures.

  stepper        songgen.stepper.Stepper(int8=True), as sampling uses it (logits out)
  C++ int8 cell  torch.ops.quantized.quantized_lstm_cell_dynamic per layer + float head
  compiled fp32  torch.compile of a plain float step (cell, two layers, head); compile time
                 reported separately (needs a C++ compiler; skipped with --no-compile)

    python benchmarks/sample_alternatives.py [--hidden 512] [--steps 2000] [--no-compile]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_sample  # noqa: E402


def per_step_us(sides: dict, steps: int, rounds: int = 5) -> dict[str, float]:
    """Median microseconds per call of each side, the sides taking turns every round."""
    for step in sides.values():
        for _ in range(200):
            step()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, step in sides.items():
            start = time.perf_counter()
            for _ in range(steps):
                step()
            times[name].append((time.perf_counter() - start) / steps * 1e6)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()

    import torch

    from songgen.checkpoint import load_checkpoint
    from songgen.stepper import StepState, Stepper, _int8_linear

    warnings.simplefilter("ignore")  # torch.ao's notices about eager quantisation
    with tempfile.TemporaryDirectory() as tmp:
        path = bench_sample.build_checkpoint(Path(tmp), 2, args.hidden,
                                             bench_sample.vocab_chars(), "cpu")
        trained = load_checkpoint(path, device="cpu")
    model, lstm = trained.model, trained.model.lstm
    start = tuple(t.contiguous() for t in trained.start_state)
    ids = torch.tensor([5])
    sides = {}

    with torch.inference_mode():
        stepper = Stepper(model, int8=True)
        state = StepState(start)
        sides["stepper"] = lambda: stepper.step(ids, state)

        cell = torch.ops.quantized.quantized_lstm_cell_dynamic
        packed = [(_int8_linear(getattr(lstm, f"weight_ih_l{l}"), None),
                   _int8_linear(getattr(lstm, f"weight_hh_l{l}"), None),
                   getattr(lstm, f"bias_ih_l{l}"), getattr(lstm, f"bias_hh_l{l}"))
                  for l in range(2)]
        hc = [[start[0][l].clone(), start[1][l].clone()] for l in range(2)]

        def cpp_cell():
            x = model.embed.weight.index_select(0, ids)
            for l in range(2):
                hc[l] = list(cell(x, hc[l], *packed[l]))
                x = hc[l][0]
            return torch.addmm(stepper.head_b, x, stepper.head_w)
        sides["C++ int8 cell"] = cpp_cell

        if not args.no_compile:
            weights = [(getattr(lstm, f"weight_ih_l{l}").t().contiguous(),
                        getattr(lstm, f"weight_hh_l{l}").t().contiguous(),
                        getattr(lstm, f"bias_ih_l{l}") + getattr(lstm, f"bias_hh_l{l}"))
                       for l in range(2)]

            def float_step(x, h0, c0, h1, c1):
                out = []
                for (w_ih, w_hh, b), h, c in zip(weights, (h0, h1), (c0, c1)):
                    i, f, g, o = (x @ w_ih + h @ w_hh + b).chunk(4, 1)
                    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                    h = torch.sigmoid(o) * torch.tanh(c)
                    out += [h, c]
                    x = h
                return model.head(x), *out

            compiled = torch.compile(float_step, dynamic=False)
            x = model.embed.weight.index_select(0, ids)
            flat = [start[0][0], start[1][0], start[0][1], start[1][1]]
            began = time.perf_counter()
            compiled(x, *flat)
            compile_s = time.perf_counter() - began
            sides["compiled fp32"] = lambda: compiled(x, *flat)
        results = per_step_us(sides, args.steps)

    print(f"2x{args.hidden}, one stream, us per character step (median of 5 rounds of "
          f"{args.steps}, sides in turn):")
    for name, us in results.items():
        print(f"  {name:>14}: {us:7.0f}")
    if not args.no_compile:
        print(f"  torch.compile took {compile_s:.1f} s on its first call")


if __name__ == "__main__":
    main()
