"""Training speed on a busy machine: `songgen train` alone, two at once, and beside a busy
non-songgen process, each run a real `songgen train` subprocess on the demo songs (2x256 model,
batch 32 x seq 100, the defaults), its speed read from its own metrics.jsonl.

    python benchmarks/bench_busy.py [--seconds 20] [--variant NAME=ENV_OR_ARGS ...]

A variant is extra environment (`KEY=VALUE`) and/or songgen options (`--threads 1`), e.g.
`--variant passive="OMP_WAIT_POLICY=PASSIVE"`. Scenarios, for each variant, one after the
other (never two scenarios at once): alone; two runs started together (each one's speed);
alone beside `python -c "while True: pass"`. Ratios are against the variant's own lone run
and against the first variant's lone run, measured in this same call.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def start(folder: Path, seconds: float, env: dict, args: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "songgen", "train", "--time-limit", f"{seconds}s",
               "--eval-every", "100000", "--patience", "0", "--keep-last", "0", "-q",
               "--checkpoint-dir", str(folder), *args]
    return subprocess.Popen(command, env={**os.environ, **env}, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def speed(proc: subprocess.Popen, folder: Path) -> float:
    _, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"songgen train failed: {err.strip()[-500:]}")
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return float(rows[-1]["chars_per_sec"])


def scenario(kind: str, seconds: float, env: dict, args: list[str]) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        folders = [Path(tmp) / "a", Path(tmp) / "b"]
        busy = None
        if kind == "busy":
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            runs = [start(folders[0], seconds, env, args)]
            if kind == "two":
                runs.append(start(folders[1], seconds, env, args))
            return [speed(proc, folder) for proc, folder in zip(runs, folders)]
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()


def parse_variant(text: str) -> tuple[str, dict, list[str]]:
    name, _, spec = text.partition("=")
    env, args = {}, []
    for word in shlex.split(spec):
        if "=" in word and not word.startswith("-"):
            key, value = word.split("=", 1)
            env[key] = value
        else:
            args.append(word)
    return name, env, args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME=SPEC: environment KEY=VALUE words and songgen options")
    opts = parser.parse_args()
    variants = [parse_variant(v) for v in opts.variant] or [("default", {}, [])]
    print(f"| variant | alone chars/s | two at once, each | two / alone | beside a busy loop "
          f"| busy / alone | alone / first variant alone |")
    print("|---|---|---|---|---|---|---|")
    first = None
    for name, env, args in variants:
        alone = scenario("alone", opts.seconds, env, args)[0]
        two = scenario("two", opts.seconds, env, args)
        busy = scenario("busy", opts.seconds, env, args)[0]
        first = first or alone
        print(f"| {name} | {alone:,.0f} | {two[0]:,.0f} / {two[1]:,.0f} | "
              f"{min(two) / alone:.2f}x | {busy:,.0f} | {busy / alone:.2f}x | "
              f"{alone / first:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
