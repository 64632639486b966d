"""A request for songs (SampleOptions): every sampling option with its default, its limit and
what it means, checked once; the command line's and the studio's options are made from these
fields. Beside it, the two things a request settles on its way to the sampler, for every face
alike: the seed (drawn when none is given) and what an old checkpoint, one without rhyme,
chorus and word measures, can honour of it."""

from __future__ import annotations

import math
import secrets
import warnings
from dataclasses import dataclass, field, fields, replace
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..config import MAX_LENGTH, MAX_SEED, MAX_SONGS, MAX_TEMPERATURE
from ..errors import ConfigError, SonggenWarning
from ..songcraft.measures import CHORUSES, check_pattern
from .stanzas import SCANS

if TYPE_CHECKING:
    from ..run.trained import Trained
    from ..songcraft.measures import Measures

MAX_RETRIES = 100   # writings again of a song that copied too much


@dataclass(frozen=True)
class Rule:
    """What one option may be: its kind (int, float or str), its default, its range or its
    choices, the error that says so, and what it does (the command line's help, where the
    same words fit it). A default of None means None is allowed: the option is off."""

    kind: type
    default: object
    message: str                      # {value}, {low}, {high} filled in
    help: str | None = None
    low: int | float | None = None
    high: int | float | None = None
    low_open: bool = False            # low itself is not allowed
    choices: tuple[str, ...] = ()
    clean: Callable | None = None     # the value as the sampler takes it, else a ConfigError

    def check(self, value):
        """`value` if this option may take it (as its kind), else a ConfigError."""
        if value is None and self.default is None:
            return None
        if self.clean is not None:
            return self.clean(value)
        if self.kind is str:
            ok = isinstance(value, str) and (not self.choices or value in self.choices)
        elif isinstance(value, bool) or not isinstance(value, Integral if self.kind is int
                                                       else Real):
            ok = False
        else:
            value = self.kind(value)
            ok = ((self.low is None or (self.low < value if self.low_open else self.low <= value))
                  and (self.high is None or value <= self.high)
                  and not (self.kind is float and math.isnan(value)))
        if not ok:
            raise ConfigError(self.message.format(value=value, low=self.low, high=self.high))
        return value


def _option(kind: type, default, message: str, help: str | None = None, **limits):
    return field(default=default, metadata={"rule": Rule(kind, default, message, help, **limits)})


def _style(value):
    """A style's name, a blend as text or a dict, or None; blank text is None (the mix)."""
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, str):
        return value if value.strip() else None
    raise ConfigError("the style must be a name, a blend such as cowboy=0.7,burns=0.3, or none")


def _pattern(value):
    """auto, off or a rhyme pattern such as AABB (songgen/songcraft/measures.py)."""
    if not isinstance(value, str):
        raise ConfigError("the rhyme must be auto, off or a pattern such as AABB")
    return check_pattern(value)


def _flag(what: str):
    def clean(value):
        if not isinstance(value, bool):
            raise ConfigError(f"{what} must be true or false")
        return value
    return clean


def _text(what: str):
    def clean(value):
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{what} must be text")
        return value
    return clean


@dataclass(frozen=True)
class SampleOptions:
    """How songs are sampled: one value that the API, the CLI and the studio build and check
    once (`checked()`), and that `generate`, `stream` and `write_live` take. Each field says
    its default, its limit and what it does (`rule(name)`).

    `prime`: the opening every song starts with (`make_prime` writes a title line in the
    corpus format). `more_lines`: stop after that many lines of lyrics beyond the prime's.
    `corpus`: the training text, to measure rhyme and chorus for a checkpoint written before
    they were kept (songgen/songcraft/measures.py). `max_copy`, `retries`: with a copy index,
    write a song again (up to `retries` times) when it copies more than `max_copy` characters
    of the corpus. `style`: one of the model's styles ("cowboy"), a blend
    ("cowboy=0.7,burns=0.3" or {"cowboy": 0.7, "burns": 0.3}), or None for none, the mix
    (songgen/text/styles.py). `trace`: keep, for each character written, the model's choices
    there and what every steering step did to them (songgen/writing/trace.py; the studio shows
    them), at some cost in speed."""

    num_songs: int = _option(
        int, 1, "the number of songs must be between 1 and {high:,}",
        "Songs to write (generated together as one batch).", low=1, high=MAX_SONGS)
    temperature: float = _option(
        float, 0.8, "the temperature must be 0 (greedy) to {high:g}",
        "Randomness: 0 = always the likeliest character, 1 = the model's own odds, higher = "
        "wilder.", low=0, high=MAX_TEMPERATURE)
    top_k: int = _option(int, 0, "top-k must be 0 (off) or more",
                         "Pick only among the K likeliest characters (0 = off).", low=0)
    top_p: float = _option(
        float, 1.0, "top-p must be above 0 and at most 1", "Pick only among the likeliest "
        "characters whose odds add up to P (1 = off).", low=0, high=1, low_open=True)
    prime: str = _option(str, "", "the prime must be text")
    length: int = _option(int, 3000, "the length must be between 1 and {high:,} characters",
                          "At most this many characters per song.", low=1, high=MAX_LENGTH)
    max_lines: int | None = _option(
        int, None, "max lines must be 1 or more", "Stop a song after this many lines of "
        "lyrics (title and blank lines not counted).", low=1)
    more_lines: int | None = _option(int, None, "more lines must be 1 or more", low=1)
    seed: int | None = _option(int, None, "the seed must be a whole number from 0 to {high:,}",
                               low=0, high=MAX_SEED)
    precision: str = _option(
        str, "auto", "unknown sampling precision {value!r}; use auto, fp32 or int8",
        "auto: int8 weights on the CPU where they are faster (256+ units with AVX-512, 512+ "
        "without), same quality.", choices=("auto", "fp32", "int8"))
    shape: str = _option(
        str, "song", "unknown shape {value!r}; use auto, song, free",
        "song (or auto): keep each song shaped like the training songs (a title and the blank "
        "line after it, stanzas, an ending within their lengths); free: let the model run "
        "unguided.", choices=("song", "auto", "free"))
    rhyme: str = _option(
        str, "auto", "", "auto: rhyme where and as the training songs do; off: no rhyme; or a "
        "pattern for every stanza, where lines that rhyme share a letter and X rhymes with "
        "none: AABB, ABAB, XAXA.", clean=_pattern)
    chorus: str = _option(
        str, "auto", "unknown chorus choice {value!r}; use auto or off", "auto: songs bring "
        "back a chorus where the training songs do; off: never.", choices=CHORUSES)
    scan: str = _option(
        str, "auto", "unknown scan choice {value!r}; use auto or off", "auto: lines of stanza "
        "2 on keep the first stanza's syllables where the training songs' lines do; off: "
        "free.", choices=SCANS)
    words: float = _option(
        float, 0.01, "the share of free words must be from 0 to 1", "The share of words that "
        "may be made up; the others are words of the training text or frequent English words "
        "(1 = any).", low=0, high=1)
    corpus: str | None = _option(str, None, "", clean=_text("the corpus"))
    max_copy: int | None = _option(int, None, "max copy must be 2 or more", low=2)
    retries: int = _option(int, 5, "the retries must be from 0 to {high}", low=0,
                           high=MAX_RETRIES)
    style: str | dict | None = _option(str, None, "", clean=_style)
    trace: bool = _option(bool, False, "", clean=_flag("trace"))

    def checked(self) -> "SampleOptions":
        """These options as the sampler takes them, each within its limit (plain errors
        otherwise; the model's own limits, such as the prime's characters, are checked when it
        is known), with a seed: the one given, else one drawn now (`seed` then tells which).
        Checked once: checking a checked value gives it back as it is."""
        if self.__dict__.get("_checked"):
            return self
        changes = {f.name: f.metadata["rule"].check(getattr(self, f.name))
                   for f in fields(self)}
        result = replace(self, **changes)
        if result.seed is None:
            object.__setattr__(result, "seed", draw_seed())
        object.__setattr__(result, "_checked", True)
        return result

    @property
    def crafted(self) -> bool:
        return (self.rhyme != "off" or self.chorus != "off" or self.scan != "off"
                or self.words < 1)


def rule(name: str) -> Rule:
    """The default, limit and meaning of the option `name`: what the command line's and the
    studio's options are made from."""
    for f in fields(SampleOptions):
        if f.name == name:
            return f.metadata["rule"]
    raise KeyError(name)


def draw_seed() -> int:
    """A seed for a request that gives none: told with the songs (the CLI prints it, the
    studio sends it, every Song keeps it), so that a song worth keeping can be written again."""
    return secrets.randbits(31)


def _options(options: SampleOptions | None, keywords: dict) -> SampleOptions:
    """`options` with any keyword options over it (the keyword API), checked (once: options
    already checked and no keywords are taken as they are)."""
    names = {f.name for f in fields(SampleOptions)}
    unknown = sorted(set(keywords) - names)
    if unknown:
        raise TypeError(f"unknown sampling option {unknown[0]!r}")
    options = options or SampleOptions()
    return (replace(options, **keywords) if keywords else options).checked()


# -- what an old checkpoint can honour ---------------------------------------------------------

class NoMeasures(ConfigError):
    """A rhyme pattern was asked of a checkpoint without rhyme measures and no corpus to measure
    them from. `rhyme`: the pattern."""

    def __init__(self, rhyme: str):
        what = "the checkpoint has no rhyme measures (it was written before songgen kept them)"
        super().__init__(f"{what}; give the corpus it was trained on to measure them, or turn "
                         "rhyme off", what=what)
        self.rhyme = rhyme


class WithoutMeasures(SonggenWarning):
    """Songs of a checkpoint without rhyme, chorus and word measures are written without them."""

    def __init__(self):
        super().__init__("the checkpoint has no rhyme, chorus and word measures (it was "
                         "written before songgen kept them): sampling without them; give the "
                         "corpus it was trained on to measure them")


_MEASURED: dict = {}


def settle_measures(trained: "Trained", opts: SampleOptions
                    ) -> tuple[SampleOptions, "Measures | None"]:
    """The one policy for a checkpoint written before songgen kept rhyme, chorus and word
    measures, the same for the API, the CLI and the studio: the options as they will be used,
    and the measures that steer them.

    The checkpoint's measures where it has them; else those of `opts.corpus` (read once per
    process); else a rhyme pattern asked for is an error (NoMeasures), and rhyme, chorus and
    words left to auto are turned off (rhyme and chorus off, any words), with a warning
    (WithoutMeasures), so that each Song's options say how it was written."""
    from ..songcraft.measures import Measures

    if not opts.crafted:
        return opts, None
    kept = Measures.from_dict(trained.checkpoint.songcraft)
    if kept is not None:
        return opts, kept
    if opts.corpus is not None:
        key = str(Path(opts.corpus).resolve())
        if key not in _MEASURED:
            from ..songcraft.measures import measure
            from ..text.lyrics import read_songs

            _MEASURED[key] = measure(read_songs(opts.corpus))
        return opts, _MEASURED[key]
    if opts.rhyme not in ("auto", "off"):
        raise NoMeasures(opts.rhyme)
    if opts.rhyme == "off" and opts.chorus == "off" and opts.words >= 1:
        return opts, None  # only scansion asked: it needs the measures too, and writes freely
    warnings.warn(WithoutMeasures())
    settled = replace(opts, rhyme="off", chorus="off", words=1.0)
    object.__setattr__(settled, "_checked", True)  # still within every limit
    return settled, None
