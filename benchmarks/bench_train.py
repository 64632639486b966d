"""Training throughput: songgen.training.train() against a bare PyTorch loop, chars/s.

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

    python benchmarks/bench_train.py [--quick] [--device cpu|cuda] [--threads N] [--rounds N]
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SCRIPT = Path(__file__).resolve()

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
    """The real thing: songgen.training.train() with its default options except the shapes, the
    step count and a fresh throwaway checkpoint folder; progress bar on (stderr is a file).

    The time is the run's own: `TrainResult.loop_seconds`, the wall time of the training loop
    (steps, bar, evaluation, checkpoints), not the corpus loading and model construction before
    it, which the bare side does untimed too. The run ends with a checkpoint save, which waits
    for the device, so the figure holds on CUDA as well."""
    _threads(spec)
    from songgen.config import TrainConfig
    from songgen.training import train

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

    from songgen.lyrics import load_corpus  # the same encoded text; untimed set-up only

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
    from songgen.devices import resolve_precision

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
    from songgen.batches import StreamBatches
    from songgen.config import TrainConfig
    from songgen.lyrics import load_corpus

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
    from songgen.batches import StreamBatches
    from songgen.lyrics import load_corpus

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
    from songgen.lyrics import read_songs

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
    from songgen.batches import StreamBatches
    from songgen.lyrics import load_corpus

    return min(len(StreamBatches(load_corpus(source, 0.1).train, batch, seq)), 1000)


def _checkpoint_scaled(out: dict, steps: int, every: int) -> float | None:
    """chars/s with the measured checkpoint time counted at steps/every of its weight."""
    if out.get("save_seconds") is None:
        return None
    seconds = out["seconds"] - out["save_seconds"] * (1 - min(1.0, steps / every))
    return out["chars_per_s"] * out["seconds"] / seconds


if __name__ == "__main__":
    if not common.worker_main({"songgen": worker_songgen, "bare": worker_bare}):
        common.standalone(run, "training throughput: songgen vs a bare PyTorch loop")
