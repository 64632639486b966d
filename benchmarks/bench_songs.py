"""The `songs` suite: trained models writing songs, in two parts (`--only shape,speed`; by
default `shape`).

    python -m benchmarks songs NAME=CHECKPOINT[:CORPUS] ... [--songs 100]
        [--temps 0.5 0.8 1.0] [--length 3000] [--seed 1] [--only shape,speed]

`shape`: songs shaped like songs (issue #15), shaped against free sampling, side by side.

For each checkpoint and temperature, `--songs` songs are written as one batch with
`shape="song"` and with `shape="free"` (the same seed), and scored for:

- well formed: a `# Title` line, a blank line after it, at least two stanzas, and an ending
  (the end-of-song symbol, not the --length cap). For a corpus without the title convention
  (a play) the title conditions do not apply.
- lengths: the share of songs within the corpus's 5th-95th percentile of characters (from the
  shape the checkpoint recorded, or measured from CORPUS when it has none); "n/a" for a corpus
  with too few songs for a length distribution (one long text).
- bits/char: the model's own surprise at what it wrote (Song.bits_per_char, averaged over all
  generated characters); shaping must not make the words worse.
- guided ends: the share of endings that came where the shape steered the song.

Prints a markdown table on stdout; raw results (per song: stop, length, form, bits/char) go to
benchmarks/results/shape-DATE.json, with two shaped example songs per checkpoint.

`speed`: songs per second of each checkpoint on the CPU, N songs written as one batch, N = 1, 8,
64, songs of up to --length characters ending where the model ends them (what a user waits
for); the best of --rounds (default 2) per N, at --precision (default auto).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import common  # noqa: E402
from songgen import load_checkpoint  # noqa: E402
from songgen.sampling import generate  # noqa: E402
from songgen.shape import SongShape, song_form  # noqa: E402


def well_formed(song, titled: bool) -> bool:
    form = song_form(song.text)
    ok = song.stop == "end" and form["stanzas"] >= 2
    if titled:
        ok = ok and form["title"] and form["blank_after_title"]
    return ok


def summarise(songs, shape: SongShape, titled: bool) -> dict:
    chars = [s.chars for s in songs]
    scored = [s.chars + (s.stop == "end") for s in songs]
    bpc = sum(s.bits_per_char * n for s, n in zip(songs, scored)) / max(sum(scored), 1)
    out = {
        "songs": len(songs),
        "well_formed": sum(well_formed(s, titled) for s in songs) / len(songs),
        "ended": sum(s.stop == "end" for s in songs) / len(songs),
        "guided_ends": sum(s.guided_end for s in songs) / len(songs),
        "median_chars": statistics.median(chars),
        "bits_per_char": bpc,
        "within_range": None,
    }
    if shape.has_song_lengths:
        lo, hi = shape.q("song_chars", 0.05), shape.q("song_chars", 0.95)
        out["within_range"] = sum(lo <= c <= hi for c in chars) / len(chars)
    return out


def suite_songs(argv: list[str], prog: str | None = None) -> None:
    parser = argparse.ArgumentParser(description="trained models: shaped songs against free "
                                     "sampling; songs per second", prog=prog)
    parser.add_argument("runs", nargs="+", help="NAME=CHECKPOINT[:CORPUS]")
    parser.add_argument("--only", default="shape", help="shape, speed, or shape,speed")
    parser.add_argument("--songs", type=int, default=100)
    parser.add_argument("--temps", type=float, nargs="+", default=[0.5, 0.8, 1.0])
    parser.add_argument("--length", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="speed: rounds per row")
    parser.add_argument("--precision", default="auto", help="speed: fp32, int8 or auto")
    parser.add_argument("--out", default=str(HERE / "results" / f"shape-{date.today()}.json"))
    args = parser.parse_args(argv)
    parts = {part.strip() for part in args.only.split(",") if part.strip()}
    if not parts or parts - {"shape", "speed"}:
        parser.error("--only takes shape, speed, or shape,speed")
    print(f"{prog or 'songs'} {' '.join(argv)}: {common.machine()}\n")
    if "shape" in parts:
        shape_table(args)
    if "speed" in parts:
        for spec in args.runs:
            name, _, rest = spec.partition("=")
            speed_table(name, rest.partition(":")[0], args)


def shape_table(args) -> None:

    results = {"date": str(date.today()), "machine": common.cpu_model(), "command": " ".join(sys.argv),
               "songs": args.songs, "length": args.length, "seed": args.seed, "runs": []}
    rows = []
    for spec in args.runs:
        name, _, rest = spec.partition("=")
        checkpoint, _, corpus = rest.partition(":")
        trained = load_checkpoint(checkpoint, device="cpu")
        shape = SongShape.from_dict(trained.checkpoint.shape)
        if shape is None:  # a checkpoint from before shapes were recorded: measure its corpus
            from songgen.lyrics import load_corpus

            shape = load_corpus(corpus or trained.checkpoint.corpus).shape
            trained.checkpoint.shape = shape.to_dict()
        titled = shape.has_titles
        run = {"name": name, "checkpoint": checkpoint, "step": trained.step,
               "shape": shape.to_dict(), "configs": []}
        for temperature in args.temps:
            for mode in ("song", "free"):
                start = time.perf_counter()
                songs = generate(trained, num_songs=args.songs, temperature=temperature,
                                 seed=args.seed, length=args.length, shape=mode)
                seconds = time.perf_counter() - start
                summary = summarise(songs, shape, titled)
                summary.update(temperature=temperature, mode=mode, seconds=round(seconds, 1))
                summary["per_song"] = [{"stop": s.stop, "chars": s.chars,
                                        "bits_per_char": round(s.bits_per_char, 4),
                                        "guided_end": s.guided_end, **song_form(s.text)}
                                       for s in songs]
                if mode == "song" and temperature == 0.8:
                    run["examples"] = [s.text for s in songs[:2]]
                run["configs"].append(summary)
                print(f"{name} T={temperature} {mode}: {seconds:.0f} s", file=sys.stderr,
                      flush=True)
        results["runs"].append(run)
        for temperature in args.temps:
            song, free = (next(c for c in run["configs"] if c["temperature"] == temperature
                               and c["mode"] == m) for m in ("song", "free"))
            for c in (song, free):
                within = "n/a" if c["within_range"] is None else f"{c['within_range']:.0%}"
                delta = (f"{c['bits_per_char'] / free['bits_per_char'] - 1:+.1%}"
                         if c is song else "")
                rows.append(f"| {name} | {temperature:g} | {c['mode']} | {c['well_formed']:.0%} "
                            f"| {c['ended']:.0%} | {c['guided_ends']:.0%} | {within} "
                            f"| {c['median_chars']:,.0f} | {c['bits_per_char']:.3f} {delta} |")
        lo, mid, hi = (shape.q("song_chars", q) for q in (0.05, 0.5, 0.95))
        rows.append(f"| {name} corpus ({shape.songs:,} songs, step {trained.step:,}) | | | | | | "
                    f"{lo:,}-{hi:,} | {mid:,} | |" if shape.has_song_lengths else
                    f"| {name} corpus ({shape.songs} song{'s' if shape.songs > 1 else ''}: no "
                    f"length distribution; step {trained.step:,}) | | | | | | n/a | | |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n",
                              encoding="utf-8")
    print(f"{results['date']}, {results['machine']}, {args.songs} songs per row "
          f"(one batch), --length {args.length}, seed {args.seed}\n")
    print("| corpus | temp | shape | well formed | ended | guided ends | within p5-p95 "
          "| median chars | bits/char (shaped vs free) |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nraw results: {args.out}", file=sys.stderr)


def speed_table(name: str, checkpoint: str, args) -> None:
    trained = load_checkpoint(checkpoint, device="cpu")  # the published figures are CPU ones
    generate(trained, num_songs=2, length=200, seed=0, precision=args.precision)  # warm-up
    print(f"\n{name}: songs per second, --precision {args.precision}, --length {args.length}\n")
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
        print(f"| {n} | {best[0]:.2f} | {best[1]:,.0f} | {best[2]:,.0f} |", flush=True)


if __name__ == "__main__":
    suite_songs(sys.argv[1:])
