"""The command line's shared options and option types: durations (1h30), the device, threads,
JSON output, the text encoding, the corpus cache, the defaults the options show, and sample's
options made from the request's fields (songgen/writing/request.py)."""

from __future__ import annotations

import re

import click

from ..config import ModelConfig, TrainConfig

MODEL = ModelConfig()
TRAIN = TrainConfig()
_DEVICES = "auto|cpu|cuda|cuda:N|mps"


class Duration(click.ParamType):
    """90, 90s, 10m, 2h, 1h30m -> seconds. A number after a unit counts in the next smaller one,
    as people write it: 1h30 is 1 h 30 min, 5m30 is 5 min 30 s; a lone number is seconds."""

    name = "duration"
    _PART = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
    _UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    _NEXT = {"d": "h", "h": "m", "m": "s"}

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        text = str(value).strip().lower().replace(" ", "")
        parts = self._PART.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            self.fail(f"{value!r} is not a duration; write e.g. 90s, 10m, 2h or 1h30m", param, ctx)
        seconds, previous = 0.0, None
        for number, unit in parts:
            if not unit:
                unit = "s" if previous is None else self._NEXT.get(previous)
                if unit is None:
                    self.fail(f"{value!r}: a number after seconds has no unit; write e.g. "
                              "1m30s", param, ctx)
            seconds += float(number) * self._UNIT[unit]
            previous = unit
        if seconds <= 0:
            self.fail("the time limit must be more than zero", param, ctx)
        return seconds


def device_option(f):
    return click.option("--device", default="auto", show_default=True, metavar=_DEVICES,
                        help="Where to run: auto picks CUDA, then Apple MPS, then the CPU.")(f)


def threads_option(f):
    return click.option("--threads", type=click.IntRange(1, 1024),
                        help="CPU threads [default: the cores free at the start].")(f)


def train_threads_option(f):
    # Not the sampling wording: a run may keep one count for its resumes (threadcount.py).
    return click.option("--threads", type=click.IntRange(1, 1024),
                        help="CPU threads [default: the cores free at the start, then those "
                        "free while training; on a CPU where the count changes the run's "
                        "numbers, the count it started with, for its resumes too].")(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True,
                        help="Print machine-readable JSON on stdout.")(f)


def encoding_callback(ctx, param, value):
    from ..config import check_encoding
    from ..errors import ConfigError

    try:
        return None if value is None else check_encoding(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def encoding_option(what: str):
    return click.option("--encoding", default="utf-8", show_default=True, metavar="NAME",
                        callback=encoding_callback, help=f"The text encoding of {what}: e.g. "
                        "cp1252 (Windows), latin-1, or auto: each file's own, UTF-8 where it "
                        "is valid UTF-8, else cp1252 (UTF-16 with a byte-order mark is always "
                        "recognised).")


def corpus_cache_option(what: str):
    """--corpus-cache, declared once: `what` says where `auto` puts it for this command."""
    return click.option("--corpus-cache", default="auto", show_default=True,
                        metavar="DIR|auto|none", help=f"{what}; none reads the text each time.")


def positive(default, help, most):
    return dict(default=default, show_default=True, type=click.IntRange(1, most), help=help)


def request_option(name: str, *decls: str, **overrides):
    """A `songgen sample` option made from the request's field `name`
    (songgen/writing/request.py): its default, its range or choices, and its help where the
    field's own words fit the command line; `overrides` for what is the command line's own (a
    help that names other options, a metavar, a path type, a callback)."""
    from ..writing.request import rule

    found = rule(name)
    settings = {"default": found.default, "show_default": found.default not in (None, ""),
                "help": found.help}
    if found.choices:
        settings["type"] = click.Choice(list(found.choices))
    elif found.kind in (int, float) and found.clean is None:
        kind = click.IntRange if found.kind is int else click.FloatRange
        settings["type"] = kind(found.low, found.high, min_open=found.low_open)
    return click.option(*decls, name, **{**settings, **overrides})


def as_requested(ctx, param, value):
    """A callback: the value as the request takes it (a rhyme pattern in capitals), refused as
    click refuses a value out of range (exit 2)."""
    from ..errors import ConfigError
    from ..writing.request import rule

    try:
        return rule(param.name).check(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
