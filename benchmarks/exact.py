"""Exact on every CPU (#22): resumed runs against straight ones, torchrun against one process,
and the bf16 probe's answers over repeated starts, as one table.

    python benchmarks/exact.py [--quick] [--only resumes|torchrun|probes]

1. Resumes: a straight `songgen train` of STEPS steps against the same run stopped at step k
   and resumed to STEPS, in auto precision, each pair with its own seed and k; half of them
   under ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 (a CPU with AVX-512 BF16 and no AMX: the bf16
   probe decides), half with a busy process (`while True: pass`) beside the resumes (the
   thread tuner starts on fewer threads, or changes them). Bit-identical or not, and the
   largest weight difference.
2. torchrun: 2 processes against 1 (the same batch, split in two), in fp32 (dropout 0:
   weights to 1e-4) and in auto precision (final validation losses within 1%).
3. The bf16 probe under ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16, in a fresh process each start:
   its ratio, choice, time, and whether it saw itself disturbed.

Run it on an otherwise idle machine; the CPU's model name heads the table. --quick is a
smoke test of the script itself (tiny model, few steps, one of each), not a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CAPPED = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown (no lscpu)"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def songgen(args: list[str], env: dict | None = None, procs: int = 1) -> None:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc-per-node", str(procs), "-m", "songgen"] if procs > 1 else
                [sys.executable, "-m", "songgen"])
    run = subprocess.run([*launcher, "train", *args, "-q"], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, **(env or {})})
    if run.returncode:
        raise SystemExit(f"songgen train {' '.join(args)} failed:\n{run.stderr[-1500:]}")


def last(folder: Path) -> dict:
    import torch

    return torch.load(folder / "last.pt", weights_only=True)


def weight_gap(a: dict, b: dict) -> float:
    return max((x - b["model_state"][k]).abs().max().item()
               for k, x in a["model_state"].items())


def resumes(root: Path, model: list[str], steps: int, stops: list[int]) -> list[tuple]:
    rows = []
    for i, stop in enumerate(stops):
        busy_beside = i % 2 == 1
        env = {} if busy_beside else CAPPED
        # Dropout and the schedule pinned: a run of `--steps stop` would otherwise choose them
        # for its shorter budget (lower dropout, a rate decaying to `stop`), which is a
        # different run, not a resume that went wrong.
        common = [*model, "--seed", str(100 + i), "--eval-every", str(max(steps // 3, 1)),
                  "--dropout", "0.1", "--lr-schedule", "none"]
        songgen([*common, "--steps", str(steps), "--checkpoint-dir", str(root / f"s{i}")], env)
        songgen([*common, "--steps", str(stop), "--checkpoint-dir", str(root / f"r{i}")], env)
        busy = None
        if busy_beside:
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(0.5)
        try:
            songgen(["--resume", "--steps", str(steps), "--checkpoint-dir", str(root / f"r{i}")],
                    env)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
        a, b = last(root / f"s{i}"), last(root / f"r{i}")
        gap = weight_gap(a, b)
        threads = sorted({h.get("threads") for h in b["history"]} - {None})
        rows.append(("busy process beside" if busy_beside else "ISA=AVX512_CORE_BF16",
                     f"stop {stop}", a["choices"]["precision"]["value"],
                     "bit-identical" if gap == 0 else f"DIFFERS by {gap:.3g}",
                     f"threads seen {threads}"))
    return rows


def distributed(root: Path, model: list[str], steps: int) -> list[tuple]:
    rows = []
    for precision in ("fp32", "auto"):
        args = [*model, "--steps", str(steps), "--precision", precision,
                "--eval-every", str(steps)]
        if precision == "fp32":
            args += ["--dropout", "0"]
        songgen([*args, "--checkpoint-dir", str(root / f"one-{precision}")])
        songgen([*args, "--checkpoint-dir", str(root / f"two-{precision}")], procs=2)
        one, two = last(root / f"one-{precision}"), last(root / f"two-{precision}")
        a, b = one["history"][-1]["val_loss"], two["history"][-1]["val_loss"]
        rows.append((f"torchrun 2 vs 1, {precision}", two["choices"]["precision"]["value"],
                     f"weights differ by {weight_gap(one, two):.3g}",
                     f"val loss {a:.4f} vs {b:.4f} ({abs(a - b) / a:.2%})"))
    return rows


PROBE = """
import json, time, torch
from songgen.config import ModelConfig
from songgen.devices import resolve_precision
from songgen.model import bf16_speedup
config = ModelConfig(vocab_size=62, hidden_size={hidden})
seen = {{}}
def probe():
    seen["probe"] = bf16_speedup(config)
    return seen["probe"]
began = time.perf_counter()
dtype, why = resolve_precision("auto", torch.device("cpu"), probe)
p = seen.get("probe")
print(json.dumps({{"ratio": p and p.value, "disturbed": p and p.disturbed,
                  "choice": why.split(":")[0], "seconds": time.perf_counter() - began}}))
"""


def probes(starts: int, hidden: int) -> list[tuple]:
    rows = []
    for i in range(starts):
        out = subprocess.run([sys.executable, "-c", PROBE.format(hidden=hidden)],
                             capture_output=True, text=True, cwd=REPO,
                             env={**os.environ, **CAPPED})
        if out.returncode:
            raise SystemExit(f"the probe failed:\n{out.stderr[-1500:]}")
        r = json.loads(out.stdout)
        ratio = "not probed" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        rows.append((f"probe start {i + 1}, 2x{hidden}", r["choice"], ratio,
                     f"{r['seconds']:.2f} s", r["disturbed"] or "undisturbed"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test of the script")
    parser.add_argument("--only", choices=["resumes", "torchrun", "probes"],
                        help="one part of the table (the probes want an idle machine)")
    args = parser.parse_args()
    if args.quick:
        model = ["--hidden-size", "32", "--embed-dim", "16", "--seq-len", "32", "--batch-size", "8"]
        steps, stops, starts, hidden = 12, [5, 7], 2, 64
    else:
        model = ["--hidden-size", "128", "--seq-len", "100", "--batch-size", "32"]
        steps, stops, starts, hidden = 120, [17, 41, 59, 88, 23, 50, 71, 99], 10, 256
    print(f"CPU: {cpu_name()}; {os.cpu_count()} logical CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = []
        if args.only in (None, "resumes"):
            rows += resumes(root, model, steps, stops)
        if args.only in (None, "torchrun"):
            rows += distributed(root, model, steps)
        if args.only in (None, "probes"):
            rows += probes(starts, hidden)
    width = [max(len(str(r[i])) if i < len(r) else 0 for r in rows) for i in range(5)]
    for row in rows:
        print("  ".join(str(v).ljust(width[i]) for i, v in enumerate(row)).rstrip())
    same = sum("bit-identical" in r for r in rows)
    if args.only in (None, "resumes"):
        print(f"resumed runs bit-identical: {same} of {len(stops)}")


if __name__ == "__main__":
    main()
