"""Sampling speed before and after a change: this checkout's generate() against the one of a
git revision, and both against the bare nn.LSTM step loop, in one process, interleaved.

The revision's `songgen` package is extracted with `git archive` into a temporary folder and
imported under another name, so both versions sample from the very same untrained checkpoint
(the one bench_sample.py builds) in turns, and a machine that gets busier slows both alike.

    python benchmarks/ab_sample.py REV [--hidden 512] [--songs 1] [--length 1000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import importlib
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_sample  # noqa: E402
import common  # noqa: E402

OLD = "songgen_before"


def import_revision(rev: str, folder: Path):
    """The `songgen` package of git revision `rev`, importable as OLD."""
    archive = subprocess.run(["git", "archive", rev, "songgen"], cwd=HERE.parent, check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    (folder / "songgen").rename(folder / OLD)
    sys.path.insert(0, str(folder))
    return importlib.import_module(f"{OLD}.checkpoint"), importlib.import_module(f"{OLD}.sample")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rev", help="the git revision to compare with, e.g. HEAD~1")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--songs", type=int, default=1)
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    from songgen.checkpoint import load_checkpoint
    from songgen.sample import generate

    with tempfile.TemporaryDirectory() as tmp:
        old_checkpoint, old_sample = import_revision(args.rev, Path(tmp))
        path = bench_sample.build_checkpoint(Path(tmp), 2, args.hidden,
                                             bench_sample.vocab_chars(), "cpu")
        sides = {"this checkout": (load_checkpoint(path, device="cpu"), generate),
                 args.rev: (old_checkpoint.load_checkpoint(path, device="cpu"),
                            old_sample.generate)}
        bare = bench_sample.Bare(path, "cpu")

        def timed(name):
            def run(r):
                start = common.timer()
                if name == "bare":
                    made = bare.step_loop(args.songs, args.length, seed=r)
                else:
                    trained, gen = sides[name]
                    songs = gen(trained, num_songs=args.songs, length=args.length, seed=r,
                                temperature=1.0)
                    made = sum(len(s.text) for s in songs)
                return made / (common.timer() - start)
            return run

        for trained, gen in sides.values():  # warm-up
            gen(trained, num_songs=args.songs, length=50, seed=0)
        res = common.interleave({name: timed(name) for name in [*sides, "bare"]}, args.rounds)
    print(f"2x{args.hidden}, {args.songs} song(s) x {args.length} chars, chars/s (median of "
          f"{args.rounds} rounds):")
    for name, values in res.items():
        print(f"  {name:>16}: {common.median(values):>9,.0f}")
    new, old = res["this checkout"], res[args.rev]
    print(f"  this checkout / {args.rev}: {common.median_ratio(new, old):.2f}x; against the "
          f"bare step loop {common.median_ratio(new, res['bare']):.2f}x "
          f"(was {common.median_ratio(old, res['bare']):.2f}x)")


if __name__ == "__main__":
    main()
