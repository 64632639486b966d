"""Inside the model, measured (issue #35): the course's questions answered with songgen's own
numbers, each part one command, every training run a real `songgen train` in a subprocess.

- `seqlen`: one training run per `--seq-len` (8 to 400), the same text and the same time each:
  the held-out loss, the best validation loss training reported, training chars/s, the peak
  resident memory of the training process, and how far back the model's memory reaches: the
  loss on held-out characters by how far into their song they stand, and how well lines that
  come back in a song (a chorus, a refrain) are predicted the second time. An SVG of the
  losses against the sequence length goes to the results folder.
- `mlp`: the LSTM against a fully connected network that sees a fixed window of characters
  (embedding -> two ReLU layers -> softmax, written here: no part of songgen), with the same
  number of parameters, trained for the same time on the same text.
- `temperature`: the same opening (the first held-out song's title and first line) sampled
  at several temperatures, unsteered (`--shape free --rhyme off --chorus off --words 1`) and
  with songgen's defaults: the share of real words, of rhyming stanzas, of repeated lines.

The held-out text is the validation part of the text, cut as `songgen train` cuts it, and it
is read in one stretch from the start, as the sampler reads (`songgen eval` reads a long text
in up to 32 stretches, so its figure can differ a little).

    python -m benchmarks inside                                  # all: about 30 min
    python -m benchmarks inside --only seqlen --lengths 8,25,50,100,200,400 --minutes 3
    python -m benchmarks inside --only mlp --minutes 3 --window 32
    python -m benchmarks inside --only temperature --checkpoint CK
    python -m benchmarks inside --minutes 0.1 --lengths 8,50 --hidden 64 --songs 2 --out /tmp/i
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
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

OUT = HERE / "results" / "inside"
TEXT = "child_ballads_small.txt"
BUCKETS = (0, 10, 50, 200, 1000)  # characters into the song where each bucket starts
TEMPERATURES = (0.5, 0.8, 1.0, 1.2, 1.5)
FREE = ["--shape", "free", "--rhyme", "off", "--chorus", "off", "--words", "1"]


def default_text() -> Path | None:
    for folder in (os.environ.get("SONGGEN_BENCH_DATA"), REPO.parent / "shared" / "data"):
        if folder and (Path(folder) / TEXT).exists():
            return Path(folder) / TEXT
    return None


def songgen_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "songgen", *map(str, args)]


# -- one training run, as a user runs it ------------------------------------------------------

def train_run(text: Path, folder: Path, seq_len: int, seconds: float, args) -> dict:
    """`songgen train` for `seconds`, in a fresh process; its peak resident memory comes from
    the kernel's own count for that process (wait4), not from sampling."""
    command = songgen_command(
        "train", text, "--checkpoint-dir", folder, "--time-limit", f"{seconds:g}",
        "--seq-len", seq_len, "--hidden-size", args.hidden, "--layers", args.layers,
        "--batch-size", args.batch_size, "--seed", args.seed, "--val-frac", args.val_frac,
        "--device", args.device, *(["--threads", args.threads] if args.threads else []))
    err_path = folder.parent / f"{folder.name}.stderr"
    started = time.monotonic()
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=clean_env())
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = err_path.read_text(errors="replace")[-3000:]
        raise SystemExit(f"songgen train --seq-len {seq_len} failed (exit {proc.returncode}):"
                         f"\n{tail}")
    from songgen.run import checkpoint as ckpt
    from songgen.run.curves import read_metrics

    last = ckpt.peek(folder / "last.pt")
    records = read_metrics(folder / "metrics.jsonl")
    chars = last.step * last.train_config.batch_size * last.train_config.seq_len
    return {"seq_len": seq_len, "folder": str(folder), "steps": last.step,
            "epochs": last.epoch, "train_seconds": round(last.elapsed, 1),
            "wall_seconds": round(time.monotonic() - started, 1),
            "chars_per_sec": round(chars / max(last.elapsed, 1e-9)),
            "best_val_loss": min((r["val_loss"] for r in records), default=None),
            "threads": next((r.get("threads") for r in reversed(records)), None),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}  # ru_maxrss: KiB on Linux


# -- the held-out text and how the model reads it ---------------------------------------------

def held_out(text: Path, trained, val_frac: float, limit: int | None):
    """(train ids, held-out ids): the text cut as `songgen train` cut it, in the model's
    vocabulary; at most `limit` held-out characters."""
    from songgen.text.corpus import load_corpus

    corpus = load_corpus(text, val_frac, vocab=trained.vocab)
    val = corpus.val if limit is None else corpus.val[:limit]
    return corpus.train.long(), val.long()


def score_stream(trained, data):
    """ln p of each character of `data` after the first and whether it was the model's first
    choice, the model reading `data` in one stretch from a blank state (eval's own pass,
    `evaluation.scored_chunks`, over a single row)."""
    import numpy as np
    import torch.nn.functional as F

    from songgen.training.evaluation import scored_chunks

    x, y = data[:-1][None], data[1:][None]
    logp, right = [], []
    for _, logits, yb, _ in scored_chunks(trained.model, x, y, trained.device, chunk=2048):
        lp = F.log_softmax(logits.float()[0], -1)
        logp.append(lp.gather(1, yb[0][:, None])[:, 0].cpu().numpy())
        right.append((lp.argmax(-1) == yb[0]).cpu().numpy())
    return np.concatenate(logp), np.concatenate(right)


def positions(data) -> "np.ndarray":
    """For each character of `data` after the first: how far into its song it stands (0: the
    song's first character; the end-of-song symbol counts as the song's last), -1 where the
    song began before `data` did."""
    import numpy as np

    ids = data.numpy()
    index = np.arange(len(ids))
    last_end = np.maximum.accumulate(np.where(ids == 0, index, -1))  # latest EOS at or before
    before = np.concatenate([[-1], last_end[:-1]])  # latest EOS strictly before each character
    pos = np.where(before >= 0, index - before - 1, -1)
    return pos[1:]


def by_position(logp, pos) -> dict:
    """Mean loss (nats/char) and characters in each bucket of position in the song."""
    out = {}
    edges = list(BUCKETS) + [math.inf]
    for lo, hi in zip(edges, edges[1:]):
        chosen = (pos >= lo) & (pos < hi)
        name = f"{lo}+" if hi == math.inf else f"{lo}-{hi - 1}"
        out[name] = {"loss": round(float(-logp[chosen].mean()), 4) if chosen.any() else None,
                     "chars": int(chosen.sum())}
    return out


def repeated_lines(data, chars: list[str], logp, right) -> dict:
    """How lines that come back in a song (four words or more, word for word, as songcraft
    counts a chorus) are predicted: the loss on their characters the first time and when they
    come back, the share of those characters the model's first choice got right, and the share
    of returning lines right at every character after their first."""
    import numpy as np

    from songgen.songcraft.measures import words_of

    text = "".join(chars[i] for i in data.tolist())
    first, again, right_chars, whole = [], [], [], []
    start = 0
    for song in text.split(chars[0]):
        seen: dict[str, tuple[int, int]] = {}
        offset = start
        for line in song.split("\n"):
            key = " ".join(words_of(line))
            # data[k] is scored as logp[k - 1]: the line and the newline (or end) after it.
            span = (offset - 1, offset + len(line))
            if len(key.split()) >= 4 and not line.startswith("# ") and span[0] >= 0:
                if key in seen:
                    lo, hi = span
                    again.append(logp[lo:hi])
                    first.append(logp[seen[key][0]:seen[key][1]])
                    right_chars.append(right[lo:hi])
                    whole.append(bool(right[lo + 1:hi].all()))
                else:
                    seen[key] = span
            offset += len(line) + 1
        start += len(song) + 1
    if not again:
        return {"lines": 0}
    return {"lines": len(again),
            "loss_first": round(float(-np.concatenate(first).mean()), 4),
            "loss_again": round(float(-np.concatenate(again).mean()), 4),
            "right_chars": round(float(np.concatenate(right_chars).mean()), 4),
            "whole_lines": round(sum(whole) / len(whole), 4)}


def memory_figures(trained, text: Path, args) -> dict:
    """The held-out loss, by position in the song, and on lines that come back."""
    import torch

    train, val = held_out(text, trained, args.val_frac, args.score_chars)
    data = torch.cat([train[-1:], val])  # the held-out text read from the end of a song
    logp, right = score_stream(trained, data)
    return {"held_out_loss": round(float(-logp.mean()), 4), "held_out_chars": len(logp),
            "by_position": by_position(logp, positions(data)),
            "repeated": repeated_lines(data, list(trained.vocab.chars), logp, right)}


# -- the fully connected network on a fixed window --------------------------------------------

def window_mlp(vocab: int, window: int, embed: int, params: int, dropout: float):
    """Embedding -> Linear -> ReLU -> Linear -> ReLU -> Linear, its hidden width chosen so that
    it has about `params` parameters."""
    import torch.nn as nn

    # params = V*E + (W*E)*H + H + H*H + H + H*V + V: solve for H.
    b, c = window * embed + vocab + 2, vocab * embed + vocab - params
    hidden = max(16, int((-b + math.sqrt(b * b - 4 * c)) / 2))
    return nn.Sequential(nn.Embedding(vocab, embed), nn.Flatten(),
                         nn.Linear(window * embed, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, vocab))


def train_mlp(train, val, vocab: int, params: int, seconds: float, device, args,
              dropout: float) -> dict:
    """Train the window network for `seconds` (AdamW; the learning rate falls to 5% over the
    last 30% of the time, as songgen's budget schedule does) and score the held-out text."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(args.seed)
    w = args.window
    net = window_mlp(vocab, w, args.embed, params, dropout).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=args.mlp_lr, weight_decay=0.01)
    train_dev = train.to(device)
    offsets = torch.arange(-w, 0, device=device)
    steps, started = 0, time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        frac = elapsed / seconds
        for group in opt.param_groups:
            group["lr"] = args.mlp_lr * (1 if frac < 0.7 else max(0.05, (1 - frac) / 0.3))
        at = torch.randint(w, len(train), (args.mlp_batch,), device=device)
        loss = F.cross_entropy(net(train_dev[at[:, None] + offsets]), train_dev[at])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
    spent = time.monotonic() - started
    net.eval()
    stream = torch.cat([train[-w:], val]).to(device)
    windows = stream.unfold(0, w, 1)[:len(val)]  # window i ends just before held-out char i
    total = 0.0
    with torch.no_grad():
        for lo in range(0, len(val), 4096):
            total += F.cross_entropy(net(windows[lo:lo + 4096]), stream[w + lo:w + lo + 4096],
                                     reduction="sum").item()
    return {"parameters": sum(p.numel() for p in net.parameters()),
            "hidden": net[2].out_features, "held_out_loss": round(total / len(val), 4),
            "chars_per_sec": round(steps * args.mlp_batch / spent),
            "train_seconds": round(spent, 1), "steps": steps}


# -- temperature --------------------------------------------------------------------------------

def song_figures(songs: list[str], words, skip: str = "") -> dict:
    """Real words (of the text after the opening `skip`), rhyming stanzas (songcraft's own
    measure), songs with a chorus line, and lyric lines that repeat one earlier in their song."""
    from songgen.songcraft.measures import measure, stanzas_of, words_of

    written = [w for s in songs for w in words_of(s[len(skip):] if s.startswith(skip) else s)]
    lines = repeats = 0
    for song in songs:
        seen = set()
        for line in (line for stanza in stanzas_of(song) for line in stanza):
            key = " ".join(words_of(line))
            lines += 1
            repeats += bool(key) and key in seen
            seen.add(key)
    m = measure(songs)
    return {"songs": len(songs), "real_words": round(sum(map(words.is_word, written))
                                                     / max(len(written), 1), 4),
            "rhyming_stanzas": round(m.rhyme_rate, 4), "chorus_songs": round(m.repeat_rate, 4),
            "repeated_lines": round(repeats / max(lines, 1), 4), "words": len(written)}


def opening(val, chars: list[str]) -> tuple[str | None, str]:
    """The first held-out song's title and first lyric line."""
    from songgen.text.lyrics import title_of

    song = "".join(chars[i] for i in val[:5000].tolist()).split(chars[0])[0]
    title = title_of(song)
    lines = [line for line in song.split("\n")[1 if title else 0:] if line.strip()]
    return title, (lines[0] + "\n") if lines else ""


def temperature_part(checkpoint: Path, text: Path, args) -> dict:
    from songgen.text.lyrics import read_songs
    from songgen.songcraft.measures import allowed_words, measure
    from songgen.run.trained import load_checkpoint

    trained = load_checkpoint(checkpoint, device="cpu")
    _, val = held_out(text, trained, args.val_frac, None)
    chars = list(trained.vocab.chars)
    title, prime = opening(val, chars)
    words = allowed_words(measure(read_songs(text)))
    held = [s for s in "".join(chars[i] for i in val.tolist()).split(chars[0]) if s.strip()]
    out = {"title": title, "prime": prime, "held_out": song_figures(held, words), "rows": []}
    for temperature in args.temperatures:
        for mode, extra in (("free", FREE), ("songgen", [])):
            command = songgen_command(
                "sample", checkpoint, "--temp", temperature, "-n", args.songs, "--seed",
                args.seed, "--length", args.length, "--json", "--device", args.device,
                *(["--title", title] if title else []), *(["--prime", prime] if prime else []),
                *extra)
            proc = subprocess.run(command, capture_output=True, text=True, env=clean_env())
            if proc.returncode != 0:
                raise SystemExit(f"songgen sample failed (exit {proc.returncode}):\n"
                                 f"{proc.stderr[-2000:]}")
            songs = [json.loads(line)["text"] for line in proc.stdout.splitlines()]
            skip = (f"# {title}\n\n" if title else "") + prime
            row = {"temperature": temperature, "steering": mode, **song_figures(songs, words,
                                                                                skip)}
            out["rows"].append(row)
            log(f"  temperature {temperature:g}, {mode}: {row}")
    return out


# -- tables and the plot ------------------------------------------------------------------------

def _f(value, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def seqlen_tables(runs: list[dict]) -> str:
    names = list(runs[0]["by_position"])
    lines = ["| seq len | held-out loss (nats/char) | best validation loss | steps | training "
             "chars/s | peak memory (RSS) |", "|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['seq_len']} | {_f(r['held_out_loss'])} | {_f(r['best_val_loss'])} "
                     f"| {r['steps']:,} | {r['chars_per_sec']:,} | {r['peak_rss_mib']:,.0f} MiB |")
    lines += ["", "| seq len | " + " | ".join(f"loss at {n}" for n in names) +
              " | lines that come back: loss first / again | first choice right | whole line right |",
              "|---|" + "---|" * (len(names) + 3)]
    for r in runs:
        rep = r["repeated"]
        cells = [_f(r["by_position"][n]["loss"]) for n in names]
        again = (f"{_f(rep['loss_first'])} / {_f(rep['loss_again'])} ({rep['lines']} lines)"
                 if rep["lines"] else "none")
        lines.append(f"| {r['seq_len']} | " + " | ".join(cells) + f" | {again} | "
                     f"{_pct(rep.get('right_chars'))} | {_pct(rep.get('whole_lines'))} |")
    counts = ", ".join(f"{n}: {c['chars']:,}" for n, c in runs[0]["by_position"].items())
    return "\n".join(lines) + f"\n\nHeld-out characters by position in the song: {counts}."


def _pct(value) -> str:
    return "" if value is None else f"{value:.1%}"


def mlp_table(result: dict) -> str:
    lstm, mlp = result["lstm"], result["mlp"]
    return "\n".join([
        "| model | context | parameters | held-out loss (nats/char) | training chars/s | "
        "training time |", "|---|---|---|---|---|---|",
        f"| LSTM {result['layers']}x{result['hidden']} | the whole text before (trained on "
        f"{lstm['seq_len']} at a time) | {result['lstm_parameters']:,} | "
        f"{_f(lstm['held_out_loss'])} | {lstm['chars_per_sec']:,} | {lstm['train_seconds']:.0f} s |",
        f"| fully connected, 2x{mlp['hidden']} | the last {result['window']} characters | "
        f"{mlp['parameters']:,} | {_f(mlp['held_out_loss'])} | {mlp['chars_per_sec']:,} | "
        f"{mlp['train_seconds']:.0f} s |"])


def temperature_table(result: dict) -> str:
    lines = [f"Opening: title {result['title']!r}, first line {result['prime']!r}.", "",
             "| temperature | steering | real words | rhyming stanzas | repeated lines | "
             "songs with a chorus line |", "|---|---|---|---|---|---|"]
    held = result["held_out"]
    lines.append(f"| (held-out songs) | | {_pct(held['real_words'])} | "
                 f"{_pct(held['rhyming_stanzas'])} | {_pct(held['repeated_lines'])} | "
                 f"{_pct(held['chorus_songs'])} |")
    for r in result["rows"]:
        lines.append(f"| {r['temperature']:g} | {r['steering']} | {_pct(r['real_words'])} | "
                     f"{_pct(r['rhyming_stanzas'])} | {_pct(r['repeated_lines'])} | "
                     f"{_pct(r['chorus_songs'])} |")
    return "\n".join(lines)


def seqlen_svg(runs: list[dict], width: int = 720, height: int = 380) -> str:
    """Loss against sequence length (log scale): held-out, and by position in the song."""
    series = [("held-out, all", [r["held_out_loss"] for r in runs])]
    for name in runs[0]["by_position"]:
        series.append((f"characters {name} into the song",
                       [r["by_position"][name]["loss"] for r in runs]))
    xs = [math.log(r["seq_len"]) for r in runs]
    ys = [y for _, values in series for y in values if y is not None]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys) * 0.95, max(ys) * 1.05
    left, top, w, h = 60, 30, width - 290, height - 80
    px = lambda x: left + (x - x0) / (x1 - x0) * w  # noqa: E731
    py = lambda y: top + (y1 - y) / (y1 - y0) * h  # noqa: E731
    colours = ["#000", "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">', f'<rect width="{width}" '
           f'height="{height}" fill="white"/>', f'<text x="{left}" y="18" font-size="14">Loss '
           'against sequence length (same text, same time each)</text>',
           f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#999"/>']
    for r, x in zip(runs, xs):
        out.append(f'<text x="{px(x):.1f}" y="{top + h + 16}" text-anchor="middle">'
                   f'{r["seq_len"]}</text>')
    for i in range(5):
        y = y0 + (y1 - y0) * i / 4
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
    out.append(f'<text x="{left + w / 2}" y="{height - 14}" text-anchor="middle">--seq-len '
               '(log scale)</text>')
    out.append(f'<text x="14" y="{top + h / 2}" transform="rotate(-90 14 {top + h / 2})" '
               'text-anchor="middle">nats/char</text>')
    for k, (name, values) in enumerate(series):
        colour = colours[k % len(colours)]
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, values) if y is not None)
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                   f'stroke-width="{2.5 if k == 0 else 1.5}"/>')
        out += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>'
                for x, y in zip(xs, values) if y is not None]
        ly = top + 10 + 18 * k
        out.append(f'<line x1="{left + w + 15}" x2="{left + w + 35}" y1="{ly}" y2="{ly}" '
                   f'stroke="{colour}" stroke-width="2"/><text x="{left + w + 40}" '
                   f'y="{ly + 4}">{name}</text>')
    return "\n".join(out + ["</svg>"]) + "\n"


def new_path(folder: Path, stem: str, suffix: str) -> Path:
    """A file name in `folder` not taken yet: results are never overwritten."""
    path, n = folder / f"{stem}{suffix}", 2
    while path.exists():
        path, n = folder / f"{stem}-{n}{suffix}", n + 1
    return path


# -- the suite ----------------------------------------------------------------------------------

PARTS = ("seqlen", "mlp", "temperature")


def parse(argv: list[str], prog: str | None):
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    p.add_argument("--text", type=Path, help=f"the lyrics to train on [../shared/data/{TEXT}]")
    p.add_argument("--minutes", type=float, default=3.0, help="training time of each run")
    p.add_argument("--lengths", default="8,25,50,100,200,400", help="seqlen: --seq-len values")
    p.add_argument("--hidden", type=int, default=256, help="LSTM units per layer (every run)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--val-frac", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--device", default="auto", help="for training, scoring and sampling")
    p.add_argument("--threads", type=int, help="CPU threads [songgen train's own choice; the "
                   "window network uses the count the LSTM run kept]")
    p.add_argument("--score-chars", type=int, default=300_000,
                   help="held-out characters scored at most")
    p.add_argument("--mlp-seq-len", type=int, default=100, help="mlp: the LSTM's --seq-len")
    p.add_argument("--window", type=int, default=32, help="mlp: characters the network sees")
    p.add_argument("--embed", type=int, default=32, help="mlp: embedding size")
    p.add_argument("--mlp-lr", type=float, default=2e-3)
    p.add_argument("--mlp-batch", type=int, default=256)
    p.add_argument("--checkpoint", type=Path, help="temperature: sample this model instead of "
                   "training one (a run at --mlp-seq-len)")
    p.add_argument("--temperatures", default=",".join(map(str, TEMPERATURES)))
    p.add_argument("--songs", type=int, default=10, help="temperature: songs per temperature")
    p.add_argument("--length", type=int, default=1000, help="temperature: characters per song")
    p.add_argument("--out", type=Path, default=OUT, help="where the results, the tables and "
                   "the plot go")
    p.add_argument("--keep", type=Path, help="keep the training runs in this folder")
    args = p.parse_args(argv)
    args.parts = [s.strip() for s in args.only.split(",") if s.strip()]
    if bad := [s for s in args.parts if s not in PARTS]:
        p.error(f"unknown part {', '.join(bad)}; choose from {', '.join(PARTS)}")
    try:
        args.lengths = [int(n) for n in args.lengths.split(",") if n.strip()]
        args.temperatures = [float(t) for t in args.temperatures.split(",") if t.strip()]
    except ValueError:
        p.error("--lengths takes whole numbers and --temperatures numbers, comma-separated")
    return args


def suite_inside(argv: list[str], prog: str | None = None) -> None:
    args = parse(argv, prog)
    text = args.text or default_text()
    if text is None:
        log(f"skipped: {TEXT} not found in ../shared/data or $SONGGEN_BENCH_DATA; give --text")
        return
    if not text.exists():
        raise SystemExit(f"{text} does not exist; give a lyrics file with --text")
    import torch

    from songgen.run.trained import load_checkpoint

    if args.threads:  # scoring and the window network too, and the header says so
        torch.set_num_threads(args.threads)
    runs_needed = sorted(set((args.lengths if "seqlen" in args.parts else []) +
                             ([args.mlp_seq_len] if "mlp" in args.parts or (
                                 "temperature" in args.parts and not args.checkpoint) else [])))
    seconds = args.minutes * 60
    log(f"{len(runs_needed)} training runs of {seconds:g} s, one at a time"
        + (", and the window network for as long" if "mlp" in args.parts else "")
        + f": about {(len(runs_needed) + ('mlp' in args.parts)) * (seconds + 20) / 60:.0f} min")
    keep = tempfile.TemporaryDirectory(prefix="songgen-inside-") if args.keep is None else None
    folder = Path(keep.name) if keep else args.keep
    folder.mkdir(parents=True, exist_ok=True)
    started, runs, result = time.monotonic(), {}, {"text": str(text), "options": vars(args)}
    try:
        for seq_len in runs_needed:
            log(f"training --seq-len {seq_len} for {seconds:g} s")
            run = train_run(text, folder / f"seq{seq_len}", seq_len, seconds, args)
            trained = load_checkpoint(run["folder"], device=args.device)
            run.update(memory_figures(trained, text, args))
            run["parameters"] = sum(p.numel() for p in trained.model.parameters())
            log(f"  held-out {run['held_out_loss']:.3f} nats/char, {run['chars_per_sec']:,} "
                f"chars/s, {run['peak_rss_mib']:,.0f} MiB")
            runs[seq_len] = run
        if "seqlen" in args.parts:
            result["seqlen"] = [runs[n] for n in args.lengths]
        if "mlp" in args.parts:
            lstm = runs[args.mlp_seq_len]
            trained = load_checkpoint(lstm["folder"], device=args.device)
            train, val = held_out(text, trained, args.val_frac, args.score_chars)
            if args.threads or lstm["threads"]:
                torch.set_num_threads(args.threads or lstm["threads"])
            log(f"training the window network for {lstm['train_seconds']:g} s")
            mlp = train_mlp(train, val, len(trained.vocab), lstm["parameters"],
                            lstm["train_seconds"], trained.device, args,
                            trained.model.config.dropout)
            result["mlp"] = {"lstm": lstm, "mlp": mlp, "window": args.window,
                             "lstm_parameters": lstm["parameters"], "hidden": args.hidden,
                             "layers": args.layers}
        if "temperature" in args.parts:
            checkpoint = args.checkpoint or Path(runs[args.mlp_seq_len]["folder"])
            log(f"sampling {args.songs} songs at each temperature from {checkpoint}")
            result["temperature"] = temperature_part(checkpoint, text, args)
    finally:
        if keep:
            keep.cleanup()
    report(result, args, argv, prog, time.monotonic() - started)


def report(result: dict, args, argv: list[str], prog: str | None, took: float) -> None:
    """The tables on stdout and in the results folder, beside the raw results and the plot."""
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"inside-{datetime.date.today().isoformat()}"
    head = (f"{prog or 'python -m benchmarks inside'} {' '.join(argv)}: "
            f"{machine('cuda' if args.device.startswith('cuda') else 'cpu')}; text "
            f"{Path(result['text']).name}; took {took:.0f} s")
    parts = [head]
    if "seqlen" in result:
        parts += ["### Sequence length", seqlen_tables(result["seqlen"])]
        svg = new_path(args.out, f"{stem}-seqlen", ".svg")
        svg.write_text(seqlen_svg(result["seqlen"]), encoding="utf-8")
        parts.append(f"![Loss against sequence length]({svg.name})")
        log(f"plot: {svg}")
    if "mlp" in result:
        parts += ["### An LSTM against a fully connected network on a fixed window",
                  mlp_table(result["mlp"])]
    if "temperature" in result:
        parts += ["### Temperature", temperature_table(result["temperature"])]
    tables = "\n\n".join(parts) + "\n"
    result["date"] = datetime.datetime.now().isoformat(timespec="seconds")
    result["options"] = {k: (str(v) if isinstance(v, Path) else v)
                         for k, v in result["options"].items()}
    raw = new_path(args.out, stem, ".json")
    raw.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    new_path(args.out, stem, ".md").write_text(tables, encoding="utf-8")
    log(f"results: {raw}")
    print(tables, end="")


if __name__ == "__main__":
    suite_inside(sys.argv[1:])
