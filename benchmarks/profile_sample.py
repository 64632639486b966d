"""Where one song's sampling time goes: cProfile of songgen.sample.generate() for one song with
an untrained model (the one bench_sample.py builds), per character.

    python benchmarks/profile_sample.py [--layers 2] [--hidden 512] [--length 2000]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_sample  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--length", type=int, default=2000)
    args = parser.parse_args()

    from songgen.checkpoint import load_checkpoint
    from songgen.sample import generate

    with tempfile.TemporaryDirectory() as tmp:
        path = bench_sample.build_checkpoint(Path(tmp), args.layers, args.hidden,
                                             bench_sample.vocab_chars(), "cpu")
        trained = load_checkpoint(path, device="cpu")
    generate(trained, length=200, seed=1)  # warm-up
    start = time.perf_counter()
    generate(trained, length=args.length, seed=1)
    print(f"{(time.perf_counter() - start) / args.length * 1e6:.0f} us per character, "
          f"{args.layers}x{args.hidden}, one song, no profiler")
    profile = cProfile.Profile()
    profile.runcall(generate, trained, length=args.length, seed=1)
    stats = pstats.Stats(profile)
    print(f"with the profiler, per character (total time of each call site / {args.length}):")
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:12]
    for (file, line, name), (_, calls, own, _, _) in rows:
        where = name if file == "~" else f"{Path(file).name}:{line} {name}"
        print(f"  {own / args.length * 1e6:7.1f} us  {calls:>6} calls  {where}")


if __name__ == "__main__":
    main()
