"""The page `songgen explain -o page.html` writes: one self-contained HTML file (its script,
style and data inside it; nothing fetched, opens from a file) that shows a text coloured by
how much each character surprised the model, the model's choices at each character (at
temperature 1 and at one set on the page), and the text coloured by any LSTM cell, with the
cells that best follow the lines, titles, stanzas and quotes suggested.

The data travels as base64 of little typed arrays: exact float32 scores of each character and
its likeliest choices (the page and `--json` show the same numbers), and the cells' values
quantised to int8 (1/127 steps), for as many cells as fit CELL_VALUES.
"""

from __future__ import annotations

import base64
import json
import os
from importlib import resources

import numpy as np

from .explain import PAGE_LIMIT, Explanation, PageTooLong  # noqa: F401 (raised here too)

CELL_VALUES = 1_000_000  # cell values a page keeps (characters x cells), about 1.3 MB


def page_data(found: Explanation) -> dict:
    """Everything the page shows, ready for JSON."""
    from .cells import FEATURES, cell_values, features, suggest

    trained, scored, order = (found.extra[k] for k in ("trained", "scored", "order"))
    values = cell_values(trained.model, scored, trained.device)
    # The value after reading each character (an unknown one is not read: the one before).
    values = values[order + ~found.unknown]
    suggested = suggest(values, features(found.text()))
    kept = _kept_cells(values, suggested, max(1, CELL_VALUES // max(len(found), 1)))
    hidden = trained.model.config.hidden_size
    arrays = {
        "ids": found.ids.astype(np.uint16),
        "logp": found.logp.astype(np.float32),
        "top_ids": found.top_ids.astype(np.uint16),
        "top_logp": found.top_logp.astype(np.float32),
        "rest_logp": found.rest_logp.astype(np.float32),
        "restart": found.restart.astype(np.uint8),
        "cells": np.round(values[:, kept] * 127).astype(np.int8),
    }
    return {
        "source": os.path.basename(found.source) or found.source,
        "checkpoint": found.checkpoint,
        "loss": found.loss,
        "n": len(found),
        "k": int(found.top_ids.shape[1]),
        "chars": ["" if i == 0 else c for i, c in enumerate(found.chars)],
        "known": found.known,
        "cell_names": [f"L{c // hidden + 1} #{c % hidden}" for c in kept],
        "cells_total": int(values.shape[1]),
        "features": {name: {"what": FEATURES[name],
                            "cells": [[kept.index(c), r] for c, r in suggested[name]]}
                     for name in FEATURES},
        "arrays": {name: base64.b64encode(a.tobytes()).decode("ascii")
                   for name, a in arrays.items()},
    }


def _kept_cells(values: np.ndarray, suggested: dict, most: int) -> list[int]:
    """All cells where they fit; else the suggested ones, then the most active (by spread)."""
    if values.shape[1] <= most:
        return list(range(values.shape[1]))
    chosen = list(dict.fromkeys(c for cells in suggested.values() for c, _ in cells))
    for c in np.argsort(-values.std(0)).tolist():
        if len(chosen) >= most:
            break
        if c not in chosen:
            chosen.append(c)
    return sorted(chosen[:max(most, len(chosen))])


def render(found: Explanation) -> str:
    """The page's HTML for an explanation."""
    if len(found) > PAGE_LIMIT:
        raise PageTooLong(len(found))
    folder = resources.files("songgen.inside") / "static"
    page, style, script = ((folder / name).read_text(encoding="utf-8")
                           for name in ("page.html", "page.css", "page.js"))
    # Inside a <script> element nothing may read as its end: "<" is written as \u003c.
    data = json.dumps(page_data(found), ensure_ascii=True).replace("<", "\\u003c")
    return (page.replace("/*STYLE*/", style).replace("/*SCRIPT*/", script)
            .replace("/*DATA*/", data))


def write_page(found: Explanation, path: str) -> None:
    """Write the page to `path`, a new file (an existing one is never replaced)."""
    from ..files import write_new

    write_new(path, render(found).encode("utf-8"))
