"""Shared helpers of every suite: data paths, side-by-side timing, fresh worker subprocesses,
the machine's description, argument parsing and the table.

Every figure in the table is a ratio measured in one run: the songgen side and its reference
run alternately (A B A B ..., the order rotated each round), and the reported ratio is the
median of the per-round ratios, so a machine that gets busier half-way affects both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# glibc malloc tuning that songgen.model.devices.keep_freed_memory() applies from inside the process.
MALLOC_TUNED = {"MALLOC_MMAP_THRESHOLD_": str(256 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def data_dir() -> Path:
    """The shared corpora: $SONGGEN_BENCH_DATA, else ../shared/data beside the repository."""
    for candidate in (os.environ.get("SONGGEN_BENCH_DATA"), REPO.parent / "shared" / "data",
                      REPO / "data"):
        if candidate and (Path(candidate) / "child_ballads.txt").exists():
            return Path(candidate)
    raise SystemExit("child_ballads.txt not found: set SONGGEN_BENCH_DATA to the folder holding it")


def corpus_path(name: str = "child_ballads.txt") -> Path:
    return data_dir() / name


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries only the table."""
    print(message, file=sys.stderr, flush=True)


def median(values) -> float:
    return statistics.median(values)


def median_ratio(num: list[float], den: list[float]) -> float:
    """Median of the per-round ratios (round i of one side against round i of the other)."""
    return median([a / b for a, b in zip(num, den)])


def interleave(sides: dict[str, Callable[[int], float]], rounds: int) -> dict[str, list[float]]:
    """Run every side once per round, rotating the order each round (A B C, B C A, C A B, ...).

    Each callable gets the round number and returns one measurement.
    """
    names = list(sides)
    results: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            results[name].append(sides[name](r))
    return results


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without malloc tuning, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


def run_worker(script: Path, spec: dict, env: dict[str, str] | None = None,
               timeout: float = 1800) -> dict:
    """Run `script --worker SPEC.json` in a fresh interpreter and return the JSON it writes.

    The worker's stderr (progress bars included) goes to a temporary file, shown on failure.
    """
    with tempfile.TemporaryDirectory(prefix="songgen-bench-") as tmp:
        spec = {**spec, "out": str(Path(tmp) / "result.json"), "tmp": tmp}
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        err_path = Path(tmp) / "stderr.txt"
        with open(err_path, "wb") as err:
            proc = subprocess.run([sys.executable, str(script), "--worker", str(spec_path)],
                                  stdout=subprocess.DEVNULL, stderr=err, env=env or clean_env(),
                                  timeout=timeout, cwd=tmp)
        if proc.returncode != 0 or not Path(spec["out"]).exists():
            tail = err_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{script.name} worker failed (exit {proc.returncode}):\n{tail}")
        return json.loads(Path(spec["out"]).read_text())


class Worker:
    """A fresh interpreter running `script --serve`: it takes one JSON spec per line on stdin
    and answers one JSON result per line, so sides can take turns without paying start-up in
    every round. Its stderr (progress bars included) goes to a temporary file."""

    def __init__(self, script: Path, env: dict[str, str] | None = None):
        self.tmp = tempfile.TemporaryDirectory(prefix="songgen-bench-")
        self.err_path = Path(self.tmp.name) / "stderr.txt"
        self.err = open(self.err_path, "wb")
        self.script = script
        self.proc = subprocess.Popen([sys.executable, str(script), "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, env=env or clean_env(), cwd=self.tmp.name,
                                     text=True)

    def __call__(self, spec: dict) -> dict:
        self.proc.stdin.write(json.dumps({**spec, "tmp": self.tmp.name}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            tail = self.err_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.script.name} worker failed (exit {self.proc.returncode}):"
                               f"\n{tail}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        self.tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def worker_main(handlers: dict[str, Callable[[dict], dict]]) -> bool:
    """In a worker subprocess (`--worker SPEC.json`: one job; `--serve`: jobs from stdin): run
    the handler named by each spec. Returns False when this process is not a worker."""
    if len(sys.argv) == 2 and sys.argv[1] == "--serve":
        # Answers go to the original stdout; anything else printed goes to stderr.
        answers = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
        for line in sys.stdin:
            spec = json.loads(line)
            answers.write(json.dumps(handlers[spec["kind"]](spec)) + "\n")
            answers.flush()
        return True
    if len(sys.argv) != 3 or sys.argv[1] != "--worker":
        return False
    spec = json.loads(Path(sys.argv[2]).read_text())
    result = handlers[spec["kind"]](spec)
    Path(spec["out"]).write_text(json.dumps(result))
    return True


def rss_kib(field: str = "VmRSS") -> int:
    """VmRSS (now) or VmHWM (peak so far) of this process, in KiB, from /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    import resource  # not Linux: ru_maxrss (KiB on Linux, bytes on macOS) is the peak

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def timer() -> float:
    return time.perf_counter()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# -- results and the table ------------------------------------------------------------------

@dataclass
class Row:
    what: str
    config: str
    songgen: str
    reference: str
    ratio: float | None
    target: str = ""        # e.g. ">= 0.95x"; empty when there is none
    met: bool | None = None  # whether the target is met


def ratio_row(what: str, config: str, ours: list[float], ref: list[float], unit: str,
              target: float | None = None, higher_is_better: bool = True,
              absolute: str = "", absolute_met: bool | None = None,
              ref_name: str = "") -> Row:
    """One line: raw medians of both sides and the median per-round ratio ours / reference."""
    ratio = median_ratio(ours, ref)
    met, goal = None, absolute
    if target is not None:
        met = ratio >= target if higher_is_better else ratio <= target
        goal = f"{'>=' if higher_is_better else '<='} {target:g}x"
    if absolute_met is not None:
        met = absolute_met if met is None else met and absolute_met
    reference = fmt(median(ref), unit) + (f" ({ref_name})" if ref_name else "")
    return Row(what, config, fmt(median(ours), unit), reference, ratio, goal, met)


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s"
    if value >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.2f} {unit}"


def table(rows: list[Row]) -> str:
    head = ["what", "configuration", "songgen", "reference", "ratio", "target"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
        target = r.target + ("" if r.met is None else (" ok" if r.met else " MISSED"))
        lines.append("| " + " | ".join([r.what, r.config, r.songgen, r.reference, ratio,
                                        target.strip()]) + " |")
    return "\n".join(lines)


def arg_parser(description: str, prog: str | None = None,
               side_by_side: bool = True) -> argparse.ArgumentParser:
    """A suite's parser; side_by_side adds the options every songgen-against-reference suite
    takes (--device, --quick, --rounds, --threads)."""
    p = argparse.ArgumentParser(description=description, prog=prog)
    if not side_by_side:
        return p
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--quick", action="store_true", help="fewer steps and rounds")
    p.add_argument("--rounds", type=int, default=None, help="override the number of rounds")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads on both sides (default: torch's own default here)")
    return p


def default_threads() -> int:
    import torch

    return torch.get_num_threads()


def side_by_side(parts: dict[str, Callable[..., list[Row]]], description: str,
                 argv: list[str], prog: str | None = None) -> None:
    """A songgen-against-reference suite: parse its options, run its parts (all, or those
    named by --only) and print one table, headed by the machine and the options."""
    parser = arg_parser(description, prog)
    if len(parts) > 1:
        parser.add_argument("--only", default=",".join(parts),
                            help="comma-separated parts to run (default all): " + ", ".join(parts))
    else:
        parser.set_defaults(only=",".join(parts))
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in parts]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(parts)}")
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here")
    if args.threads:
        torch.set_num_threads(args.threads)
    start = timer()
    rows = []
    for name in chosen:
        began = timer()
        rows += parts[name](device=args.device, quick=args.quick, rounds=args.rounds,
                            threads=args.threads)
        log(f"{name}: {timer() - began:.0f} s")
    print(f"{prog or 'benchmarks'} {' '.join(argv)}: {machine(args.device)}; "
          f"took {timer() - start:.0f} s\n")
    print(table(rows))
    missed = [r for r in rows if r.met is False]
    if missed:
        print(f"\n{len(missed)} line(s) below target.")


def cpu_model() -> str:
    """The CPU's model name (lscpu's, else /proc/cpuinfo's, else the platform's)."""
    import platform

    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine(device: str = "cpu") -> str:
    """One line naming what a figure was measured on."""
    import platform

    import torch

    gpu = f", {torch.cuda.get_device_name()}" if device.startswith("cuda") else ""
    return (f"{cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
            f"{gpu}, torch {torch.__version__}, Python {platform.python_version()}")
