"""Where a training step's time goes: cProfile of songgen.training.train() for a few steps of
a model size, the functions with the most time of their own.

    python benchmarks/profile_train.py [--hidden 512] [--layers 2] [--batch 64] [--seq 100]
                                       [--steps 30] [--text ../shared/data/child_ballads_small.txt]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=100)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--text", default=str(common.corpus_path("child_ballads_small.txt")))
    args = parser.parse_args()

    from songgen.config import TrainConfig
    from songgen.training import train

    folder = tempfile.mkdtemp(prefix="songgen-profile-")
    try:
        config = TrainConfig(seq_len=args.seq, batch_size=args.batch, steps=args.steps,
                             device="cpu", checkpoint_dir=folder)
        model = dict(hidden_size=args.hidden, layers=args.layers)
        profile = cProfile.Profile()
        profile.runcall(train, args.text, model=model, config=config, quiet=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{args.layers}x{args.hidden}, batch {args.batch} x seq {args.seq}, {args.steps} steps "
          "(one evaluation and save at the end; first-call imports included):")
    pstats.Stats(profile).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
