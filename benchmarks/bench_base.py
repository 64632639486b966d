"""The `base` suite: what songgen's bundled base model brings a small collection (issue #31),
measured on books it never read.

    python -m benchmarks base [--books 'basecorpus/heldout/*.txt'] [--small 30] [--large 150]
        [--small-budget 2m] [--large-budget 5m] [--long-budget 20m] [--held-out 20]
        [--songs 20] [--seed 1] [--device auto] [--out DIR] [--results benchmarks/results]

The songs of the held-out books (the lyrics format: songs split by two blank lines, `# Title`
lines) are shuffled once (--seed); the last --held-out of them are the held-out songs, and the
first --small and --large of the others the two collections. For each collection, ONE RUN AT A
TIME (two trainings on 2 cores collapse), each a real `songgen train` in a subprocess:

- `base`: `songgen train COLLECTION --time-limit BUDGET` (it starts from the base model: the
  suite checks that the run says so);
- `scratch`: the same with `--from-scratch`;
- `scratch-long` (the small collection only): `--from-scratch` with --long-budget.

Reported, as a markdown table on stdout (progress on stderr):

- held-out loss (`songgen eval --json`, nats and bits a character) of each run, on the held-out
  songs whose characters the collection has (a model from scratch cannot score others), and
  the ratio of each run's loss to the base-started one's (above 1: the base model helps);
- free sampling (`--rhyme off --chorus off --words 1`, --songs songs, the same seed for every
  run): the share of words that are real, in the collection or the CMU dictionary;
- `songgen sample` with no run, in an empty folder: the wall time of one song, the model's load
  included (the median of --load-rounds).

Three songs of each collection's `scratch` and `base` runs, the same seeds, go to
RESULTS/base-songs-DATE.md, and the raw figures to RESULTS/base-DATE.json. Run folders are kept
in --out (default: a temporary folder); a run whose folder holds last.pt already is not trained
again, so a stopped study can go on.

The base model is the bundled one, or the file $SONGGEN_BASE_MODEL names (to measure a
candidate before bundling it). A quick trial on any lyrics file:

    python -m benchmarks base --books ../shared/data/child_ballads_small.txt --small 8 \\
        --large 16 --held-out 6 --small-budget 10s --large-budget 10s --long-budget 15s \\
        --songs 3 --load-rounds 1 --out /tmp/base-trial --results /tmp/base-trial
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from common import clean_env, log, machine  # noqa: E402

from songgen.run import basemodel  # noqa: E402
from songgen.text.lyrics import read_songs  # noqa: E402
from songgen.songcraft.measures import allowed_words, measure, words_of  # noqa: E402

FREE = ["--rhyme", "off", "--chorus", "off", "--scan", "off", "--words", "1"]


def songgen(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`songgen ARGS` as a user runs it, in a fresh interpreter; stops the suite on failure."""
    result = subprocess.run([sys.executable, "-m", "songgen", *map(str, args)],
                            capture_output=True, text=True, cwd=cwd, env=clean_env())
    if result.returncode != 0:
        raise SystemExit(f"songgen {' '.join(map(str, args))} failed:\n{result.stderr[-2000:]}")
    return result


def collections(args) -> tuple[dict[str, list[str]], list[str]]:
    """{name: songs} of the two collections, and the held-out songs."""
    files = sorted(glob.glob(args.books))
    if not files:
        raise SystemExit(f"no held-out books at {args.books}: give --books")
    songs = [song for f in files for song in read_songs(f)]
    random.Random(args.seed).shuffle(songs)
    held, pool = songs[len(songs) - args.held_out:], songs[:len(songs) - args.held_out]
    out = {}
    for size in (args.small, args.large):
        if size > len(pool):
            log(f"only {len(pool)} songs besides the {args.held_out} held out: the "
                f"{size}-song collection has {len(pool)}")
        out[f"{min(size, len(pool))} songs"] = pool[:size]
    log(f"{len(files)} books, {len(songs)} songs: {args.held_out} held out")
    return out, held


def write_songs(path: Path, songs: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n\n".join(songs) + "\n", encoding="utf-8")
    return path


def train(text: Path, folder: Path, budget: str, args, *extra: str) -> float | None:
    """Train a run (unless its folder has one already); the seconds it took (None: kept)."""
    if (folder / "last.pt").exists():
        log(f"{folder.name}: kept from an earlier run of the suite")
        return None
    log(f"training {folder.parent.name}/{folder.name} for {budget}")
    began = time.perf_counter()
    result = songgen("train", text, "--checkpoint-dir", folder, "--time-limit", budget,
                     "--device", args.device, *extra)
    start = result.stderr.splitlines()[0]
    wanted = "start from scratch: as asked" if extra else "start base model "
    if not start.startswith(wanted):
        raise SystemExit(f"{folder}: expected `{wanted}...`, the run said: {start}")
    return time.perf_counter() - began


def real_words(folder: Path, words, args) -> float:
    out = songgen("sample", folder, *FREE, "-n", args.songs, "--seed", args.seed, "--json",
                  "--length", args.length).stdout
    written = [w for line in out.splitlines() if line.strip()
               for w in words_of(json.loads(line)["text"])]
    return sum(words.is_word(w) for w in written) / max(len(written), 1)


def no_run_sample(args) -> dict:
    """`songgen sample` in an empty folder (no run: the base model), one song, load included."""
    times = []
    with tempfile.TemporaryDirectory(prefix="songgen-bench-") as empty:
        for r in range(args.load_rounds):
            began = time.perf_counter()
            result = songgen("sample", "--seed", r + 1, cwd=Path(empty))
            times.append(time.perf_counter() - began)
            if "base model" not in result.stderr.splitlines()[0]:
                raise SystemExit(f"sample with no run did not use the base model: {result.stderr}")
    return {"seconds": statistics.median(times), "rounds": times}


def sampling_speed(args) -> dict:
    """Characters a second of one song at a time from the base model, in this process after
    one untimed song: free (shape free, no songcraft) and songgen's defaults."""
    import torch

    from songgen import generate
    from songgen.run.trained import load_checkpoint

    torch.set_num_threads(1)  # as `songgen sample` runs one song on the CPU
    trained = load_checkpoint(basemodel.bundled(), device=args.device)
    kinds = {"free": dict(shape="free", rhyme="off", chorus="off", scan="off", words=1.0),
             "default": {}}
    out = {}
    for kind, options in kinds.items():
        generate(trained, length=500, seed=99, **options)  # warm-up
        chars, began = 0, time.perf_counter()
        for seed in range(1, 4):
            chars += sum(len(song.text) for song in generate(trained, length=args.length,
                                                             seed=seed, **options))
        out[kind] = chars / (time.perf_counter() - began)
    return out


def suite_base(argv: list[str] | None = None, prog: str | None = None) -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--books", default=str(REPO / "basecorpus" / "heldout" / "*.txt"),
                        help="the held-out books (a glob)")
    parser.add_argument("--small", type=int, default=30)
    parser.add_argument("--large", type=int, default=150)
    parser.add_argument("--held-out", type=int, default=20)
    parser.add_argument("--small-budget", default="2m")
    parser.add_argument("--large-budget", default="5m")
    parser.add_argument("--long-budget", default="20m", help="from scratch, small collection")
    parser.add_argument("--songs", type=int, default=20, help="free-sampled songs a run")
    parser.add_argument("--length", type=int, default=1500)
    parser.add_argument("--load-rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", help="where the runs go [default: a temporary folder]")
    parser.add_argument("--results", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    base = basemodel.load()  # the bundled one, or $SONGGEN_BASE_MODEL's
    if base is None:
        raise SystemExit("no base model: add songgen/base/verse.pt, or set SONGGEN_BASE_MODEL "
                         "to the file to measure")
    out = Path(args.out or tempfile.mkdtemp(prefix="songgen-base-"))
    chosen, held = collections(args)
    budgets = {args.small: args.small_budget, args.large: args.large_budget}
    result = {"base_model": str(base.path), "checksum": base.checkpoint.checksum,
              "model": base.describe(), "books": args.books, "seed": args.seed,
              "collections": {}}
    rows, songs_md = [], []
    for i, ((name, songs), budget) in enumerate(zip(chosen.items(), budgets.values())):
        folder = out / name.replace(" ", "-")
        text = write_songs(folder / "collection.txt", songs)
        known = set("".join(songs))
        scored = [s for s in held if set(s) <= known]
        heldout = write_songs(folder / "heldout.txt", scored)
        words = allowed_words(measure(songs))
        runs = {"base": (budget, ()), "scratch": (budget, ("--from-scratch",))}
        if i == 0:  # the small collection: is the base model worth 10x the time?
            runs["scratch-long"] = (args.long_budget, ("--from-scratch",))
        figures = {}
        for run, (limit, extra) in runs.items():
            seconds = train(text, folder / run, limit, args, *extra)
            score = json.loads(songgen("eval", heldout, "--checkpoint", folder / run, "--json",
                                       "--corpus-cache", "none").stdout)
            figures[run] = {"budget": limit, "seconds": seconds, "loss": score["loss"],
                            "bits_per_char": score["bits_per_char"], "chars": score["chars"],
                            "real_words": real_words(folder / run, words, args)}
        for run, f in figures.items():
            ratio = f["loss"] / figures["base"]["loss"]
            rows.append(f"| {name} | {run} | {f['budget']} | {f['loss']:.4f} | "
                        f"{f['bits_per_char']:.4f} | {ratio:.3f}x | {f['real_words']:.1%} |")
        result["collections"][name] = {"songs": len(songs), "held_out_songs": len(scored),
                                       "runs": figures}
        songs_md.append(before_and_after(name, folder, args))
    result["sample_no_run"] = no_run_sample(args)
    result["sampling_chars_per_s"] = sampling_speed(args)
    import torch

    gpu = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    result["machine"] = machine("cuda" if gpu else "cpu")
    print(f"{prog or 'benchmarks base'} {' '.join(argv or sys.argv[1:])}: {result['machine']}\n")
    print(f"base model {base.path} ({base.describe()}); held-out songs: {args.books}\n")
    print("| collection | start | budget | held-out loss (nats/char) | bits/char | loss / "
          "base's | real words (free sampling) |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\n`songgen sample` with no run, one song, load included: "
          f"{result['sample_no_run']['seconds']:.2f} s (median of {args.load_rounds})")
    speed = result["sampling_chars_per_s"]
    print(f"sampling with the base model, one song, 1 thread: {speed['free']:,.0f} chars/s free, "
          f"{speed['default']:,.0f} chars/s with songgen's defaults (shape, rhyme, chorus, "
          f"scansion, words)")
    save(result, songs_md, Path(args.results))


def before_and_after(name: str, folder: Path, args) -> str:
    """Three songs from scratch and three from the base model, the same seeds."""
    parts = [f"## {name}\n"]
    for run, label in (("scratch", "before: from scratch"), ("base", "after: from the base "
                                                                       "model")):
        parts.append(f"### {label}\n")
        for seed in (1, 2, 3):
            song = songgen("sample", folder / run, "--seed", seed, "--length", 2000).stdout
            parts.append(f"seed {seed}:\n\n```text\n{song.strip()}\n```\n")
    return "\n".join(parts)


def save(result: dict, songs_md: list[str], folder: Path) -> None:
    """The raw figures and the songs, in new files (never over an earlier study's)."""
    folder.mkdir(parents=True, exist_ok=True)
    day = datetime.date.today().isoformat()
    n = 1
    while any((folder / f"base{suffix}-{day}{'' if n == 1 else f'-{n}'}.{ext}").exists()
              for suffix, ext in (("", "json"), ("-songs", "md"))):
        n += 1
    tag = f"{day}{'' if n == 1 else f'-{n}'}"
    (folder / f"base-{tag}.json").write_text(json.dumps(result, indent=1) + "\n")
    (folder / f"base-songs-{tag}.md").write_text(
        f"# Songs before and after the base model ({day})\n\n"
        f"Base model {result['model']}, {result['checksum']}.\n\n" + "\n".join(songs_md))
    log(f"wrote {folder / f'base-{tag}.json'} and {folder / f'base-songs-{tag}.md'}")
