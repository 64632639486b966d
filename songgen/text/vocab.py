"""The vocabulary: characters <-> integer ids (id 0 is the end-of-song symbol), the smallest
id dtype for a vocabulary, encoding text a slice at a time, and fitting text to a model's
characters (close stand-ins for the ones it lacks)."""

from __future__ import annotations

import unicodedata

import numpy as np
import torch

from ..errors import CorpusError
from .reading import describe_chars

# End-of-song marker inside joined text. NUL never survives reading (binary files are refused),
# so it cannot collide with a character of the lyrics. It is vocabulary index 0.
EOS = "\x00"
_CODE_POINTS = 0x110000
SLICE = 1 << 22  # characters encoded at a time


class UnknownCharacters(CorpusError):
    """Text holds characters a model's vocabulary lacks; `chars` lists them, sorted."""

    def __init__(self, chars: list[str], where: str = "the text", advice: str = ""):
        self.chars = chars
        what = f"{where} has characters the model never saw: {describe_chars(chars)}"
        super().__init__(f"{what}; {advice}" if advice else what, what=what)


def id_dtype(symbols: int) -> torch.dtype:
    """The smallest integer dtype that holds ids of `symbols` symbols (1 byte up to 256)."""
    if symbols <= 256:
        return torch.uint8
    return torch.int16 if symbols <= 32768 else torch.int32


def code_table(chars: list[str]) -> np.ndarray:
    """Code point -> id for every possible code point (-1: not in `chars`), so that encoding
    is one table lookup per character."""
    table = np.full(_CODE_POINTS, -1, dtype=np.int32)
    table[[ord(c) for c in chars]] = np.arange(len(chars))
    return table


def code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


class Vocab:
    """Characters <-> integer ids. Id 0 is the end-of-song symbol; the rest are sorted characters
    (a fine-tuned model's added characters are sorted after its base's)."""

    def __init__(self, chars: list[str]):
        if not chars or chars[0] != EOS or len(set(chars)) != len(chars):
            raise ValueError("a vocabulary starts with the end-of-song symbol and has no repeats")
        self.chars = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}
        self._table: np.ndarray | None = None  # built on first encode

    @classmethod
    def from_text(cls, *texts: str) -> "Vocab":
        """The vocabulary of the texts: every character they hold, sorted after EOS."""
        present = np.zeros(_CODE_POINTS, dtype=bool)
        for text in texts:
            for start in range(0, len(text), SLICE):
                present[code_points(text[start:start + SLICE])] = True
        present[ord(EOS)] = False
        return cls([EOS] + [chr(c) for c in np.flatnonzero(present)])

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.chars == other.chars

    @property
    def dtype(self) -> torch.dtype:
        return id_dtype(len(self))

    def unknown(self, text: str) -> list[str]:
        """Characters of `text` that are not in the vocabulary, sorted."""
        return sorted(set(text) - set(self.index))

    def encode(self, text: str) -> torch.Tensor:
        """Vectorised encoding, a slice at a time. Raises on unknown characters."""
        if self._table is None:
            self._table = code_table(self.chars)
        out = torch.empty(len(text), dtype=self.dtype)
        view = out.numpy()
        for start in range(0, len(text), SLICE):
            ids = self._table[code_points(text[start:start + SLICE])]
            if len(ids) and ids.min() < 0:
                raise UnknownCharacters(self.unknown(text))
            view[start:start + len(ids)] = ids
        return out

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def fit(self, text: str) -> tuple[str, list[tuple[str, str]]]:
        """`text` with every character the vocabulary lacks replaced by a close one it has: the
        other case (Z -> z), the letter without its accent (é -> e), a plain form (’ -> ',
        … -> ...); dropped where there is none. Returns the new text and the changes, in order
        of first appearance, as (character, replacement) pairs ("" where it was dropped)."""
        changes: dict[str, str] = {}
        for c in text:
            if c not in self.index and c not in changes:
                changes[c] = next((r for r in _stand_ins(c) if r and all(
                    x in self.index and x != EOS for x in r)), "")
        if not changes:
            return text, []
        return "".join(changes.get(c, c) for c in text), list(changes.items())


# Plain forms of typographic characters that a model may never have seen.
_PLAIN = {"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
          "`": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',
          "\u2033": '"', "\u00ab": '"', "\u00bb": '"', "\u2010": "-", "\u2011": "-",
          "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2026": "...",
          "\u00a0": " ", "\t": " "}


def _stand_ins(c: str):
    """Replacements for a character, closest first: its other case, then without accents (and
    in either case), then its compatibility or plain typographic form."""
    def cases(text):
        return (text, text.lower(), text.upper())

    yield c.lower()
    yield c.upper()
    bare = "".join(x for x in unicodedata.normalize("NFD", c) if not unicodedata.combining(x))
    if bare != c:
        yield from cases(unicodedata.normalize("NFC", bare))
    compatible = unicodedata.normalize("NFKC", c)
    if compatible != c:
        yield from cases(compatible)
    if c in _PLAIN:
        yield _PLAIN[c]


# -- a training corpus ---------------------------------------------------------------------


def numpy_dtype(symbols: int) -> np.dtype:
    return torch.empty(0, dtype=id_dtype(symbols)).numpy().dtype
