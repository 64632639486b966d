"""Issue #23's figures: rhyme, chorus and real words of a corpus, of free sampling and of
songcraft sampling (the defaults), side by side, at temperatures 0.8 and 1.0; with the longest
passage copied from the corpus, bits per character and sampling speed (1 song and 8).

    python benchmarks/songcraft.py --checkpoint CK --corpus TEXT [--songs 20] [--json OUT]

CK is a model trained on TEXT (for example `songgen train TEXT --time-limit 5m`); TEXT is read
for the corpus's own figures and the copy check. Run it on an idle machine: the speed ratio is
the median of per-round ratios, free and songcraft written alternately with the same seed.
`--tiny` is a quick smoke run (2 songs, 1 speed round).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from songgen.trained import load_checkpoint  # noqa: E402
from songgen.copycheck import open_copy_index  # noqa: E402
from songgen.sampling import SampleOptions, generate  # noqa: E402
from songgen.lyrics import read_songs  # noqa: E402
from songgen.songcraft import allowed_words, measure, words_of  # noqa: E402

FREE = dict(rhyme="off", chorus="off", words=1.0)


def figures(songs: list[str], words) -> dict:
    m = measure(songs)
    written = [w for song in songs for w in words_of(song)]
    return {"rhyming_stanzas": round(m.rhyme_rate, 3), "repeat_songs": round(m.repeat_rate, 3),
            "real_words": round(sum(words.is_word(w) for w in written) / max(len(written), 1), 4),
            "songs": m.songs, "stanzas": m.stanzas}


def sample_figures(trained, words, index, opts: SampleOptions) -> dict:
    songs = generate(trained, opts, copy_index=index)
    out = figures([s.text for s in songs], words)
    out["copy_median"] = statistics.median(s.copy.length for s in songs)
    out["bits_per_char"] = round(statistics.mean(s.bits_per_char for s in songs), 4)
    out["chars"] = sum(s.chars for s in songs)
    return out


def speed(trained, n: int, temperature: float, rounds: int) -> float:
    """Songcraft's characters per second over free sampling's (median of per-round ratios)."""
    ratios = []
    # Warm up with whole songs: the word lists, masks and rhyme index are built once per
    # process (the dictionary's rhyme index alone takes a second or two), not per song.
    for extra in (FREE, {}):
        generate(trained, SampleOptions(num_songs=n, temperature=temperature, seed=99, **extra))
    for r in range(rounds):
        rate = {}
        for name, extra in (("free", FREE), ("craft", {}))[:: 1 if r % 2 == 0 else -1]:
            opts = SampleOptions(num_songs=n, temperature=temperature, seed=100 + r, **extra)
            start = time.perf_counter()
            songs = generate(trained, opts)
            rate[name] = sum(s.chars for s in songs) / (time.perf_counter() - start)
        ratios.append(rate["craft"] / rate["free"])
    return round(statistics.median(ratios), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--songs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.tiny:
        args.songs, args.rounds = 2, 1
    trained = load_checkpoint(args.checkpoint, device="cpu")
    corpus_songs = read_songs(args.corpus)
    measures = measure(corpus_songs)
    words = allowed_words(measures)
    index = open_copy_index(args.corpus, trained)
    result = {"checkpoint": args.checkpoint, "corpus": args.corpus,
              "corpus_figures": figures(corpus_songs, words)}
    for temperature in (0.8, 1.0):
        for name, extra in (("free", FREE), ("songcraft", {})):
            opts = SampleOptions(num_songs=args.songs, temperature=temperature, seed=args.seed,
                                 corpus=args.corpus, **extra)
            result[f"{name}@{temperature}"] = sample_figures(trained, words, index, opts)
        result[f"speed@{temperature}"] = {
            f"{n} song{'s' * (n > 1)}": speed(trained, n, temperature, args.rounds)
            for n in (1, 8)}
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
