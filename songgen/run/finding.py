"""Finding run folders: what marks a folder as a training run's (its metrics.jsonl, or a
checkpoint), and the run folders under a folder (what `songgen plot` draws and the studio lists).

No PyTorch here: a listing must stay quick and light.
"""

from __future__ import annotations

import os
from pathlib import Path

METRICS = "metrics.jsonl"  # a run's evaluations, a JSON line each (songgen.run.curves reads it)


def find_runs(root: str | Path, depth: int = 4) -> list[Path]:
    """Run folders at or under `root` (up to `depth` levels down): folders holding a
    metrics.jsonl or a checkpoint. Hidden folders and symbolic links are not followed."""
    root = Path(root)
    found = []
    for folder, subfolders, files in os.walk(root):
        level = len(Path(folder).relative_to(root).parts)
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and level < depth)
        if METRICS in files or any(f.endswith(".pt") and not f.startswith(".") for f in files):
            found.append(Path(folder))
    return found
