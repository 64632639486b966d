"""A request for songs (SampleOptions): every sampling option with its default and limit,
checked once."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from ..config import MAX_LENGTH, MAX_SONGS, MAX_TEMPERATURE
from ..errors import ConfigError
from ..songcraft.measures import CHORUSES, check_pattern
from ..songcraft.shape import resolve as resolve_shape
from .stanzas import SCANS


@dataclass(frozen=True)
class SampleOptions:
    """How songs are sampled: one value that the API, the CLI and the studio build and check
    once (`checked()`), and that `generate`, `stream` and `write_live` take.

    `shape`: auto/song keeps songs shaped like the corpus's (songgen/songcraft/shape.py), free does not.
    `rhyme`: auto follows the corpus's rhyme patterns, off writes freely, a pattern such as
    AABB, ABAB or XAXA asks for it in every stanza. `chorus`: auto brings a chorus back where
    the corpus's songs have one. `scan`: auto writes lines of stanza 2 on to the syllables of the
    first stanza's where the corpus's lines scan (songgen/writing/stanzas.py). `words`: the share of words left free of the corpus's and the
    frequent English words (1: all). `corpus`: the training text, to measure rhyme and chorus for
    a checkpoint written before they were kept (songgen/songcraft/measures.py). `style`: one of the
    model's styles ("cowboy"), a blend ("cowboy=0.7,burns=0.3" or {"cowboy": 0.7, "burns":
    0.3}), or None for none, the mix (songgen/text/styles.py)."""

    num_songs: int = 1
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    prime: str = ""
    length: int = 3000
    max_lines: int | None = None
    more_lines: int | None = None
    seed: int | None = None
    precision: str = "auto"
    shape: str = "auto"
    rhyme: str = "auto"
    chorus: str = "auto"
    scan: str = "auto"
    words: float = 0.01
    corpus: str | None = None
    max_copy: int | None = None
    retries: int = 5
    style: str | dict | None = None

    def checked(self) -> "SampleOptions":
        """These options with plain errors for any out of range (the model's own limits, such
        as the prime's characters, are checked when it is known)."""
        if not 1 <= self.num_songs <= MAX_SONGS:
            raise ConfigError(f"the number of songs must be between 1 and {MAX_SONGS:,}")
        if not 1 <= self.length <= MAX_LENGTH:
            raise ConfigError(f"the length must be between 1 and {MAX_LENGTH:,} characters")
        if not 0 <= self.temperature <= MAX_TEMPERATURE:  # NaN fails too
            raise ConfigError(f"the temperature must be 0 (greedy) to {MAX_TEMPERATURE:g}")
        if self.top_k < 0:
            raise ConfigError("top-k must be 0 (off) or more")
        if not 0 < self.top_p <= 1:
            raise ConfigError("top-p must be above 0 and at most 1")
        for name in ("max_lines", "more_lines"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name.replace('_', ' ')} must be 1 or more")
        if self.retries < 0:
            raise ConfigError("the retries must be 0 or more")
        if not 0 <= self.words <= 1:  # NaN fails too
            raise ConfigError("the share of free words must be from 0 to 1")
        if self.chorus not in CHORUSES:
            raise ConfigError(f"unknown chorus choice {self.chorus!r}; use auto or off")
        if self.scan not in SCANS:
            raise ConfigError(f"unknown scan choice {self.scan!r}; use auto or off")
        resolve_shape(self.shape, None)  # an unknown shape is refused before any work
        return replace(self, rhyme=check_pattern(self.rhyme))

    @property
    def crafted(self) -> bool:
        return (self.rhyme != "off" or self.chorus != "off" or self.scan != "off"
                or self.words < 1)


def _options(options: SampleOptions | None, keywords: dict) -> SampleOptions:
    """`options` with any keyword options over it (the keyword API), checked."""
    names = {f.name for f in fields(SampleOptions)}
    unknown = sorted(set(keywords) - names)
    if unknown:
        raise TypeError(f"unknown sampling option {unknown[0]!r}")
    return replace(options or SampleOptions(), **keywords).checked()
