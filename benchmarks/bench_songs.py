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
import math
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import common  # noqa: E402
from common import data_dir, log  # noqa: E402
from songgen import load_checkpoint  # noqa: E402
from songgen.writing.copycheck import open_copy_index  # noqa: E402
from songgen.text.lyrics import read_songs  # noqa: E402
from songgen.writing.sampling import generate  # noqa: E402
from songgen.writing.request import SampleOptions
from songgen.songcraft.shape import SongShape, song_form  # noqa: E402
from songgen.songcraft.measures import allowed_words, measure, words_of  # noqa: E402


def well_formed(song, titled: bool) -> bool:
    form = song_form(song.text)
    ok = song.ended and form["stanzas"] >= 2
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
            from songgen.text.corpus import load_corpus

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


# -- songcraft: rhyme, chorus and real words against the corpus and free sampling (#23) ---

FREE = dict(rhyme="off", chorus="off", scan="off", words=1.0)


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


def speed(trained, n: int, temperature: float, rounds: int, steered: dict | None = None) -> float:
    """The characters per second of songs written with `steered` options (the defaults: every
    steering step) over free sampling's, pooled over `rounds` rounds (each its own seed, the
    two written in turn): all the characters each wrote over all its time. A round's batch runs
    as long as its longest song, so one round's ratio swings with its songs' lengths (by a
    third, 8 songs of the same code); pooled, the figure settles."""
    steered = {} if steered is None else steered
    # Warm up with whole songs: the word lists, masks and rhyme index are built once per
    # process (the English words' rhyme index alone takes a second), not per song.
    for extra in (FREE, steered):
        generate(trained, SampleOptions(num_songs=n, temperature=temperature, seed=99, **extra))
    chars, seconds = {"free": 0, "craft": 0}, {"free": 0.0, "craft": 0.0}
    for r in range(rounds):
        for name, extra in (("free", FREE), ("craft", steered))[:: 1 if r % 2 == 0 else -1]:
            opts = SampleOptions(num_songs=n, temperature=temperature, seed=100 + r, **extra)
            start = time.perf_counter()
            songs = generate(trained, opts)
            seconds[name] += time.perf_counter() - start
            chars[name] += sum(s.chars for s in songs)
    return round(chars["craft"] / seconds["craft"] / (chars["free"] / seconds["free"]), 3)


def suite_songcraft(argv: list[str] | None = None, prog: str | None = None) -> None:
    """Issue #23's figures: rhyme, chorus and real words of a corpus, of free sampling and of
    songcraft sampling (the defaults), side by side, at temperatures 0.8 and 1.0; with the longest
    passage copied from the corpus, bits per character and sampling speed (1 song and 8).

        python -m benchmarks songcraft --checkpoint CK --corpus TEXT [--songs 20] [--json OUT]

    CK is a model trained on TEXT (for example `songgen train TEXT --time-limit 5m`); TEXT is read
    for the corpus's own figures and the copy check. Run it on an idle machine: the speed ratio is
    pooled over the rounds, free and songcraft written alternately with the same seed (`speed`).
    `--tiny` is a quick smoke run (2 songs, 1 speed round).
    """
    parser = argparse.ArgumentParser(prog=prog, description=suite_songcraft.__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--songs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
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


# -- singable: songs a singer could sing (#33) ---------------------------------------------

END_MARKS = tuple(".!?\"'”’»")


def singable_figures(songs: list[str], words, pattern: str | None = None) -> dict:
    """Issue #33's measures of song texts (the corpus's or written ones)."""
    from songgen.songcraft.measures import english_words, last_word, rhymes, scansion, stanzas_of

    listed = set(english_words())
    close, compared = scansion(songs)
    titles = [s.split("\n", 1)[0][2:].rstrip() for s in songs if s.startswith("# ")]
    written = [w for s in songs for w in words_of(s)]
    met = fitting = repeats = 0
    for song in songs:
        stanzas = stanzas_of(song)
        run = 1
        for before, after in zip(stanzas, stanzas[1:]):
            run = run + 1 if before == after else 1
            repeats = max(repeats, run)
        for lines in stanzas if pattern else ():
            if len(lines) >= len(pattern):
                ends = [last_word(line) for line in lines]
                fitting += 1
                met += all(rhymes(ends[i], ends[j]) for i in range(len(pattern))
                           for j in range(i + 1, len(pattern)) if pattern[i] == pattern[j] != "X")
    out = {"scanning_lines": round(close / max(compared, 1), 3),
           "sentence_endings": round(sum(s.rstrip().endswith(END_MARKS) for s in songs)
                                     / max(len(songs), 1), 3),
           "titles_ending_well": round(sum(bool(t) and t[-1] not in ",;:-" for t in titles)
                                       / max(len(titles), 1), 3),
           "known_words": round(sum(words.is_word(w) or w in listed for w in written)
                                / max(len(written), 1), 4),
           "rhyming_stanzas": round(measure(songs).rhyme_rate, 3),
           "most_in_a_row": repeats,
           "median_chars": statistics.median(len(s) for s in songs),
           "chars_p25_p75": [round(q) for q in statistics.quantiles(map(len, songs), n=4)[::2]]}
    if pattern:
        out["pattern_met"] = round(met / max(fitting, 1), 3)
    return out


def suite_singable(argv: list[str] | None = None, prog: str | None = None) -> None:
    """Issue #33: songs a singer could sing, each figure beside the corpus's, and the cost.

        python -m benchmarks singable --checkpoint CK --corpus TEXT [--songs 20] [--seed 100]
            [--temperatures 0.8,1.0] [--no-speed] [--show 3] [--lanes 3]

    Written with the defaults (-n SONGS --seed SEED): lines that scan (stanza 2+ within 2
    syllables of the same line of the song's first stanza of that length; target >= corpus - 5
    points), songs ending as sentences end and titles not ending in , ; : - (>= 95%), words in
    the collection or the English list (>= 99%), rhyming stanzas (within 10 points), the most
    times a stanza comes in a row (<= 2), median length (within 25%); with --rhyme AABB the
    pattern met where a stanza has 4 lines (>= 95%); bits/char against free sampling (<= +8%)
    and characters/s against free sampling for 1 song and 8 (>= 0.5x, the songcraft suite's
    `speed`). Measure on an idle machine.
    """
    parser = argparse.ArgumentParser(prog=prog, description="songs a singer could sing (#33)")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--songs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=16, help="speed rounds, pooled (speed)")
    parser.add_argument("--temperatures", default="0.8,1.0",
                        help="comma-separated temperatures, each measured in full")
    parser.add_argument("--no-speed", action="store_true", help="leave out the speed figures")
    parser.add_argument("--show", type=int, default=0,
                        help="print the first N songs written with the defaults at each "
                        "temperature (to read them, before and after a change)")
    parser.add_argument("--lanes", type=int, default=None,
                        help="candidate lines written for a line that must rhyme or scan "
                        "(default: songgen's own, steering.lines.LANES): the study of how many")
    args = parser.parse_args(argv)
    if args.lanes is not None:
        if args.lanes < 1:
            parser.error("--lanes takes 1 or more")
        from songgen.writing.steering import build
        build.LANES = args.lanes  # (read there when a sampler's steps are made)
    trained = load_checkpoint(args.checkpoint, device="cpu")
    corpus = read_songs(args.corpus)
    words = allowed_words(measure(corpus))
    print(f"{prog or 'singable'} {' '.join(argv or [])}: {common.machine()}\n")
    for temperature in [float(t) for t in args.temperatures.split(",")]:
        base = dict(num_songs=args.songs, seed=args.seed, corpus=args.corpus,
                    temperature=temperature)
        written = generate(trained, SampleOptions(**base))
        free = generate(trained, SampleOptions(**base, shape="free", **FREE))
        aabb = generate(trained, SampleOptions(**base, rhyme="AABB"))
        rows = {"corpus": singable_figures(corpus, words, "AABB"),
                "songgen": singable_figures([s.text for s in written], words),
                "songgen --rhyme AABB": singable_figures([s.text for s in aabb], words, "AABB"),
                "free sampling": singable_figures([s.text for s in free], words)}
        names = list(rows["corpus"])
        print(f"temperature {temperature}:\n")
        print("| | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
        for name, figs in rows.items():
            print(f"| {name} | " + " | ".join(str(figs.get(k, "")) for k in names) + " |")
        bpc = {name: statistics.mean(s.bits_per_char for s in songs)
               for name, songs in (("songgen", written), ("free", free))}
        print(f"\nbits/char: songgen {bpc['songgen']:.3f}, free {bpc['free']:.3f} "
              f"({bpc['songgen'] / bpc['free'] - 1:+.1%}; target <= +8%)\n")
        for i, song in enumerate(written[:args.show]):
            print(f"song {i + 1} of seed {args.seed}, temperature {temperature}:\n\n```\n"
                  f"{song.text.rstrip()}\n```\n")
        if not args.no_speed:
            for n in (1, 8):
                ratio = speed(trained, n, temperature, args.rounds)
                print(f"speed, {n} song{'s' * (n > 1)}: {ratio}x free sampling (target >= 0.5x)",
                      flush=True)
                traced = speed(trained, n, temperature, args.rounds, {"trace": True})
                print(f"speed with the studio's trace (every choice kept), {n} song"
                      f"{'s' * (n > 1)}: {traced}x free sampling", flush=True)
            print()


# -- styles: one model on two styles beside single-style models (#27) ------------------------

WORD = re.compile(r"[a-z']+")
PIECE = 1500  # characters of a "song" cut from a text without song breaks


def songs_of(text: str) -> list[str]:
    """The songs of a text, as songgen reads them; a text with few breaks is cut at blank
    lines into pieces of about PIECE characters."""
    from songgen.text.lyrics import split_songs
    from songgen.text.reading import normalise

    songs = split_songs(normalise(text))
    if len(songs) >= 20:
        return songs
    pieces, current = [], ""
    for stanza in re.split(r"\n\s*\n", normalise(text)):
        current = f"{current}\n\n{stanza.strip()}" if current else stanza.strip()
        if len(current) >= PIECE:
            pieces.append(current)
            current = ""
    return pieces + ([current] if current.strip() else [])


def lay_out(out: Path, texts: dict[str, Path]) -> dict[str, list[str]]:
    """out/train/NAME/songs.txt and out/test/NAME/songs.txt for each style; the test songs."""
    held = {}
    for name, path in texts.items():
        songs = songs_of(path.read_text(encoding="utf-8"))
        cut = int(len(songs) * 0.9)
        # Test songs with a character its training songs lack cannot be scored by the
        # single-style model: left out.
        known = set("".join(songs[:cut]))
        test = [song for song in songs[cut:] if set(song) <= known]
        for part, chosen in (("train", songs[:cut]), ("test", test)):
            folder = out / part / name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "songs.txt").write_text("\n\n\n".join(chosen) + "\n", encoding="utf-8")
        held[name] = test
        log(f"{name}: {cut} training songs, {len(test)} test songs")
    return held


def songgen(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "songgen", *args], capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise SystemExit(f"songgen {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result.stdout


def train(text: Path, folder: Path, seconds: float, options: argparse.Namespace,
          *extra: str) -> None:
    log(f"training {folder.name} on {text} for {seconds:.0f} s")
    songgen("train", str(text), "--checkpoint-dir", str(folder), "--time-limit", f"{seconds}s",
            "--hidden-size", str(options.hidden), "--device", options.device, "-q", *extra)


class WordClassifier:
    """Naive Bayes over lower-case words, add-one smoothing: the simple classifier of the issue."""

    def __init__(self, texts: dict[str, str]):
        self.counts = {name: Counter(WORD.findall(text.lower())) for name, text in texts.items()}
        self.vocab = set().union(*self.counts.values())
        self.totals = {name: sum(c.values()) for name, c in self.counts.items()}

    def label(self, text: str) -> str:
        words = WORD.findall(text.lower())
        size = len(self.vocab) + 1

        def score(name):
            c, total = self.counts[name], self.totals[name]
            return sum(math.log((c.get(w, 0) + 1) / (total + size)) for w in words)

        return max(self.counts, key=score)


def sample_songs(checkpoint: Path, style: str | None, n: int, length: int, seed: int) -> list[str]:
    args = ["sample", str(checkpoint), "-n", str(n), "--length", str(length), "--json",
            "--seed", str(seed)]
    if style:
        args += ["--style", style]
    return [json.loads(line)["text"] for line in songgen(*args).splitlines() if line.strip()]


def eval_loss(checkpoint: Path, text: Path) -> dict:
    return json.loads(songgen("eval", str(text), "--checkpoint", str(checkpoint), "--json",
                              "--corpus-cache", "none"))


def training_speed(out: Path, options: argparse.Namespace) -> tuple[float, float]:
    """Characters/s of the styled and the unstyled model (interleaved rounds, median)."""
    rates = {"styled": [], "plain": []}
    for r in range(options.rounds):
        order = ["styled", "plain"] if r % 2 == 0 else ["plain", "styled"]
        for kind in order:
            folder = out / f"speed-{kind}-{r}"
            songgen("train", str(out / "train"), "--checkpoint-dir", str(folder), "--steps",
                    str(options.speed_steps), "--eval-every", str(options.speed_steps),
                    "--hidden-size", str(options.hidden), "--device", options.device, "-q",
                    "--styles", "auto" if kind == "styled" else "none")
            record = json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])
            rates[kind].append(record["chars_per_sec"])
    return statistics.median(rates["styled"]), statistics.median(rates["plain"])


def sampling_speed(checkpoint: Path, style: str, options: argparse.Namespace) -> tuple[float, float]:
    """Characters/s sampling in a style and with none, in this process (interleaved)."""
    import torch

    from songgen.run.trained import load_checkpoint
    from songgen.writing.sampling import generate
    from songgen.run.trained import with_style

    if options.threads:
        torch.set_num_threads(options.threads)
    trained = load_checkpoint(checkpoint, device=options.device)
    sides = {"style": with_style(trained, style), "none": trained}
    rates = {"style": [], "none": []}
    for r in range(options.rounds + 1):
        for kind in (["style", "none"] if r % 2 == 0 else ["none", "style"]):
            began = time.perf_counter()
            songs = generate(sides[kind], num_songs=8, length=1000, seed=r, shape="free")
            rate = sum(len(s.text) for s in songs) / (time.perf_counter() - began)
            if r:  # the first round warms up
                rates[kind].append(rate)
    return statistics.median(rates["style"]), statistics.median(rates["none"])


def suite_styles(argv: list[str] | None = None, prog: str | None = None) -> None:
    """Styles (issue 27): one model trained on two styles, beside two single-style models.

        python -m benchmarks styles [--a child_ballads.txt] [--b tinyshakespeare.txt]
                                    [--minutes 10] [--hidden 256] [--device auto] [--songs 50]
                                    [--out /tmp/styles-bench]

    Two texts of ../shared/data (or $SONGGEN_BENCH_DATA) become two styles: each is cut into songs
    (a text without song breaks, such as tinyshakespeare, into pieces of about 1,500 characters at
    blank lines), and the last 10% of each style's songs are held out as its test text. Then:

    - a styled model is trained on train/A and train/B (subfolders: two styles) for --minutes;
    - a single-style model on each style alone, for half of --minutes each (the same total time;
      --single full gives each the whole time);
    - an unstyled model (--styles none) on the same folder for the same time: the speed reference.

    Reported, as a markdown table on stdout (progress on stderr):
    1. classifier: a naive-Bayes word classifier built from the two training texts labels --songs
       songs sampled in each style; the share labelled as the style asked for (target >= 95%), and
       the classifier's accuracy on the real test songs (how far it can be trusted);
    2. per-style loss: every model scored on each style's test text (the styled model reading it in
       that style, `songgen eval`), the styled model's loss against the single-style model's
       (target: within 2%, or better);
    3. speed: training characters/s of the styled model over the unstyled one (interleaved rounds of
       --speed-steps steps each), and sampling characters/s in a style over no style (target: both
       within 5%).

    Every training run is a real `songgen train` in a subprocess. Measure on an idle machine.
    """
    parser = argparse.ArgumentParser(prog=prog, description=suite_styles.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", default="child_ballads.txt")
    parser.add_argument("--b", default="tinyshakespeare.txt")
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="training time of the styled model")
    parser.add_argument("--single", choices=["half", "full"], default="half",
                        help="each single-style model's time: half (same total) or the whole")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for sampling")
    parser.add_argument("--songs", type=int, default=50, help="songs sampled per style")
    parser.add_argument("--length", type=int, default=1500, help="characters per sampled song")
    parser.add_argument("--rounds", type=int, default=3, help="speed rounds")
    parser.add_argument("--speed-steps", type=int, default=200)
    parser.add_argument("--out", default="/tmp/songgen-styles-bench")
    options = parser.parse_args(argv)

    out = Path(options.out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; give --out a new folder")
    data = data_dir()
    names = {"A": Path(options.a).stem, "B": Path(options.b).stem}
    texts = {names["A"]: data / options.a, names["B"]: data / options.b}
    held = lay_out(out, texts)
    seconds = options.minutes * 60
    single = seconds / 2 if options.single == "half" else seconds
    train(out / "train", out / "styled", seconds, options)
    for name in texts:
        train(out / "train" / name, out / f"only-{name}", single, options)

    rows = [f"python -m benchmarks styles {' '.join(argv if argv is not None else sys.argv[2:])}",
            "", "| measure | style | songgen styles | reference | ratio | target |",
            "|---|---|---|---|---|---|"]
    classifier = WordClassifier({n: (out / "train" / n / "songs.txt").read_text(encoding="utf-8")
                                 for n in texts})
    for name in texts:
        real = sum(classifier.label(s) == name for s in held[name]) / len(held[name])
        sampled = sample_songs(out / "styled", name, options.songs, options.length, seed=1)
        told = sum(classifier.label(s) == name for s in sampled) / len(sampled)
        rows.append(f"| sampled songs told as their style | {name} | {told:.1%} | real test "
                    f"songs {real:.1%} | | >= 95% |")
    for name in texts:
        styled = eval_loss(out / "styled", out / "test")["styles"][name]
        alone = eval_loss(out / f"only-{name}", out / "test" / name)["loss"]
        rows.append(f"| test loss (nats/char) | {name} | {styled:.4f} | single-style "
                    f"{alone:.4f} | {styled / alone:.3f} | <= 1.02 |")
    styled_rate, plain_rate = training_speed(out, options)
    rows.append(f"| training chars/s | both | {styled_rate:,.0f} | unstyled {plain_rate:,.0f} | "
                f"{styled_rate / plain_rate:.3f} | >= 0.95 |")
    in_style, no_style = sampling_speed(out / "styled", names["A"], options)
    rows.append(f"| sampling chars/s | {names['A']} | {in_style:,.0f} | no style "
                f"{no_style:,.0f} | {in_style / no_style:.3f} | >= 0.95 |")
    print("\n".join(rows))

if __name__ == "__main__":
    suite_songs(sys.argv[1:])
