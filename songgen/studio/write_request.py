"""What a write request from the page may ask: the studio's write limits (well below the
command line's), each field checked and turned into write_live's options, and a written
song as the page receives it."""

from __future__ import annotations

import math

from ..config import MAX_SEED, MAX_TEMPERATURE
from ..errors import SonggenError
from .httpserver import HTTPProblem

# One writing from the page: `songgen sample` allows 10,000 songs of 1,000,000 characters and
# 100 retries; a page (or a page from elsewhere) must not keep the computer busy for hours.
WRITE_SONGS = 16
WRITE_LENGTH = 20_000         # characters of a song, its opening included
WRITE_RETRIES = 10            # writings again of a song that copied too much
WRITE_SECONDS = 120.0         # then the writing stops with an error event
MAX_TEXT = WRITE_LENGTH       # characters of a title or an opening text


def _int(body, key, lo, hi, default=None, none_ok=False, studio=False):
    value = body.get(key, default)
    if value is None and none_ok:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        top = "" if hi >= 2**62 else f" to {hi:,}"
        raise HTTPProblem(400, f"{key.replace('_', ' ')} must be a whole number from {lo:,}{top}"
                          + (" (or empty)" if none_ok else "")
                          + (" in the studio (songgen sample allows more)" if studio else ""))
    return value


def _float(body, key, lo, hi, default, lo_open=False):
    value = body.get(key, default)
    if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
            or not (lo < value if lo_open else lo <= value) or value > hi):
        raise HTTPProblem(400, f"{key.replace('_', ' ')} must be a number "
                          f"{'above' if lo_open else 'from'} {lo:g} {'and at most' if lo_open else 'to'} "
                          f"{hi:g}")
    return float(value)


def _text(body, key):
    value = body.get(key) or ""
    if not isinstance(value, str):
        raise HTTPProblem(400, f"{key} must be text")
    if len(value) > MAX_TEXT:
        raise HTTPProblem(400, f"{key} is too long (over {MAX_TEXT:,} characters)")
    return value


_WRITE_KEYS = {"model", "temperature", "top_k", "top_p", "num_songs", "length", "max_lines",
               "more_lines", "seed", "title", "prime", "originality", "max_copy", "retries",
               "rhyme", "chorus", "scan", "words", "style"}


def parse_write(body) -> dict:
    """The options of a write request, checked against the command line's limits and the
    studio's own, lower ones for the number of songs, their length and the retries."""
    if not isinstance(body, dict):
        raise HTTPProblem(400, "the request must be a JSON object")
    unknown = sorted(set(body) - _WRITE_KEYS)
    if unknown:
        raise HTTPProblem(400, f"unknown parameter {unknown[0]!r}")
    options = {
        "temperature": _float(body, "temperature", 0, MAX_TEMPERATURE, 0.8),
        "top_k": _int(body, "top_k", 0, 2**63 - 1, 0),
        "top_p": _float(body, "top_p", 0, 1, 1.0, lo_open=True),
        "num_songs": _int(body, "num_songs", 1, WRITE_SONGS, 1, studio=True),
        "length": _int(body, "length", 1, WRITE_LENGTH, 3000, studio=True),
        "max_lines": _int(body, "max_lines", 1, 2**63 - 1, none_ok=True),
        "more_lines": _int(body, "more_lines", 1, 10_000, none_ok=True),
        "seed": _int(body, "seed", 0, MAX_SEED, none_ok=True),
        "max_copy": _int(body, "max_copy", 2, 2**63 - 1, none_ok=True),
        "retries": _int(body, "retries", 0, WRITE_RETRIES, 5, studio=True),
    }
    options.update(_craft(body))
    originality = body.get("originality", True)
    if not isinstance(originality, bool):
        raise HTTPProblem(400, "originality must be true or false")
    if options["max_copy"] is not None and not originality:
        raise HTTPProblem(400, "max copy needs the originality check")
    return {**options, "model": body.get("model"), "title": _text(body, "title"),
            "prime": _text(body, "prime"), "originality": originality,
            "style": _text(body, "style").strip() or None}  # a name or a blend (songgen.text.styles)


def _craft(body) -> dict:
    """Rhyme pattern, chorus, scansion and the share of free words (songgen/songcraft/measures.py)."""
    from ..songcraft.measures import check_pattern

    rhyme, chorus = body.get("rhyme", "auto"), body.get("chorus", "auto")
    if not isinstance(rhyme, str) or not isinstance(chorus, str):
        raise HTTPProblem(400, "rhyme and chorus must be text")
    try:
        rhyme = check_pattern(rhyme)
    except SonggenError as exc:
        raise HTTPProblem(400, str(exc)) from None
    if chorus not in ("auto", "off"):
        raise HTTPProblem(400, "chorus must be auto or off")
    scan = body.get("scan", "auto")
    if scan not in ("auto", "off"):
        raise HTTPProblem(400, "scan must be auto or off")
    return {"rhyme": rhyme, "chorus": chorus, "scan": scan,
            "words": _float(body, "words", 0, 1, 0.01)}


def song_json(song) -> dict:
    copy = song.copy
    return {"number": song.number, "text": song.text, "title": song.title, "stop": song.stop,
            "chars": song.chars, "bits_per_char": round(song.bits_per_char, 4), "seed": song.seed,
            "copy": None if copy is None else {"length": copy.length, "text": copy.text,
                                               "start": song.text.find(copy.text) if copy.length
                                               else -1},
            "craft": song.analysis}


# --- Who may ask ------------------------------------------------------------------------------
