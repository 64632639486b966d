"""Corpus loading: file -> encoded tensor with songgen.lyrics.load_corpus, MB/s and peak memory.

A ~100 MB corpus is built by repeating child_ballads.txt into a temporary file (deleted at the
end). Every load runs in a fresh subprocess, which records its resident memory after importing
torch, numpy and the loader (the baseline), then the peak (VmHWM) after the load; memory per
character is (peak - baseline) / characters. The reference is a bare vectorised reader of the
same file: read, decode UTF-8, code points via UTF-32, the characters present (bincount in
chunks), one numpy lookup from code points to uint8 ids (no normalisation, no song splitting,
no validation split). Sides alternate, rounds rotated.

    python benchmarks/bench_corpus.py [--quick] [--size-mb 100]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SCRIPT = Path(__file__).resolve()
MB = 1e6
CHUNK = 1 << 24


def worker_songgen(spec: dict) -> dict:
    import numpy  # noqa: F401
    import torch  # noqa: F401

    from songgen.lyrics import load_corpus

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
    """child_ballads.txt repeated (songs separated by two blank lines) to about `size_mb`."""
    piece = common.corpus_path().read_bytes().rstrip(b"\n") + b"\n\n\n"
    path = folder / "big.txt"
    copies = max(1, round(size_mb * MB / len(piece)))
    with open(path, "wb") as f:
        for _ in range(copies):
            f.write(piece)
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


if __name__ == "__main__":
    if not common.worker_main({"songgen": worker_songgen, "bare": worker_bare}):
        parser = common.arg_parser("corpus loading: songgen vs a bare numpy reader")
        parser.add_argument("--size-mb", type=float, default=100)
        args = parser.parse_args()
        print(common.table(run(quick=args.quick, rounds=args.rounds, size_mb=args.size_mb)))
