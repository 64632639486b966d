"""The training defaults against today's and against hand-set configurations, for the same
wall-clock budget (issue #14).

For each text and budget it trains, ONE RUN AT A TIME (two trainings on 2 cores collapse),
`songgen train TEXT --time-limit BUDGET` with:

- `new`: no flags: the automatic dropout, weight decay and learning-rate schedule;
- `old`: the defaults before #14 (`--layers 2 --hidden-size 256 --dropout 0.1 --lr 3e-3 --weight-decay 0.01 --patience 5
  --lr-schedule none`: a fixed learning rate, early stopping after 5 evaluations);
- `new-fixed-lr`: the new defaults with `--lr-schedule none` (what the schedule alone brings);
- a small grid of hand-set configurations (size x dropout x learning rate), which keep the new
  schedule, so they say whether the automatic regularisation is the right one.

Each run's raw result (best validation loss, when, steps, the configuration, the automatic
choices, its metrics) is kept as one JSON file in benchmarks/results/defaults/, so the study can
be stopped and started again (runs whose result exists are skipped) and its table rebuilt
(`--table`). An SVG of the curves per text and budget goes beside them.

    python -m benchmarks defaults                 # the whole study: about 1 h 50 min
    python -m benchmarks defaults --texts demo,small --budget 2m
    python -m benchmarks defaults --table         # the table and curves, from the results
    python -m benchmarks defaults --texts demo --budget 15s --configs new,old --out /tmp/s
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from songgen.run.curves import LN2, curves_svg, read_metrics  # noqa: E402

OUT = HERE / "results" / "defaults"
KEEP = REPO / "checkpoints" / "study-defaults"  # each run's best model, to sample songs from

OLD = ["--layers", "2", "--hidden-size", "256", "--dropout", "0.1", "--lr", "3e-3", "--weight-decay", "0.01", "--patience", "5",
       "--lr-schedule", "none"]


def _grid(layers: int, hidden: int, dropout: float, lr: float) -> list[str]:
    return ["--layers", str(layers), "--hidden-size", str(hidden), "--dropout", str(dropout),
            "--lr", str(lr)]


CONFIGS = {
    "new": [],
    "old": OLD,
    "new-fixed-lr": ["--lr-schedule", "none"],
    "2x128-d0.1-lr3e-3": _grid(2, 128, 0.1, 3e-3),
    "2x256-d0.1-lr3e-3": _grid(2, 256, 0.1, 3e-3),
    "2x256-d0.3-lr3e-3": _grid(2, 256, 0.3, 3e-3),
    "2x256-d0.5-lr3e-3": _grid(2, 256, 0.5, 3e-3),
    "2x256-d0.3-lr6e-3": _grid(2, 256, 0.3, 6e-3),
    "2x512-d0.3-lr2e-3": _grid(2, 512, 0.3, 2e-3),
    "2x512-d0.1-lr2e-3": _grid(2, 512, 0.1, 2e-3),
}
# 2 minutes each on the small texts: the defaults, today's, the ablation and six hand-set ones.
FULL_GRID = ["new", "old", "new-fixed-lr", "2x128-d0.1-lr3e-3", "2x256-d0.1-lr3e-3",
             "2x256-d0.3-lr3e-3", "2x256-d0.5-lr3e-3", "2x256-d0.3-lr6e-3", "2x512-d0.3-lr2e-3"]
# 10 minutes each on 3 MB of ballads: fewer.
SMALL_GRID = ["new", "old", "2x256-d0.1-lr3e-3", "2x512-d0.3-lr2e-3", "2x512-d0.1-lr2e-3"]

# name -> (path, default budget in seconds, configurations)
TEXTS = {
    "demo": ("data", 120, FULL_GRID),
    "small": ("child_ballads_small.txt", 120, FULL_GRID),
    "shakespeare": ("tinyshakespeare.txt", 120, FULL_GRID),
    "ballads": ("child_ballads.txt", 600, SMALL_GRID),
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def data_dir() -> Path:
    for candidate in (os.environ.get("SONGGEN_BENCH_DATA"), REPO.parent / "shared" / "data"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise SystemExit("the shared corpora were not found: set SONGGEN_BENCH_DATA to their folder")


def text_path(name: str) -> Path:
    path = TEXTS[name][0]
    return REPO / path if path == "data" else data_dir() / path


def seconds(text: str) -> float:
    from songgen.cli.options import Duration

    return float(Duration().convert(text, None, None))


def result_path(out: Path, text: str, budget: float, config: str) -> Path:
    return out / f"{text}-{int(budget)}s-{config}.json"


def run_one(text: str, budget: float, config: str, threads: int | None,
            keep: Path | None = None) -> dict:
    """Train once, in a fresh interpreter, and keep what it reached (and its best model in
    `keep`, when given)."""
    from songgen.run import checkpoint as ckpt

    with tempfile.TemporaryDirectory(prefix="songgen-study-") as tmp:
        folder = Path(tmp) / "run"
        command = [sys.executable, "-m", "songgen", "train", str(text_path(text)),
                   "--checkpoint-dir", str(folder), "--time-limit", f"{budget:g}",
                   *CONFIGS[config]]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        started = time.monotonic()
        proc = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=tmp)
        wall = time.monotonic() - started
        if proc.returncode != 0:
            raise SystemExit(f"{text} {config} failed (exit {proc.returncode}):\n"
                             f"{proc.stderr[-3000:]}")
        curve = read_metrics(folder / "metrics.jsonl")
        last = ckpt.peek(folder / "last.pt")
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / "best.pt", keep / f"{text}-{int(budget)}s-{config}.pt")
        lines = [line for line in proc.stderr.splitlines()
                 if not line.startswith("step ") and "\r" not in line]
    best = min(curve, key=lambda r: r["val_loss"])
    header = lines[:30]
    stopped = next((line for line in reversed(lines) if line.startswith("stopped:")), None)
    return {
        "text": text, "corpus": str(text_path(text)), "budget_seconds": budget,
        "config": config, "flags": CONFIGS[config],
        "best_val_loss": best["val_loss"], "best_val_bpc": best["val_loss"] / LN2,
        "best_step": best["step"], "best_elapsed": best["elapsed"],
        "steps": last.step, "epochs": last.epoch, "elapsed": last.elapsed,
        "stopped": stopped, "wall_seconds": round(wall, 1),
        "model": last.model_config.to_dict(), "training": last.train_config.to_dict(),
        "choices": last.choices, "header": header, "curve": curve,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "torch_threads": threads,
    }


def load_results(out: Path) -> list[dict]:
    results = []
    for path in sorted(out.glob("*.json")):
        try:
            results.append(json.loads(path.read_text()))
        except ValueError:
            log(f"skipping {path.name}: not a result")
    return results


def table(results: list[dict]) -> str:
    """One block per text and budget: each configuration's best validation loss, when it was
    reached, the steps made, and how far it is from the new defaults."""
    lines = []
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["text"], r["budget_seconds"]), []).append(r)
    for (text, budget), runs in sorted(groups.items(), key=lambda kv: (list(TEXTS).index(
            kv[0][0]) if kv[0][0] in TEXTS else 99, kv[0][1])):
        new = next((r for r in runs if r["config"] == "new"), None)
        lines += ["", f"### {text} ({Path(runs[0]['corpus']).name}), {budget:g} s budget", "",
                  "| configuration | best val nats/char | bits/char | at | steps | vs new | "
                  "dropout | weight decay | stopped |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(runs, key=lambda r: r["best_val_loss"]):
            versus = ("" if new is None or r is new else
                      f"{(r['best_val_loss'] / new['best_val_loss'] - 1) * 100:+.1f}%")
            stopped = (r.get("stopped") or "").replace("stopped: ", "").split(" at step")[0]
            lines.append(
                f"| {r['config']} | {r['best_val_loss']:.4f} | {r['best_val_bpc']:.3f} | "
                f"{r['best_elapsed']:.0f} s | {r['steps']:,} | {versus} | "
                f"{r['model']['dropout']} | {r['training']['weight_decay']} | {stopped} |")
        if new and new.get("choices"):
            lines += ["", "New defaults chose: " + "; ".join(
                f"{name} {c['value']} ({c['reason']})" for name, c in new["choices"].items())]
    return "\n".join(lines).lstrip() + "\n"


def draw(results: list[dict], out: Path) -> list[Path]:
    """An SVG of the curves per text and budget: new, old, the fixed-lr ablation and the best
    of the grid (8 runs at most, one colour each)."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["text"], r["budget_seconds"]), []).append(r)
    written = []
    for (text, budget), runs in groups.items():
        first = [r for r in runs if r["config"] in ("new", "old", "new-fixed-lr")]
        rest = sorted((r for r in runs if r not in first), key=lambda r: r["best_val_loss"])
        chosen = (first + rest)[:8]
        svg = curves_svg([(r["config"], r["curve"]) for r in chosen])
        path = out / f"{text}-{int(budget)}s.svg"
        path.write_text(svg, encoding="utf-8")
        written.append(path)
    return written


def suite_defaults(argv: list[str], prog: str | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog=prog)
    parser.add_argument("--texts", default=",".join(TEXTS),
                        help=f"comma-separated, of {', '.join(TEXTS)} [all]")
    parser.add_argument("--budget", help="one budget for every text (e.g. 2m, 15s) instead of "
                        "each text's own (2 min; 10 min for ballads)")
    parser.add_argument("--configs", help="comma-separated configuration names instead of each "
                        f"text's own list; known: {', '.join(CONFIGS)}")
    parser.add_argument("--out", type=Path, default=OUT, help=f"results folder [{OUT}]")
    parser.add_argument("--keep", type=Path, default=KEEP, help="folder for each run's best "
                        f"model, to sample from afterwards [{KEEP.relative_to(REPO)}]")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the runs [torch's own]")
    parser.add_argument("--table", action="store_true", help="only rebuild the table and the "
                        "curves from the results kept")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and their "
                        "expected time, run nothing")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.table:
        texts = [t.strip() for t in args.texts.split(",") if t.strip()]
        unknown = [t for t in texts if t not in TEXTS]
        if unknown:
            parser.error(f"unknown text {', '.join(unknown)}; known: {', '.join(TEXTS)}")
        plan = []
        for text in texts:
            budget = seconds(args.budget) if args.budget else TEXTS[text][1]
            configs = args.configs.split(",") if args.configs else TEXTS[text][2]
            for config in configs:
                if config not in CONFIGS:
                    parser.error(f"unknown configuration {config}; known: {', '.join(CONFIGS)}")
                plan.append((text, budget, config))
        todo = [p for p in plan if not result_path(args.out, *p).exists()]
        # Loading the corpus, building the model and the last save come on top of the budget.
        expected = sum(budget + 15 for _, budget, _ in todo)
        log(f"{len(plan)} runs, {len(plan) - len(todo)} already done; about "
            f"{expected / 60:.0f} min for the rest, one at a time")
        if args.dry_run:
            for text, budget, config in todo:
                print(f"{text}\t{budget:g} s\t{config}\t{' '.join(CONFIGS[config])}")
            return
        for i, (text, budget, config) in enumerate(todo, 1):
            log(f"[{i}/{len(todo)}] {text}, {budget:g} s: {config} {' '.join(CONFIGS[config])}")
            result = run_one(text, budget, config, args.threads, args.keep)
            path = result_path(args.out, text, budget, config)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(result, indent=1) + "\n")
            os.replace(tmp, path)  # a stopped study never leaves half a result
            log(f"    best {result['best_val_loss']:.4f} nats/char at "
                f"{result['best_elapsed']:.0f} s, {result['steps']:,} steps")
    results = load_results(args.out)
    if not results:
        raise SystemExit(f"no results in {args.out}")
    text = table(results)
    (args.out / "TABLE.md").write_text(text, encoding="utf-8")
    for path in draw(results, args.out):
        log(f"curves: {path}")
    print(text, end="")


if __name__ == "__main__":
    suite_defaults(sys.argv[1:])
