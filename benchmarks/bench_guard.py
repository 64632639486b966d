"""Plagiarism guard speed: indexing a corpus and checking songs against it.

    python benchmarks/bench_guard.py ../shared/data/child_ballads.txt [--checkpoint ck/best.pt]

Without a checkpoint the "songs" are 1,500-character stretches of the corpus with a few
characters changed (so there are long copies to find); with one, real generated songs.
"""

import argparse
import random
import statistics
import time

from songgen.copycheck import CopyIndex
from songgen.lyrics import join_songs, read_songs


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("text")
    parser.add_argument("--checkpoint")
    parser.add_argument("--songs", type=int, default=20)
    args = parser.parse_args()
    text = join_songs(read_songs(args.text))
    t = time.perf_counter()
    index = CopyIndex(text)
    build = time.perf_counter() - t
    if args.checkpoint:
        from songgen.generate import generate
        songs = [s.text for s in generate(args.checkpoint, num_songs=args.songs, seed=1)]
    else:
        rng = random.Random(0)
        songs = []
        for _ in range(args.songs):
            start = rng.randrange(len(text) - 1500)
            chars = list(text[start:start + 1500].replace("\x00", "\n"))
            for _ in range(5):
                chars[rng.randrange(len(chars))] = "~"
            songs.append("".join(chars))
    times, longest = [], []
    for song in songs:
        t = time.perf_counter()
        longest.append(index.longest_copy(song).length)
        times.append(time.perf_counter() - t)
    print(f"corpus {len(text) / 1e6:.2f} M characters: index built in {build:.2f} s; "
          f"checking a song ({statistics.mean(map(len, songs)):.0f} characters on average): "
          f"median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms; "
          f"longest copies {sorted(longest)}")


if __name__ == "__main__":
    main()
