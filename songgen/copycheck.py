"""Plagiarism guard: how long a passage of a generated song was copied verbatim from the corpus.

Every window of `k` characters of the corpus is hashed once into a sorted array (a few hundred
milliseconds for 3 MB). A song's windows are looked up in it; a run of consecutive hits marks a
candidate copy, which is then confirmed (and trimmed if needed) by exact substring search, so a
hash collision can never report a copy that is not there. Copies shorter than `k` characters
(single words, short phrases every song shares) are reported as 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_BASE = np.uint64(0x100000001B3)


def _window_hashes(text: str, k: int) -> np.ndarray:
    """Polynomial hash (mod 2**64) of every k-character window of `text`."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    n = len(codes) - k + 1
    if n <= 0:
        return np.empty(0, dtype=np.uint64)
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(k):
            h = h * _BASE + codes[j:j + n].astype(np.uint64)
    return h


@dataclass
class Copy:
    length: int      # characters copied verbatim (0 when under the index's window)
    text: str        # the copied passage


class CopyIndex:
    def __init__(self, corpus_text: str, k: int = 12):
        if k < 2:
            raise ValueError("window must be at least 2 characters")
        self.text, self.k = corpus_text, k
        self._hashes = np.unique(_window_hashes(corpus_text, k))

    def longest_copy(self, song: str) -> Copy:
        """The longest passage of `song` that occurs verbatim in the corpus."""
        k = self.k
        h = _window_hashes(song, k)
        if not len(h):
            return Copy(0, "")
        pos = np.searchsorted(self._hashes, h).clip(max=len(self._hashes) - 1)
        hit = self._hashes[pos] == h
        best = Copy(0, "")
        i = 0
        while i < len(hit):
            if not hit[i]:
                i += 1
                continue
            j = i
            while j + 1 < len(hit) and hit[j + 1]:
                j += 1
            # Windows i..j all occur: song[i:j+k] is the candidate; confirm it exactly.
            found = self._longest_within(song[i:j + k], best.length)
            if found.length > best.length:
                best = found
            i = j + 1
        return best

    def _longest_within(self, span: str, floor: int) -> Copy:
        """Longest substring of `span` present in the corpus and longer than `floor`."""
        if span in self.text:
            return Copy(len(span), span) if len(span) > floor else Copy(0, "")
        best = Copy(0, "")
        length = max(floor, self.k - 1)
        for start in range(len(span)):
            # Greedy: only look for something longer than the best so far.
            while start + length + 1 <= len(span) and span[start:start + length + 1] in self.text:
                length += 1
                best = Copy(length, span[start:start + length])
        return best


def open_copy_index(path, trained, max_copy: int | None = None) -> CopyIndex:
    """Index the training text of `trained` for the plagiarism guard; refuse any other text."""
    from .corpus import fingerprint, join_songs, read_songs
    from .errors import CorpusError

    text = join_songs(read_songs(path))
    expected = trained.state.get("fingerprint")
    if expected is not None and fingerprint(text) != expected:
        raise CorpusError(f"{path} is not the text {trained.path} was trained on; give that "
                          "text to check copies against it")
    # A window no longer than max_copy + 1 sees every copy that breaks the limit.
    k = 12 if max_copy is None else max(2, min(12, max_copy + 1))
    return CopyIndex(text, k)
