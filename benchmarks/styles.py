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

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import data_dir, log  # noqa: E402

WORD = re.compile(r"[a-z']+")
PIECE = 1500  # characters of a "song" cut from a text without song breaks


def songs_of(text: str) -> list[str]:
    """The songs of a text, as songgen reads them; a text with few breaks is cut at blank
    lines into pieces of about PIECE characters."""
    from songgen.lyrics import normalise, split_songs

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

    from songgen.trained import load_checkpoint
    from songgen.sampling import generate
    from songgen.styles import with_style

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks styles", description=__doc__,
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

    rows = [f"python -m benchmarks styles {' '.join(argv if argv is not None else sys.argv[1:])}",
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
    main()
