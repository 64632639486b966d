"""Training curves: a run's metrics.jsonl read tolerantly (a training run may be writing it right
now), and the loss curves drawn as SVG by our own code (`songgen plot`; the studio page draws
the same in JavaScript).

No PyTorch here: reading curves must stay quick and light.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .. import files
from ..errors import SonggenError
from .finding import METRICS, find_runs

# One colour per run, in order; readable on white and told apart by most colour-blind eyes.
COLOURS = ("#1f6fb4", "#d9731a", "#2a9d5b", "#c4314b", "#7b5ab0", "#8a6a3a", "#d058a8", "#5f6b73")
_FIELDS = ("step", "epoch", "train_loss", "val_loss", "val_bpc", "chars_per_sec", "lr", "elapsed")

LN2 = math.log(2)  # nats per bit: the curves are drawn in bits/char


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_metrics(path: str | Path) -> list[dict]:
    """The evaluations of a run, by step. A last line without its line end (a training run
    writing it at this instant) and lines that are not a metrics record are skipped, never an
    error; a step logged twice (a run resumed from an earlier checkpoint) keeps its last record.
    A missing file is no evaluations yet."""
    try:
        data = files.read_regular(path, follow=True)  # a pipe nobody writes is refused at once
    except FileNotFoundError:
        return []
    except files.NotRegularFile:
        raise SonggenError(f"{path} {files.NOT_REGULAR}") from None
    except OSError as exc:
        raise SonggenError(f"could not read {path}: {exc.strerror or exc}") from None
    by_step: dict[int, dict] = {}
    for line in data.split(b"\n")[:-1]:  # the piece after the last line end is unfinished
        try:
            record = json.loads(line)
        except ValueError:  # a damaged line (or not UTF-8)
            continue
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            continue
        if not _number(record.get("val_loss")):
            continue
        clean = {k: record.get(k) if _number(record.get(k)) else None for k in _FIELDS}
        clean["step"] = record["step"]
        if clean["val_bpc"] is None:
            clean["val_bpc"] = clean["val_loss"] / LN2
        by_step[clean["step"]] = clean
    return [by_step[s] for s in sorted(by_step)]


# --- SVG -------------------------------------------------------------------------------------

def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round numbers (1, 2 or 5 times a power of ten apart) covering lo..hi."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks, t = [], first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 10))
    return ticks


def _fmt(value: float) -> str:
    if abs(value) >= 10000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


_TIME_UNITS = ((3600, "h"), (60, "m"), (1, "s"))


def time_ticks(longest: float) -> tuple[list[float], float, str]:
    """Round ticks (1, 2 or 5 times a power of ten) for a time axis up to `longest` seconds,
    in the unit that suits it (hours from 2 h, minutes from 2 min, else seconds): the ticks in
    seconds, the unit in seconds and its mark."""
    unit, mark = next((u, m) for u, m in _TIME_UNITS if longest >= 2 * u or u == 1)
    return [t * unit for t in nice_ticks(0, longest / unit or 1)], unit, mark


def _fmt_time(seconds: float, unit: float, mark: str) -> str:
    return f"{round(seconds / unit, 10):g}{mark}"


def _esc(text: str) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _panel(runs, x_key: str, title: str, left: float, width: float, height: float,
           y_range: tuple[float, float]) -> list[str]:
    top, pad_l, pad_r, pad_b = 34.0, 52.0, 52.0, 36.0
    x0, x1, y0, y1 = left + pad_l, left + width - pad_r, top, height - pad_b
    xs = [r[x_key] for _, recs in runs for r in recs if r.get(x_key) is not None]
    if x_key == "elapsed":
        x_ticks, unit, mark = time_ticks(max(xs, default=1) or 1)
        fmt = lambda t: _fmt_time(t, unit, mark)  # noqa: E731
    else:
        x_ticks, fmt = nice_ticks(0, max(xs, default=1) or 1), _fmt
    y_ticks = nice_ticks(*y_range)
    xlo, xhi, ylo, yhi = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    sx = lambda v: x0 + (v - xlo) / (xhi - xlo) * (x1 - x0)
    sy = lambda v: y1 - (v - ylo) / (yhi - ylo) * (y1 - y0)
    out = [f'<text x="{x0}" y="{top - 12}" class="title">{_esc(title)}</text>',
           f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" class="frame"/>']
    for t in y_ticks:
        out.append(f'<line x1="{x0}" x2="{x1}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" class="grid"/>'
                   f'<text x="{x0 - 6}" y="{sy(t) + 4:.1f}" class="tick" text-anchor="end">'
                   f'{_fmt(t)}</text>'
                   f'<text x="{x1 + 6}" y="{sy(t) + 4:.1f}" class="tick">{t / LN2:.2f}</text>')
    for t in x_ticks:
        out.append(f'<text x="{sx(t):.1f}" y="{y1 + 16}" class="tick" text-anchor="middle">'
                   f'{fmt(t)}</text>')
    out.append(f'<text x="{(x0 + x1) / 2}" y="{height - 4}" class="label" text-anchor="middle">'
               f'{"step" if x_key == "step" else "elapsed training time"}</text>')
    out.append(f'<text transform="translate({left + 14},{(y0 + y1) / 2}) rotate(-90)" '
               f'class="label" text-anchor="middle">nats/char</text>')
    out.append(f'<text transform="translate({left + width - 8},{(y0 + y1) / 2}) rotate(90)" '
               f'class="label" text-anchor="middle">bits/char</text>')
    for i, (_, recs) in enumerate(runs):
        colour = COLOURS[i % len(COLOURS)]
        for key, style in (("train_loss", ' stroke-dasharray="5 4" stroke-opacity="0.7"'),
                           ("val_loss", "")):
            points = [(sx(r[x_key]), sy(r[key])) for r in recs
                      if r.get(x_key) is not None and r.get(key) is not None]
            if not points:
                continue
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                       f'stroke-width="2"{style}/>')
            if len(points) == 1:
                out.append(f'<circle cx="{points[0][0]:.1f}" cy="{points[0][1]:.1f}" r="3" '
                           f'fill="{colour}"/>')
    return out


LEGEND_ROW = 24     # pixels from one legend row to the next
LEGEND_CHAR = 7     # pixels a legend character takes at most (12 px sans-serif)


def _legend_text(name: str, records: list[dict]) -> str:
    best = min((r["val_loss"] for r in records), default=None)
    return name + ("" if best is None else f"  (best {best:.3f} nats, {best / LN2:.3f} "
                   "bits/char)")


def curves_svg(runs: list[tuple[str, list[dict]]], width: int = 960, height: int = 360) -> str:
    """Training (dashed) and validation (solid) loss of each (name, records) run, by step and
    by elapsed time, in nats/char (left axis) and bits/char (right axis); one colour per run."""
    losses = [r[k] for _, recs in runs for r in recs for k in ("train_loss", "val_loss")
              if r.get(k) is not None]
    lo, hi = (min(losses), max(losses)) if losses else (0.0, 1.0)
    margin = (hi - lo) * 0.05 or 0.1
    y_range = (max(0.0, lo - margin), hi + margin)
    # The legend: as many runs a row as their longest entry leaves room for (at most three),
    # then a row for the line styles, all inside the image.
    entries = [_legend_text(name, recs) for name, recs in runs]
    longest = max((len(e) for e in entries), default=0) * LEGEND_CHAR + 28 + 24
    columns = max(1, min(3, int((width - 104) // longest)))
    rows = (len(runs) + columns - 1) // columns
    legend_h = LEGEND_ROW * (rows + 1) + 8
    plot_h = height - legend_h
    half = width / 2
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
             "<style>.frame{fill:none;stroke:#888}.grid{stroke:#e4e4e4}"
             ".tick{font-size:11px;fill:#555}.label{font-size:12px;fill:#333}"
             ".title{font-size:14px;font-weight:bold;fill:#222}.legend{font-size:12px;fill:#222}"
             "</style>",
             f'<rect width="{width}" height="{height}" fill="white"/>']
    parts += _panel(runs, "step", "Loss by step", 0, half, plot_h, y_range)
    parts += _panel(runs, "elapsed", "Loss by elapsed time", half, half, plot_h, y_range)
    for i, text in enumerate(entries):
        colour = COLOURS[i % len(COLOURS)]
        x = 52 + (i % columns) * (width - 104) / columns
        y = plot_h + 16 + LEGEND_ROW * (i // columns)
        parts.append(f'<line x1="{x}" x2="{x + 22}" y1="{y}" y2="{y}" stroke="{colour}" '
                     f'stroke-width="3"/><text x="{x + 28}" y="{y + 4}" class="legend">'
                     f'{_esc(text)}</text>')
    parts.append(f'<text x="{width - 52}" y="{plot_h + 16 + LEGEND_ROW * rows}" '
                 'class="tick" text-anchor="end">solid: validation, dashed: training</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def plot(runs: list[str | Path] | None, output: str | Path) -> list[Path]:
    """Draw the curves of the runs (folders, searched for run folders, or metrics.jsonl files;
    default: checkpoints) into a new SVG file at `output` (an existing file is refused, never
    replaced: see `new_name`). Returns the runs drawn."""
    output = Path(output)
    files.refuse_existing(output)  # before any work
    found: list[Path] = []
    for given in runs or ["checkpoints"]:
        path = Path(given)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += [p / METRICS for p in find_runs(path) if (p / METRICS).exists()]
        else:
            raise SonggenError(f"no run at {path}: give a checkpoint folder of a training run "
                               "(it holds metrics.jsonl) or a metrics.jsonl file")
    drawn = [(p, read_metrics(p)) for p in dict.fromkeys(found)]
    drawn = [(p, recs) for p, recs in drawn if recs]
    if not drawn:
        raise SonggenError("no evaluations to plot: metrics.jsonl gets a line at every "
                           "evaluation of a training run; train longer or give another run")
    names = [str(p.parent) if p.name == METRICS else str(p) for p, _ in drawn]
    svg = curves_svg(list(zip(names, [recs for _, recs in drawn])))
    files.write_new(output, svg.encode("utf-8"), sync=False)  # refused if made meanwhile
    return [p for p, _ in drawn]


def new_name(path: str | Path) -> Path:
    """`path` if nothing is there, else the first free of its stem-2, stem-3, ... beside it
    (curves.svg, curves-2.svg, ...)."""
    path = Path(path)
    candidate, n = path, 2
    while candidate.exists() or candidate.is_symlink():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate
