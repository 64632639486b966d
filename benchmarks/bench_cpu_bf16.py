"""CPU training in bf16 autocast against fp32: a bare 2x256 nn.LSTM loop, chars/s of each.

Embedding 64 -> 2x256 LSTM -> linear over 98 symbols, batch 32 x seq 100, AdamW, carried
detached state, 2 torch threads: songgen's default model and batch shape. Both variants live in
one process with their own model and optimiser and take turns (blocks of about 2 s each,
the order swapped every round, after an untimed warm-up), so a machine that gets busier affects
both. bf16 pays off only on CPUs with native bf16 arithmetic (avx512_bf16, AMX); elsewhere the
ratio says what autocast costs there.

    python benchmarks/bench_cpu_bf16.py [--seconds 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path


def cpu_facts() -> tuple[str, list[str]]:
    """The CPU's model name and which of its flags matter for bf16."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    return name, sorted(f for f in flags if f in ("avx512_bf16", "amx_bf16", "amx_tile",
                                                  "avx512f", "avx2"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="total timed seconds")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(args.threads)
    vocab, embed_dim, hidden, B, T = 98, 64, 256, 32, 100
    gen = torch.Generator().manual_seed(0)
    data = torch.randint(0, vocab, (B, 50 * T + 1), generator=gen)

    def make():
        torch.manual_seed(1234)
        modules = nn.ModuleList([nn.Embedding(vocab, embed_dim),
                                 nn.LSTM(embed_dim, hidden, 2, batch_first=True),
                                 nn.Linear(hidden, vocab)])
        return {"modules": modules, "state": None, "col": 0,
                "opt": torch.optim.AdamW(modules.parameters(), lr=3e-3, weight_decay=0.01)}

    def train(side: dict, bf16: bool, budget: float) -> tuple[int, float]:
        embed, lstm, head = side["modules"]
        steps, start = 0, time.perf_counter()
        while steps == 0 or time.perf_counter() - start < budget:
            i = side["col"]
            side["col"] = (i + T) % (data.shape[1] - T - 1)
            x, y = data[:, i:i + T], data[:, i + 1:i + T + 1]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out, state = lstm(embed(x), side["state"])
                logits = head(out)
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
            side["opt"].zero_grad(set_to_none=True)
            loss.backward()
            side["opt"].step()
            side["state"] = (state[0].detach().float(), state[1].detach().float())
            steps += 1
        return steps * B * T, time.perf_counter() - start

    sides = {"fp32": (make(), False), "bf16": (make(), True)}
    name, flags = cpu_facts()
    print(f"cpu: {name}; flags: {' '.join(flags) or 'none of avx2/avx512f/avx512_bf16/amx'}; "
          f"torch {torch.__version__}, {args.threads} threads", flush=True)
    for label, (side, bf16) in sides.items():  # warm-up: first kernels, allocator growth
        try:
            train(side, bf16, 1.0)
        except RuntimeError as exc:  # e.g. oneDNN has no bf16 LSTM for this CPU
            first = (str(exc).splitlines() or [""])[0]
            print(f"{label}: cannot train here ({first}); no ratio")
            if not any(f in flags for f in ("avx512_bf16", "amx_bf16")):
                print("note: this CPU has no native bf16 (neither avx512_bf16 nor amx_bf16)")
            return
    block = 2.0
    rounds = max(1, int(args.seconds / (2 * block)))
    rates: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for r in range(rounds):
        order = ["fp32", "bf16"] if r % 2 == 0 else ["bf16", "fp32"]
        for label in order:
            side, bf16 = sides[label]
            chars, seconds = train(side, bf16, block)
            rates[label].append(chars / seconds)
    ratios = [b / f for b, f in zip(rates["bf16"], rates["fp32"])]
    fp32, bf16 = statistics.median(rates["fp32"]), statistics.median(rates["bf16"])
    print(f"fp32 {fp32:,.0f} chars/s, bf16 autocast {bf16:,.0f} chars/s, ratio bf16/fp32 "
          f"{statistics.median(ratios):.2f}x (median of {rounds} alternated rounds of "
          f"{block:g} s each)")
    if not any(f in flags for f in ("avx512_bf16", "amx_bf16")):
        print("note: this CPU has no native bf16 (neither avx512_bf16 nor amx_bf16), so bf16 "
              "here is emulated; the ratio is not what a bf16 CPU would give")


if __name__ == "__main__":
    main()
