"""Songs per second with a trained checkpoint: N songs written as one batch, N = 1, 8, 64.

    python benchmarks/bench_songs.py CHECKPOINT [--length 3000] [--precision auto]

Songs end where the model ends them (or at --length), so this measures what a user waits for.
"""

import argparse
import time

from songgen.trained import load_checkpoint
from songgen.generate import generate


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("--length", type=int, default=3000)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    trained = load_checkpoint(args.checkpoint, device="cpu")  # the README figures are CPU ones
    generate(trained, num_songs=2, length=200, seed=0, precision=args.precision)  # warm-up
    print("| songs at once | songs/s | characters/s | mean song length |")
    print("|---|---|---|---|")
    for n in (1, 8, 64):
        best = None
        for r in range(args.rounds):
            start = time.perf_counter()
            songs = generate(trained, num_songs=n, length=args.length, seed=r,
                             precision=args.precision)
            seconds = time.perf_counter() - start
            chars = sum(s.chars for s in songs)
            if best is None or n / seconds > best[0]:
                best = (n / seconds, chars / seconds, chars / n)
        print(f"| {n} | {best[0]:.2f} | {best[1]:,.0f} | {best[2]:,.0f} |")


if __name__ == "__main__":
    main()
