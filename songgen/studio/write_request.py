"""What a write request from the page may ask: each option's default and limit taken from the
request's fields (songgen/writing/request.py), the studio's own caps kept where they are lower
(a web visitor must not keep the computer busy for hours), each field of the JSON body checked
with a message for the page; the request itself is built and checked once, by the library."""

from __future__ import annotations

import math

from ..writing.request import rule
from .httpserver import HTTPProblem

# One writing from the page: `songgen sample` allows 10,000 songs of 1,000,000 characters and
# 100 retries; a page (or a page from elsewhere) must not keep the computer busy for hours.
WRITE_SONGS = 16
WRITE_LENGTH = 20_000         # characters of a song, its opening included
WRITE_RETRIES = 10            # writings again of a song that copied too much
WRITE_SECONDS = 120.0         # then the writing stops with an error event
MAX_TEXT = WRITE_LENGTH       # characters of a title or an opening text
# The studio's caps below the request's own limits: those `songgen sample` allows more of are
# said so; the next-line ideas (more_lines) have no command-line option.
_CAPS = {"num_songs": (WRITE_SONGS, True), "length": (WRITE_LENGTH, True),
         "retries": (WRITE_RETRIES, True), "more_lines": (10_000, False)}
_JSON_INT = 2**63 - 1         # the top of a whole number with no limit of its own

# The request's options a page may set (prime and style come as text, below); the others
# (precision, shape, corpus) are the studio's to choose.
_NUMBERS = ("temperature", "top_k", "top_p", "num_songs", "length", "max_lines", "more_lines",
            "seed", "max_copy", "retries", "words")
_CHOICES = ("chorus", "scan")
_WRITE_KEYS = {"model", "title", "prime", "originality", "rhyme", "style", "trace", *_NUMBERS,
               *_CHOICES}


def _number(body, key):
    """The whole number or number `key` of the body, within the request's limit and the
    studio's cap (its default where absent)."""
    found = rule(key)
    value = body.get(key, found.default)
    if value is None and found.default is None:
        return None
    cap, told = _CAPS.get(key, (None, False))
    high = found.high if cap is None else cap if found.high is None else min(cap, found.high)
    if found.kind is float:
        low, low_open = found.low, found.low_open
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or not math.isfinite(value) or not (low < value if low_open else low <= value)
                or value > high):
            raise HTTPProblem(400, f"{key.replace('_', ' ')} must be a number "
                              f"{'above' if low_open else 'from'} {low:g} "
                              f"{'and at most' if low_open else 'to'} {high:g}")
        return float(value)
    high = _JSON_INT if high is None else high
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if (not isinstance(value, int) or isinstance(value, bool)
            or not found.low <= value <= high):
        top = "" if high >= 2**62 else f" to {high:,}"
        raise HTTPProblem(400, f"{key.replace('_', ' ')} must be a whole number from "
                          f"{found.low:,}{top}" + (" (or empty)" if found.default is None else "")
                          + (" in the studio (songgen sample allows more)" if told else ""))
    return value


def _text(body, key):
    value = body.get(key) or ""
    if not isinstance(value, str):
        raise HTTPProblem(400, f"{key} must be text")
    if len(value) > MAX_TEXT:
        raise HTTPProblem(400, f"{key} is too long (over {MAX_TEXT:,} characters)")
    return value


def parse_write(body) -> dict:
    """The options of a write request, checked against the request's limits and the studio's
    own, lower ones for the number of songs, their length and the retries: SampleOptions'
    fields, with the `model`, the `title` and the `prime` text apart (the server makes the
    opening once it knows the model's characters) and whether to check `originality`;
    `trace`: whether the stream carries each character's trace (the model's choices)."""
    if not isinstance(body, dict):
        raise HTTPProblem(400, "the request must be a JSON object")
    unknown = sorted(set(body) - _WRITE_KEYS)
    if unknown:
        raise HTTPProblem(400, f"unknown parameter {unknown[0]!r}")
    options = {key: _number(body, key) for key in _NUMBERS}
    rhyme = body.get("rhyme", rule("rhyme").default)
    if not isinstance(rhyme, str) or not isinstance(body.get("chorus", ""), str):
        raise HTTPProblem(400, "rhyme and chorus must be text")
    options["rhyme"] = rhyme  # its pattern is checked with the request (a 400 where wrong)
    for key in _CHOICES:
        found = rule(key)
        options[key] = body.get(key, found.default)
        if options[key] not in found.choices:
            raise HTTPProblem(400, f"{key} must be {' or '.join(found.choices)}")
    originality = body.get("originality", True)
    if not isinstance(originality, bool):
        raise HTTPProblem(400, "originality must be true or false")
    if options["max_copy"] is not None and not originality:
        raise HTTPProblem(400, "max copy needs the originality check")
    options["trace"] = body.get("trace", rule("trace").default)
    if not isinstance(options["trace"], bool):
        raise HTTPProblem(400, "trace must be true or false")
    return {**options, "model": body.get("model"), "title": _text(body, "title"),
            "prime": _text(body, "prime"), "originality": originality,
            "style": _text(body, "style")}  # a name or a blend (songgen.text.styles)


def make_request(options: dict, title: str, prime: str, copy_index):
    """The write's request (SampleOptions), checked once: the opening made of the title and
    the prime, no max_copy without the originality check (`copy_index`), the seed drawn where
    none is given (the page is told it)."""
    from ..errors import SonggenError
    from ..writing.request import SampleOptions
    from ..writing.sampling import make_prime

    if copy_index is None:
        options = {**options, "max_copy": None}
    try:
        return SampleOptions(prime=make_prime(title, prime), **options).checked()
    except SonggenError as exc:
        raise HTTPProblem(400, str(exc)) from None
