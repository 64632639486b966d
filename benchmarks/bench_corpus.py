"""The corpus: two suites.

`corpus`: loading, file -> encoded tensor with songgen.text.corpus.load_corpus, MB/s and peak memory.

A ~100 MB corpus is built by repeating child_ballads.txt into a temporary file (deleted at the
end). Every load runs in a fresh subprocess, which records its resident memory after importing
torch, numpy and the loader (the baseline), then the peak (VmHWM) after the load; memory per
character is (peak - baseline) / characters. The reference is a bare vectorised reader of the
same file: read, decode UTF-8, code points via UTF-32, the characters present (bincount in
chunks), one numpy lookup from code points to uint8 ids (no normalisation, no song splitting,
no validation split). Sides alternate, rounds rotated.

    python -m benchmarks corpus [--quick] [--size-mb 100]

`cache`: the corpus cache: first load against a cached one, resume start-up, and the memory of two
torchrun processes sharing the cache.

A corpus of --size-mb (default 1000) is made by repeating child_ballads.txt into --dir (default
/tmp/songgen-bench-cache; removed at the end unless --keep), and read once so that every load
starts from the page cache. Then, each in a fresh process:

1. load: `load_corpus(BIG)` without a cache (what every process did before the cache), the
   first load with a cache (read, encode, write the cache file), then cached loads. Seconds,
   MB/s of the text, and the peak resident memory the load added (VmHWM).
2. resume: a tiny run of one step on BIG (which writes the cache), then `train(resume=True)`
   for one more step, with the cache and without it; "start" is the time from the worker's
   first line (before importing torch) to the first step: the whole call minus its loop.
3. memory (unless --skip-rss): `torchrun --standalone --nproc-per-node 2 -m songgen train BIG
   --device cpu ...` for --seconds of training, with `--corpus-cache none`, then with a cache
   folder being built, then with it built; /proc/PID/smaps_rollup of both workers sampled
   every 0.5 s (the sample with the largest Rss of each is reported).

    python -m benchmarks cache [--size-mb 1000] [--dir /tmp/songgen-bench-cache] [--keep]
                               [--rounds 2] [--seconds 15] [--skip-rss] [--only-load]
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # a worker's first line: before torch is imported

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SCRIPT = Path(__file__).resolve()
MB = 1e6
CHUNK = 1 << 24


def worker_songgen(spec: dict) -> dict:
    import numpy  # noqa: F401
    import torch  # noqa: F401

    from songgen.text.corpus import load_corpus

    base = common.rss_kib("VmRSS")
    start = common.timer()
    corpus = load_corpus(spec["path"], 0.1)
    seconds = common.timer() - start
    peak = common.rss_kib("VmHWM")
    return {"seconds": seconds, "chars": corpus.chars, "peak_bytes": (peak - base) * 1024}


def worker_bare(spec: dict) -> dict:
    import numpy as np
    import torch

    base = common.rss_kib("VmRSS")
    start = common.timer()
    text = Path(spec["path"]).read_bytes().decode("utf-8")
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    top = int(codes.max()) + 1
    seen = np.zeros(top, dtype=bool)
    for i in range(0, len(codes), CHUNK):  # bincount widens to int64: bound that copy
        seen |= np.bincount(codes[i:i + CHUNK], minlength=top) > 0
    present = np.flatnonzero(seen)
    lookup = np.zeros(int(present[-1]) + 1, dtype=np.uint8)
    lookup[present] = np.arange(1, len(present) + 1)
    ids = torch.from_numpy(lookup[codes])
    seconds = common.timer() - start
    peak = common.rss_kib("VmHWM")
    return {"seconds": seconds, "chars": len(ids), "peak_bytes": (peak - base) * 1024}


def build(folder: Path, size_mb: float) -> Path:
    """child_ballads.txt repeated (songs separated by two blank lines) to about `size_mb`,
    then read once, so that every side starts from the page cache."""
    piece = common.corpus_path().read_bytes().rstrip(b"\n") + b"\n\n\n"
    path = folder / "big.txt"
    copies = max(1, round(size_mb * MB / len(piece)))
    with open(path, "wb") as f:
        for _ in range(copies):
            f.write(piece)
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass
    return path


def run(device: str = "cpu", quick: bool = False, rounds: int | None = None,
        threads: int | None = None, size_mb: float = 100) -> list[common.Row]:
    rounds = rounds or (2 if quick else 3)
    with tempfile.TemporaryDirectory(prefix="songgen-bench-corpus-") as tmp:
        path = build(Path(tmp), size_mb)
        size = path.stat().st_size
        label = f"{size / MB:.0f} MB ({size / common.corpus_path().stat().st_size:.0f} x " \
                f"child_ballads.txt), fresh process, CPU"
        common.log(f"corpus: {label}, {rounds} rounds")
        results: dict[str, list[dict]] = {"songgen": [], "bare": []}

        def side(kind):
            def measure(r):
                out = common.run_worker(SCRIPT, {"kind": kind, "path": str(path)})
                results[kind].append(out)
                common.log(f"  round {r + 1} {kind}: {size / MB / out['seconds']:.1f} MB/s, "
                           f"{out['peak_bytes'] / out['chars']:.1f} bytes/char peak")
                return size / MB / out["seconds"]
            return measure

        speed = common.interleave({"songgen": side("songgen"), "bare": side("bare")}, rounds)
        per_char = {k: [o["peak_bytes"] / o["chars"] for o in v] for k, v in results.items()}
    mbps = common.median(speed["songgen"])
    return [
        common.ratio_row("corpus load MB/s (file -> encoded tensor)", label, speed["songgen"],
                         speed["bare"], "MB/s", absolute=">= 50 MB/s", absolute_met=mbps >= 50,
                         ref_name="bare numpy reader"),
        common.ratio_row("corpus load peak memory per character (lower is better)", label,
                         per_char["songgen"], per_char["bare"], "bytes/char",
                         ref_name="bare numpy reader"),
    ]


def suite_corpus(argv: list[str], prog: str | None = None) -> None:
    parser = common.arg_parser("corpus loading: songgen vs a bare numpy reader", prog)
    parser.add_argument("--size-mb", type=float, default=100)
    args = parser.parse_args(argv)
    rows = run(quick=args.quick, rounds=args.rounds, size_mb=args.size_mb)
    print(f"{prog or 'corpus'} {' '.join(argv)}: {common.machine()}\n")
    print(common.table(rows))


# -- cache: the corpus cache ----------------------------------------------------------------

TINY = ["--hidden-size", "32", "--embed-dim", "8", "--layers", "1", "--batch-size", "8",
        "--seq-len", "32", "--precision", "fp32", "--device", "cpu"]
FIELDS = ("Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty",
          "Anonymous")


# -- workers (fresh processes) -------------------------------------------------------------

def worker_load(spec: dict) -> dict:
    import numpy  # noqa: F401
    import torch  # noqa: F401

    from songgen.text.cache import CorpusCache
    from songgen.text.corpus import load_corpus

    base = common.rss_kib("VmRSS")
    start = time.perf_counter()
    corpus = load_corpus(spec["path"], 0.1,
                         cache=spec["cache"] and CorpusCache(spec["cache"]))
    seconds = time.perf_counter() - start
    peak = common.rss_kib("VmHWM")
    return {"seconds": seconds, "chars": corpus.chars, "cached": corpus.cached,
            "cache_file": corpus.cache_file, "peak_mb": (peak - base) * 1024 / MB}


def worker_resume(spec: dict) -> dict:
    from songgen.config import TrainConfig
    from songgen.training.loop import train

    imported = time.perf_counter() - STARTED
    config = TrainConfig(steps=spec["steps"], checkpoint_dir=spec["folder"], device="cpu",
                         precision="fp32", batch_size=8, seq_len=32,
                         corpus_cache=spec["corpus_cache"])
    result = train(spec.get("path"), model={"hidden_size": 32, "embed_dim": 8, "layers": 1},
                   config=config, resume=spec["resume"], quiet=True)
    total = time.perf_counter() - STARTED
    return {"imports": imported, "start": total - result.loop_seconds, "total": total,
            "step": result.step}


# -- the parts -----------------------------------------------------------------------------

def part_load(path: Path, folder: Path, rounds: int) -> dict:
    cache = folder / "load-cache"
    size = path.stat().st_size
    results: dict[str, list] = {"no cache": [], "first load, cache written": [],
                                "cached": []}
    for r in range(rounds):
        common.log(f"load round {r + 1}/{rounds}")
        results["no cache"].append(common.run_worker(SCRIPT, {"kind": "load", "path": str(
            path), "cache": None}))
        shutil.rmtree(cache, ignore_errors=True)
        results["first load, cache written"].append(common.run_worker(SCRIPT, {
            "kind": "load", "path": str(path), "cache": str(cache)}))
        for _ in range(2):
            results["cached"].append(common.run_worker(SCRIPT, {
                "kind": "load", "path": str(path), "cache": str(cache)}))
    cache_bytes = sum(p.stat().st_size for p in cache.glob("*.corpus"))
    summary = {}
    for name, runs in results.items():
        seconds = common.median([run["seconds"] for run in runs])
        summary[name] = {"seconds": seconds, "mb_per_s": size / MB / seconds,
                         "peak_mb": common.median([run["peak_mb"] for run in runs]),
                         "runs": runs}
        common.log(f"  {name}: {seconds:.2f} s, {size / MB / seconds:.0f} MB/s")
    return {"text_mb": size / MB, "cache_file_mb": cache_bytes / MB, **summary}


def part_resume(path: Path, folder: Path) -> dict:
    out = {}
    for name, setting in (("cache", "auto"), ("no cache", "none")):
        run = folder / f"resume-{setting}"
        shutil.rmtree(run, ignore_errors=True)
        common.log(f"resume ({name}): first run")
        first = common.run_worker(SCRIPT, {"kind": "resume", "path": str(path), "steps": 1,
                                           "folder": str(run), "resume": False,
                                           "corpus_cache": setting})
        resumes = []
        for step in (2, 3):
            resumes.append(common.run_worker(SCRIPT, {
                "kind": "resume", "path": None, "steps": step, "folder": str(run),
                "resume": True, "corpus_cache": setting}))
        out[name] = {"first_start": first["start"], "resumes": resumes,
                     "resume_start": common.median([r["start"] for r in resumes]),
                     "imports": common.median([r["imports"] for r in resumes])}
        common.log(f"  first run starts in {first['start']:.2f} s; resume in "
                   f"{out[name]['resume_start']:.2f} s (imports {out[name]['imports']:.2f} s)")
        shutil.rmtree(run, ignore_errors=True)
    return out


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _smaps(pid: int) -> dict | None:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in FIELDS:
            values[name] = int(rest.split()[0]) * 1024 / MB
    return values


def part_rss(path: Path, folder: Path, seconds: float) -> dict:
    shared = folder / "rss-cache"
    shutil.rmtree(shared, ignore_errors=True)
    out = {}
    for name, setting in (("no cache", "none"), ("cache being built", str(shared)),
                          ("cache built", str(shared))):
        run = folder / "rss-run"
        shutil.rmtree(run, ignore_errors=True)
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc-per-node", "2", "-m", "songgen", "train", str(path), *TINY,
                   "--time-limit", str(seconds), "--checkpoint-dir", str(run), "-q",
                   "--corpus-cache", setting]
        common.log(f"torchrun, 2 processes, {name}")
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, env=common.clean_env({"OMP_NUM_THREADS": "1"}))
        best: dict[int, dict] = {}
        while proc.poll() is None:
            for pid in _children(proc.pid):
                sample = _smaps(pid)
                if sample and sample.get("Rss", 0) >= best.get(pid, {}).get("Rss", -1):
                    best[pid] = sample
            time.sleep(0.5)
        stderr = proc.stderr.read()
        if proc.returncode:
            raise SystemExit(f"torchrun failed:\n{stderr}")
        workers = [best[pid] for pid in sorted(best)]
        out[name] = {"seconds": time.perf_counter() - start, "workers": workers}
        for w in workers:
            common.log("  " + ", ".join(f"{k} {w.get(k, 0):.0f} MB" for k in FIELDS))
    shutil.rmtree(folder / "rss-run", ignore_errors=True)
    return out


def suite_cache(argv: list[str], prog: str | None = None) -> None:
    parser = argparse.ArgumentParser(description="the corpus cache: loads, resume, memory",
                                     prog=prog)
    parser.add_argument("--size-mb", type=float, default=1000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/songgen-bench-cache"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the corpus and caches")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--only-load", action="store_true", help="only part 1")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    try:
        common.log(f"making a {args.size_mb:.0f} MB corpus in {args.dir}")
        path = build(args.dir, args.size_mb)
        results = {"date": time.strftime("%Y-%m-%d"), "machine": common.cpu_model(),
                   "load": part_load(path, args.dir, args.rounds)}
        if not args.only_load:
            results["resume"] = part_resume(path, args.dir)
        if not (args.skip_rss or args.only_load):
            results["rss"] = part_rss(path, args.dir, args.seconds)
        print(json.dumps(results, indent=1))
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    if not common.worker_main({"songgen": worker_songgen, "bare": worker_bare,
                               "load": worker_load, "resume": worker_resume}):
        suite_corpus(sys.argv[1:])
