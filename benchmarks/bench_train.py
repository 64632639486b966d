"""Training: three suites.

`train`: throughput, songgen.training.loop.train() against a bare PyTorch loop, chars/s.

Each side is its own fresh subprocess (songgen's train() tunes glibc malloc for the whole
process, so sides must not share one), kept alive to serve all rounds: songgen (one whole
train() call per round), the bare loop with glibc's default malloc, the bare loop with the
malloc tuning in its environment. They take turns, the order rotating every round, after one
untimed warm-up each. songgen's time is the one its run reports (`TrainResult.loop_seconds`:
the training loop, not the set-up before it); the bare loop times the same part of its own.

The corpus is a slice of child_ballads.txt whose training part is exactly the number of steps
measured (one epoch), so songgen's default evaluation interval (once an epoch) evaluates and
saves exactly once, at the last step, on a validation part chosen to be the same fraction of
the training text as the defaults give on the whole corpus (see README.md).

    python -m benchmarks train [--quick] [--device cpu|cuda] [--threads N] [--rounds N]

`busy`: training speed on a busy machine: `songgen train` alone, two at once, and beside a busy
non-songgen process, each run a real `songgen train` subprocess on the demo songs (2x256 model,
batch 32 x seq 100, the defaults), its speed read from its own metrics.jsonl.

    python -m benchmarks busy [--seconds 20] [--variant NAME=ENV_OR_ARGS ...]

A variant is extra environment (`KEY=VALUE`) and/or songgen options (`--threads 1`), e.g.
`--variant passive="OMP_WAIT_POLICY=PASSIVE"`. Scenarios, for each variant, one after the
other (never two scenarios at once): alone; two runs started together (each one's speed);
alone beside `python -c "while True: pass"`. Ratios are against the variant's own lone run
and against the first variant's lone run, measured in this same call.

`quality`: char-rnn's defaults in a bare PyTorch loop (2-layer LSTM with 128 units, sequence
length 50, batch 50, Adam at 2e-3, gradient clipping at 5, no dropout), on the same corpus,
train/validation split and validation measure (songgen.training.evaluation.evaluate) as songgen, so its
curve (JSON lines on stdout, one each --eval-seconds of training) compares directly with a
songgen run's metrics.jsonl. The clock stops while validating, which favours the baseline
slightly.

    python -m benchmarks quality ../shared/data/child_ballads.txt --minutes 10
    songgen train ../shared/data/child_ballads.txt --time-limit 10m --patience 0   # songgen's curve
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parent.parent

# name: model and data shapes, then steps (quick, full); the steps are rounded up to a slice's
# whole epoch.
CONFIGS = {
    "small": dict(layers=2, hidden=128, embed=64, seq=50, batch=50, steps=(12, 60)),
    "medium": dict(layers=2, hidden=512, embed=64, seq=100, batch=64, steps=(2, 24)),
}
DROPOUT = 0.1   # songgen's default model has it; the bare model gets the same


# -- the workers (each side is its own fresh process, serving several rounds) ---------------

def _threads(spec: dict) -> None:
    import torch

    torch.set_num_threads(spec["threads"])


def worker_songgen(spec: dict) -> dict:
    """The real thing: songgen.training.loop.train() with its default options except the shapes, the
    step count and a fresh throwaway checkpoint folder; progress bar on (stderr is a file).

    The time is the run's own: `TrainResult.loop_seconds`, the wall time of the training loop
    (steps, bar, evaluation, checkpoints), not the corpus loading and model construction before
    it, which the bare side does untimed too. The run ends with a checkpoint save, which waits
    for the device, so the figure holds on CUDA as well."""
    _threads(spec)
    from songgen.config import TrainConfig
    from songgen.training.loop import train

    folder = Path(tempfile.mkdtemp(prefix="checkpoints-", dir=spec["tmp"]))
    try:
        config = TrainConfig(seq_len=spec["seq"], batch_size=spec["batch"],
                             steps=spec["steps"], device=spec["device"],
                             checkpoint_dir=str(folder), threads=spec["threads"])
        model = dict(embed_dim=spec["embed"], hidden_size=spec["hidden"],
                     layers=spec["layers"], dropout=DROPOUT)
        cpu, start = time.process_time(), common.timer()
        result = train(spec["path"], model=model, config=config, quiet=False)
        total, cpu = common.timer() - start, time.process_time() - cpu
        metrics = folder / "metrics.jsonl"
        records = metrics.read_text().splitlines() if metrics.exists() else []
        evals = len(records)
        # The last record's "elapsed" (seconds since the loop started) is taken after the
        # evaluation, before the checkpoint is written: what follows it is the save.
        after_eval = json.loads(records[-1]).get("elapsed") if records else None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    seconds = result.loop_seconds
    chars = result.step * spec["batch"] * spec["seq"]
    saving = seconds - after_eval if after_eval is not None else None
    return {"chars_per_s": chars / seconds, "seconds": seconds, "total_seconds": total,
            "cpu_seconds": cpu, "steps": result.step, "evals": evals, "save_seconds": saving}


def worker_bare(spec: dict) -> dict:
    """Embedding -> LSTM -> dropout -> Linear, cross-entropy, AdamW; carried detached state;
    the same contiguous-rows layout and steps. No clipping, no evaluation, nothing else.
    Model and optimiser are built afresh (untimed) for every measurement, as train() does."""
    _threads(spec)
    import torch
    import torch.nn.functional as F
    from torch import nn

    from songgen.text.corpus import load_corpus  # the same encoded text; untimed set-up only

    device = torch.device(spec["device"])
    corpus = load_corpus(spec["path"], 0.1)
    data, vocab = corpus.train, len(corpus.vocab)
    B, T = spec["batch"], spec["seq"]
    columns = (len(data) - 1) // B
    inputs = data[: B * columns].view(B, columns)
    targets = data[1: B * columns + 1].view(B, columns)
    per_epoch = columns // T

    torch.manual_seed(1234)
    embed = nn.Embedding(vocab, spec["embed"]).to(device)
    lstm = nn.LSTM(spec["embed"], spec["hidden"], spec["layers"], batch_first=True,
                   dropout=DROPOUT).to(device)
    head = nn.Linear(spec["hidden"], vocab).to(device)
    params = [*embed.parameters(), *lstm.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=3e-3, weight_decay=0.01)
    # The same autocast songgen's precision "auto" picks (bf16 on recent CUDA GPUs and on CPUs
    # with AMX), so that both sides do the same arithmetic and the ratio is the loop's overhead.
    from songgen.model.devices import resolve_precision

    amp = resolve_precision("auto", device)[0] == torch.bfloat16

    state = None
    common.sync(spec["device"])
    cpu, start = time.process_time(), common.timer()
    for step in range(spec["steps"]):
        i = step % per_epoch
        x = inputs[:, i * T:(i + 1) * T].to(device).long()
        y = targets[:, i * T:(i + 1) * T].to(device).long()
        with torch.autocast(device.type, torch.bfloat16, enabled=amp):
            out, state = lstm(embed(x), state)
            logits = head(F.dropout(out, DROPOUT, training=True))
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state = (state[0].detach(), state[1].detach())
    loss.item()
    common.sync(spec["device"])
    seconds, cpu = common.timer() - start, time.process_time() - cpu
    return {"chars_per_s": spec["steps"] * B * T / seconds, "seconds": seconds,
            "cpu_seconds": cpu, "steps": spec["steps"]}


# -- choosing the corpus slice -------------------------------------------------------------

def _default_eval_ratio(text_path: Path) -> tuple[float, int]:
    """Validation characters evaluated per training character with songgen's defaults
    (batch 32 x seq 100, once an epoch capped at 1000 steps) on the whole corpus."""
    from songgen.training.batches import StreamBatches
    from songgen.config import TrainConfig
    from songgen.text.corpus import load_corpus

    d = TrainConfig()
    corpus = load_corpus(text_path, d.val_frac)
    per_epoch = len(StreamBatches(corpus.train, d.batch_size, d.seq_len))
    every = min(per_epoch, 1000)
    return len(corpus.val) / (every * d.batch_size * d.seq_len), every


def make_slice(songs: list[str], folder: Path, batch: int, seq: int, steps: int,
               want_ratio: float) -> tuple[Path, int, float]:
    """Write consecutive songs of the corpus so that one epoch is at least `steps` steps and the
    validation part is as close as possible to `want_ratio` x the training characters.
    Small slices use the corpus's short songs, so that the song-boundary cut can land close.

    Returns the file, its steps per epoch and its evaluation ratio.
    """
    from songgen.training.batches import StreamBatches
    from songgen.text.corpus import load_corpus

    need = steps * batch * seq * (1 + want_ratio) + batch
    for limit in (1500, 3000, math.inf):
        pool = [s for s in songs if len(s) <= limit]
        if sum(len(s) + 3 for s in pool) >= 2 * need:
            break
    sizes = [0]
    for song in pool:
        sizes.append(sizes[-1] + len(song) + 3)
    counts = [k for k in range(1, len(pool) + 1) if need <= sizes[k] <= need * 1.5 + 10_000]
    if not counts:
        raise SystemExit(f"the corpus is too small for {steps} steps of {batch} x {seq}")
    path = folder / f"slice-{batch}x{seq}-{steps}.txt"
    best = None
    for k in counts[:40]:
        path.write_text("\n\n\n".join(pool[:k]) + "\n", encoding="utf-8")
        corpus = load_corpus(path, 0.1)
        per_epoch = len(StreamBatches(corpus.train, batch, seq))
        if per_epoch < steps:
            continue
        ratio = len(corpus.val) / (per_epoch * batch * seq)
        # Closest evaluation share first (within 2%); then the fewest extra steps.
        score = (round(abs(math.log(ratio / want_ratio)) * 50), per_epoch)
        if best is None or score < best[0]:
            best = (score, k, per_epoch, ratio)
    if best is None:
        raise SystemExit("no slice of the corpus fits; use a larger corpus")
    _, k, per_epoch, ratio = best
    path.write_text("\n\n\n".join(pool[:k]) + "\n", encoding="utf-8")
    return path, per_epoch, ratio


# -- the benchmark -------------------------------------------------------------------------

def run(device: str = "cpu", quick: bool = False, rounds: int | None = None,
        threads: int | None = None, configs: list[str] | None = None) -> list[common.Row]:
    from songgen.text.lyrics import read_songs

    threads = threads or common.default_threads()
    rounds = rounds or (3 if quick else 9)
    source = common.corpus_path()
    songs = read_songs(source)
    want, default_every = _default_eval_ratio(source)
    common.log(f"train: defaults on {source.name} evaluate {want:.3f} validation chars per "
               f"training char (every {default_every} steps); matching that per slice")
    rows = []
    with tempfile.TemporaryDirectory(prefix="songgen-bench-train-") as tmp:
        for name in configs or list(CONFIGS):
            c = CONFIGS[name]
            steps = c["steps"][0 if quick else 1]
            path, steps, ratio = make_slice(songs, Path(tmp), c["batch"], c["seq"], steps, want)
            spec = {k: c[k] for k in ("layers", "hidden", "embed", "seq", "batch")}
            spec.update(path=str(path), steps=steps, device=device, threads=threads)
            label = (f"{name}: {c['layers']}x{c['hidden']}, embed {c['embed']}, batch "
                     f"{c['batch']} x seq {c['seq']}, {steps} steps = 1 epoch + 1 eval/save, "
                     f"{threads} thread{'s' * (threads > 1)}, {device}")
            common.log(f"train {label}: eval share {ratio:.3f} (defaults {want:.3f}), "
                       f"{rounds} rounds")
            with common.Worker(SCRIPT) as ours, common.Worker(SCRIPT) as bare, \
                    common.Worker(SCRIPT, common.clean_env(common.MALLOC_TUNED)) as tuned:
                # Warm-up (untimed): imports, first kernels, the allocator's first growth.
                for worker, kind in ((ours, "songgen"), (bare, "bare"), (tuned, "bare")):
                    worker({**spec, "kind": kind, "steps": 2})

                def side(worker, kind, title):
                    def measure(r):
                        out = worker({**spec, "kind": kind})
                        if kind == "songgen" and out["evals"] < 1:
                            raise RuntimeError("songgen's run did no evaluation; check the slice")
                        extra = f", {out['evals']} eval+save" if "evals" in out else ""
                        if out.get("save_seconds") is not None:
                            extra += f", checkpoint {out['save_seconds']:.2f} s"
                        common.log(f"  round {r + 1} {title}: {out['chars_per_s']:,.0f} chars/s "
                                   f"({out['seconds']:.1f} s, cpu {out['cpu_seconds']:.1f} s"
                                   f"{extra})")
                        outs[title].append(out)
                        return out["chars_per_s"]
                    return measure

                outs: dict[str, list[dict]] = {"songgen": [], "bare": [], "bare tuned": []}

                res = common.interleave({"songgen": side(ours, "songgen", "songgen"),
                                         "bare": side(bare, "bare", "bare"),
                                         "tuned": side(tuned, "bare", "bare tuned")}, rounds)
            rows.append(common.ratio_row(
                "training chars/s vs bare loop, glibc default malloc", label, res["songgen"],
                res["bare"], "chars/s", target=0.95))
            rows.append(common.ratio_row(
                "training chars/s vs bare loop, malloc tuned by env", label, res["songgen"],
                res["tuned"], "chars/s", target=0.95))
            # The slice writes one checkpoint per `steps`; the defaults on the whole corpus
            # write one per epoch. Rescale the measured write time to that share.
            every = _default_every(source, c["batch"], c["seq"])
            scaled = [_checkpoint_scaled(o, steps, every) for o in outs["songgen"]]
            if all(v is not None for v in scaled):
                rows.append(common.ratio_row(
                    f"same, songgen's checkpoint time scaled to 1 per {every} steps "
                    "(its default share)", label, scaled, res["tuned"], "chars/s", target=0.95))
    return rows


def _default_every(source: Path, batch: int, seq: int) -> int:
    """Steps between evaluations/checkpoints with the default interval on the whole corpus."""
    from songgen.training.batches import StreamBatches
    from songgen.text.corpus import load_corpus

    return min(len(StreamBatches(load_corpus(source, 0.1).train, batch, seq)), 1000)


def _checkpoint_scaled(out: dict, steps: int, every: int) -> float | None:
    """chars/s with the measured checkpoint time counted at steps/every of its weight."""
    if out.get("save_seconds") is None:
        return None
    seconds = out["seconds"] - out["save_seconds"] * (1 - min(1.0, steps / every))
    return out["chars_per_s"] * out["seconds"] / seconds


def suite_train(argv: list[str], prog: str | None = None) -> None:
    common.side_by_side({"train": run}, "training throughput: songgen vs a bare PyTorch loop",
                        argv, prog)


# -- busy: real `songgen train` runs, alone, two at once, beside a busy process ------------

def start(folder: Path, seconds: float, env: dict, args: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "songgen", "train", "--time-limit", f"{seconds}s",
               "--eval-every", "100000", "--patience", "0", "--keep-last", "0", "-q",
               "--checkpoint-dir", str(folder), *args]
    return subprocess.Popen(command, env={**os.environ, **env}, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def speed(proc: subprocess.Popen, folder: Path) -> float:
    _, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"songgen train failed: {err.strip()[-500:]}")
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return float(rows[-1]["chars_per_sec"])


def scenario(kind: str, seconds: float, env: dict, args: list[str]) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        folders = [Path(tmp) / "a", Path(tmp) / "b"]
        busy = None
        if kind == "busy":
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            runs = [start(folders[0], seconds, env, args)]
            if kind == "two":
                runs.append(start(folders[1], seconds, env, args))
            return [speed(proc, folder) for proc, folder in zip(runs, folders)]
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()


def parse_variant(text: str) -> tuple[str, dict, list[str]]:
    name, _, spec = text.partition("=")
    env, args = {}, []
    for word in shlex.split(spec):
        if "=" in word and not word.startswith("-"):
            key, value = word.split("=", 1)
            env[key] = value
        else:
            args.append(word)
    return name, env, args


def suite_busy(argv: list[str], prog: str | None = None) -> None:
    parser = common.arg_parser("training speed alone, two at once, and beside a busy process",
                               prog, side_by_side=False)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME=SPEC: environment KEY=VALUE words and songgen options")
    opts = parser.parse_args(argv)
    print(f"{prog or 'busy'} {' '.join(argv)}: {common.machine()}\n")
    variants = [parse_variant(v) for v in opts.variant] or [("default", {}, [])]
    print(f"| variant | alone chars/s | two at once, each | two / alone | beside a busy loop "
          f"| busy / alone | alone / first variant alone |")
    print("|---|---|---|---|---|---|---|")
    first = None
    for name, env, args in variants:
        alone = scenario("alone", opts.seconds, env, args)[0]
        two = scenario("two", opts.seconds, env, args)
        busy = scenario("busy", opts.seconds, env, args)[0]
        first = first or alone
        print(f"| {name} | {alone:,.0f} | {two[0]:,.0f} / {two[1]:,.0f} | "
              f"{min(two) / alone:.2f}x | {busy:,.0f} | {busy / alone:.2f}x | "
              f"{alone / first:.2f}x |", flush=True)


# -- quality: char-rnn's defaults in a bare loop, for the ten-minute comparison -------------

def char_rnn(vocab: int, hidden: int = 128, layers: int = 2):
    """char-rnn's model: one-hot input (a learnt stand-in: an embedding as wide as the
    vocabulary), an LSTM, a linear head."""
    from torch import nn

    class CharRNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, vocab)
            self.lstm = nn.LSTM(vocab, hidden, layers, batch_first=True)
            self.head = nn.Linear(hidden, vocab)

        def forward(self, x, state=None):
            out, state = self.lstm(self.embed(x), state)
            return self.head(out), state

    return CharRNN()


def suite_quality(argv: list[str], prog: str | None = None) -> None:
    import torch
    import torch.nn.functional as F
    from torch import nn

    from songgen.training.evaluation import evaluate
    from songgen.text.corpus import load_corpus

    parser = common.arg_parser("char-rnn's defaults in a bare PyTorch loop: validation curve",
                               prog, side_by_side=False)
    parser.add_argument("text")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--eval-seconds", type=float, default=60)
    args = parser.parse_args(argv)
    corpus = load_corpus(args.text)
    torch.manual_seed(0)
    model = char_rnn(len(corpus.vocab))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    batch, seq = 50, 50
    cols = (len(corpus.train) - 1) // batch
    x_all = corpus.train[: batch * cols].view(batch, cols)
    y_all = corpus.train[1: batch * cols + 1].view(batch, cols)
    steps_per_epoch = cols // seq
    clock, step, state, next_eval = 0.0, 0, None, args.eval_seconds
    started = time.perf_counter()
    while clock < args.minutes * 60:
        i = step % steps_per_epoch
        if i == 0:
            state = None
        x = x_all[:, i * seq:(i + 1) * seq].long()
        y = y_all[:, i * seq:(i + 1) * seq].long()
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        state = (state[0].detach(), state[1].detach())
        step += 1
        clock = time.perf_counter() - started
        if clock >= next_eval or clock >= args.minutes * 60:
            paused = time.perf_counter()
            val = evaluate(model, corpus.val, torch.device("cpu"), rows=batch)
            started += time.perf_counter() - paused
            print(json.dumps({"elapsed": round(clock, 1), "step": step, "val_loss": round(val, 4)}),
                  flush=True)
            next_eval += args.eval_seconds


# -- exact: resumes, torchrun and the bf16 probe (#22) --------------------------------------

CAPPED = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}


def songgen(args: list[str], env: dict | None = None, procs: int = 1) -> None:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc-per-node", str(procs), "-m", "songgen"] if procs > 1 else
                [sys.executable, "-m", "songgen"])
    run = subprocess.run([*launcher, "train", *args, "-q"], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, **(env or {})})
    if run.returncode:
        raise SystemExit(f"songgen train {' '.join(args)} failed:\n{run.stderr[-1500:]}")


def last(folder: Path) -> dict:
    import torch

    return torch.load(folder / "last.pt", weights_only=True)


def weight_gap(a: dict, b: dict) -> float:
    return max((x - b["model_state"][k]).abs().max().item()
               for k, x in a["model_state"].items())


def resumes(root: Path, model: list[str], steps: int, stops: list[int]) -> list[tuple]:
    rows = []
    for i, stop in enumerate(stops):
        busy_beside = i % 2 == 1
        env = {} if busy_beside else CAPPED
        # Dropout and the schedule pinned: a run of `--steps stop` would otherwise choose them
        # for its shorter budget (lower dropout, a rate decaying to `stop`), which is a
        # different run, not a resume that went wrong.
        common = [*model, "--seed", str(100 + i), "--eval-every", str(max(steps // 3, 1)),
                  "--dropout", "0.1", "--lr-schedule", "none"]
        songgen([*common, "--steps", str(steps), "--checkpoint-dir", str(root / f"s{i}")], env)
        songgen([*common, "--steps", str(stop), "--checkpoint-dir", str(root / f"r{i}")], env)
        busy = None
        if busy_beside:
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(0.5)
        try:
            songgen(["--resume", "--steps", str(steps), "--checkpoint-dir", str(root / f"r{i}")],
                    env)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
        a, b = last(root / f"s{i}"), last(root / f"r{i}")
        gap = weight_gap(a, b)
        threads = sorted({h.get("threads") for h in b["history"]} - {None})
        rows.append(("busy process beside" if busy_beside else "ISA=AVX512_CORE_BF16",
                     f"stop {stop}", a["choices"]["precision"]["value"],
                     "bit-identical" if gap == 0 else f"DIFFERS by {gap:.3g}",
                     f"threads seen {threads}"))
    return rows


def distributed(root: Path, model: list[str], steps: int) -> list[tuple]:
    rows = []
    for precision in ("fp32", "auto"):
        args = [*model, "--steps", str(steps), "--precision", precision,
                "--eval-every", str(steps)]
        if precision == "fp32":
            args += ["--dropout", "0"]
        songgen([*args, "--checkpoint-dir", str(root / f"one-{precision}")])
        songgen([*args, "--checkpoint-dir", str(root / f"two-{precision}")], procs=2)
        one, two = last(root / f"one-{precision}"), last(root / f"two-{precision}")
        a, b = one["history"][-1]["val_loss"], two["history"][-1]["val_loss"]
        rows.append((f"torchrun 2 vs 1, {precision}", two["choices"]["precision"]["value"],
                     f"weights differ by {weight_gap(one, two):.3g}",
                     f"val loss {a:.4f} vs {b:.4f} ({abs(a - b) / a:.2%})"))
    return rows


PROBE = """
import json, time, torch
from songgen.config import ModelConfig
from songgen.model.devices import resolve_precision
from songgen.model.probes import bf16_speedup
config = ModelConfig(vocab_size=62, hidden_size={hidden})
seen = {{}}
def probe():
    seen["probe"] = bf16_speedup(config)
    return seen["probe"]
began = time.perf_counter()
dtype, why = resolve_precision("auto", torch.device("cpu"), probe)
p = seen.get("probe")
print(json.dumps({{"ratio": p and p.value, "disturbed": p and p.disturbed,
                  "choice": why.split(":")[0], "seconds": time.perf_counter() - began}}))
"""


def probes(starts: int, hidden: int) -> list[tuple]:
    rows = []
    for i in range(starts):
        out = subprocess.run([sys.executable, "-c", PROBE.format(hidden=hidden)],
                             capture_output=True, text=True, cwd=REPO,
                             env={**os.environ, **CAPPED})
        if out.returncode:
            raise SystemExit(f"the probe failed:\n{out.stderr[-1500:]}")
        r = json.loads(out.stdout)
        ratio = "not probed" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        rows.append((f"probe start {i + 1}, 2x{hidden}", r["choice"], ratio,
                     f"{r['seconds']:.2f} s", r["disturbed"] or "undisturbed"))
    return rows


def suite_exact(argv: list[str] | None = None, prog: str | None = None) -> None:
    """Exact on every CPU (#22): resumed runs against straight ones, torchrun against one process,
    and the bf16 probe's answers over repeated starts, as one table.

        python -m benchmarks exact [--quick] [--only resumes|torchrun|probes]

    1. Resumes: a straight `songgen train` of STEPS steps against the same run stopped at step k
       and resumed to STEPS, in auto precision, each pair with its own seed and k; half of them
       under ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 (a CPU with AVX-512 BF16 and no AMX: the bf16
       probe decides), half with a busy process (`while True: pass`) beside the resumes (the
       thread tuner starts on fewer threads, or changes them). Bit-identical or not, and the
       largest weight difference.
    2. torchrun: 2 processes against 1 (the same batch, split in two), in fp32 (dropout 0:
       weights to 1e-4) and in auto precision (final validation losses within 1%).
    3. The bf16 probe under ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16, in a fresh process each start:
       its ratio, choice, time, and whether it saw itself disturbed.

    Run it on an otherwise idle machine; the CPU's model name heads the table. --quick is a
    smoke test of the script itself (tiny model, few steps, one of each), not a measurement.
    """
    parser = argparse.ArgumentParser(prog=prog, description=suite_exact.__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test of the script")
    parser.add_argument("--only", choices=["resumes", "torchrun", "probes"],
                        help="one part of the table (the probes want an idle machine)")
    args = parser.parse_args(argv)
    if args.quick:
        model = ["--hidden-size", "32", "--embed-dim", "16", "--seq-len", "32", "--batch-size", "8"]
        steps, stops, starts, hidden = 12, [5, 7], 2, 64
    else:
        model = ["--hidden-size", "128", "--seq-len", "100", "--batch-size", "32"]
        steps, stops, starts, hidden = 120, [17, 41, 59, 88, 23, 50, 71, 99], 10, 256
    print(f"CPU: {common.cpu_model()}; {os.cpu_count()} logical CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = []
        if args.only in (None, "resumes"):
            rows += resumes(root, model, steps, stops)
        if args.only in (None, "torchrun"):
            rows += distributed(root, model, steps)
        if args.only in (None, "probes"):
            rows += probes(starts, hidden)
    width = [max(len(str(r[i])) if i < len(r) else 0 for r in rows) for i in range(5)]
    for row in rows:
        print("  ".join(str(v).ljust(width[i]) for i, v in enumerate(row)).rstrip())
    same = sum("bit-identical" in r for r in rows)
    if args.only in (None, "resumes"):
        print(f"resumed runs bit-identical: {same} of {len(stops)}")


if __name__ == "__main__":
    if not common.worker_main({"songgen": worker_songgen, "bare": worker_bare}):
        suite_train(sys.argv[1:])
