"""What one validation pass costs, against a training step, for a model size: the time of
songgen.evaluation.evaluate() (as training calls it) on validation texts of several lengths.

    python benchmarks/bench_eval.py [--hidden 512] [--chars 5800 300000]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--chars", type=int, nargs="+", default=[5_800, 300_000])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=100)
    args = parser.parse_args()

    from songgen.config import ModelConfig
    from songgen.devices import autocast, keep_freed_memory, resolve_precision
    from songgen.evaluation import evaluate
    from songgen.model import CharLSTM

    keep_freed_memory()
    cpu = torch.device("cpu")
    dtype = resolve_precision("auto", cpu)
    model = CharLSTM(ModelConfig(vocab_size=98, embed_dim=64, hidden_size=args.hidden, layers=2))
    optimizer = torch.optim.AdamW(model.parameters())
    x = torch.randint(0, 98, (args.batch, args.seq + 1))

    def step():
        with autocast(cpu, dtype):
            logits, _ = model(x[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), x[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(10):
        step()
    per_step = (time.perf_counter() - start) / 10
    print(f"2x{args.hidden}, {dtype}: training step (batch {args.batch} x seq {args.seq}) "
          f"{per_step * 1e3:.0f} ms")
    for n in args.chars:
        val = torch.randint(0, 98, (n,), dtype=torch.uint8)
        evaluate(model, val, cpu, dtype, rows=128, chunk=256)  # warm-up
        start = time.perf_counter()
        evaluate(model, val, cpu, dtype, rows=128, chunk=256)
        took = time.perf_counter() - start
        print(f"  validation of {n:,} characters: {took:.3f} s = {took / n * 1e6:.1f} us a "
              f"character = {took / per_step:.1f} training steps")


if __name__ == "__main__":
    main()
