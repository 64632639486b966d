"""Plagiarism guard: how long a passage of a generated song was copied verbatim from the corpus.

Every window of `k` characters of the corpus is hashed once, and the window start positions are
sorted by hash. For a song, each of its windows is looked up to
find where in the corpus it occurs. A copy of length L starting at song position i is a chain of
L-k+1 windows found at consecutive corpus positions p, p+1, ...: the search follows such chains
by intersecting position sets, and only tries starts that could beat the best copy so far. The
winning passage is compared character by character, so a hash collision can never report a copy
that is not there.

A song whose longest copy is shorter than `k` characters (words and short phrases every song
shares) gets its exact figure too, from a binary search on the length: a length is one pass over
the corpus's windows of that length (about four passes in all). Reported as 0, as it once was,
an 11-character copy read as "nothing copied" beside a --max-copy of 12.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_BASE = np.uint64(0x100000001B3)


def _window_hashes(text: str, k: int) -> np.ndarray:
    """Polynomial hash (mod 2**64) of every k-character window of `text`, built by doubling:
    log2(k) passes over the text instead of k."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if len(codes) < k:
        return np.empty(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        result, width = None, 0           # hash of the windows of `width` chars built so far
        block, size = codes.astype(np.uint64), 1  # hashes of windows of `size` chars
        remaining = k
        while remaining:
            if remaining & 1:
                if result is None:
                    result, width = block, size
                else:
                    n = min(len(result) - size, len(block) - width)
                    result = result[:n] * (_BASE ** np.uint64(size)) + block[width:width + n]
                    width += size
            remaining >>= 1
            if remaining:
                block = block[:-size] * (_BASE ** np.uint64(size)) + block[size:]
                size *= 2
        return result[: len(codes) - k + 1]


@dataclass
class Copy:
    length: int      # characters copied verbatim (0 when under the index's window)
    text: str        # the copied passage


class CopyIndex:
    def __init__(self, corpus_text: str, k: int = 12):
        if k < 2:
            raise ValueError("window must be at least 2 characters")
        self.text, self.k = corpus_text, k
        hashes = _window_hashes(corpus_text, k)
        self._order = np.argsort(hashes, kind="stable").astype(np.int64)  # equal hashes: ascending
        self._sorted = hashes[self._order]

    def longest_copy(self, song: str) -> Copy:
        """The longest passage of `song` that occurs verbatim in the corpus."""
        found = self._chained_copy(song)
        return found if found.length else self._short_copy(song)

    def _chained_copy(self, song: str) -> Copy:
        """The longest copy of `k` characters or more (see the module's docstring), or none."""
        k = self.k
        h = _window_hashes(song, k)
        if not len(h) or not len(self._sorted):
            return Copy(0, "")
        lo = np.searchsorted(self._sorted, h, "left")
        hi = np.searchsorted(self._sorted, h, "right")
        hit = hi > lo
        # hits[i:j].sum() in O(1): a copy covering windows i..j needs all of them to be hits.
        prefix = np.concatenate([[0], np.cumsum(hit)])
        best_len, best_start = 0, 0
        for i in np.flatnonzero(hit).tolist():
            need = max(best_len - k + 2, 1)   # windows a longer copy must cover
            if i + need > len(h) or prefix[i + need] - prefix[i] < need:
                continue
            places = self._order[lo[i]:hi[i]]
            t = i
            while t + 1 < len(h) and hit[t + 1]:
                following = self._order[lo[t + 1]:hi[t + 1]] - (t + 1 - i)
                places_next = np.intersect1d(places, following, assume_unique=True)
                if not len(places_next):
                    break
                places, t = places_next, t + 1
            length = t - i + k
            if length > best_len:
                p = int(places[0])
                if self.text[p:p + length] == song[i:i + length]:
                    best_len, best_start = length, i
        return Copy(best_len, song[best_start:best_start + best_len])

    def _short_copy(self, song: str) -> Copy:
        """The longest copy shorter than `k` characters: where some passage of a length occurs,
        so do all shorter ones (its beginnings), so the length is found by bisection."""
        lo, hi, best = 0, min(self.k - 1, len(song)), Copy(0, "")
        while lo < hi:
            length = (lo + hi + 1) // 2
            found = self._passage_of_length(song, length)
            if found is None:
                hi = length - 1
            else:
                lo, best = length, Copy(length, found)
        return best

    def _passage_of_length(self, song: str, length: int) -> str | None:
        """A passage of `length` characters of `song` that occurs in the corpus, or None: every
        window of the corpus is looked up among the song's (by hash, then compared)."""
        wanted = _window_hashes(song, length)
        corpus = _window_hashes(self.text, length)
        if not len(wanted) or not len(corpus):
            return None
        order = np.argsort(wanted, kind="stable")
        ranked = wanted[order]
        at = np.minimum(np.searchsorted(ranked, corpus), len(ranked) - 1)
        for p in np.flatnonzero(ranked[at] == corpus).tolist():
            passage = self.text[p:p + length]
            first = int(at[p])
            while first < len(ranked) and ranked[first] == corpus[p]:
                i = int(order[first])
                if song[i:i + length] == passage:  # a hash collision is never taken for a copy
                    return passage
                first += 1
        return None


def open_copy_index(path, trained, max_copy: int | None = None,
                    encoding: str | None = None) -> CopyIndex:
    """Index the training text of `trained` for the plagiarism guard; refuse any other text.
    `encoding`: of the files; by default, the one the run was trained with."""
    from ..errors import CorpusError
    from ..text.lyrics import fingerprint, join_songs, read_songs

    if encoding is None:
        config = trained.checkpoint.train_config
        encoding = config.encoding if config is not None else "utf-8"
    text = join_songs(read_songs(path, encoding))
    expected = trained.checkpoint.fingerprint
    if expected is not None and fingerprint(text) != expected:
        raise CorpusError(f"{path} is not the text {trained.path} was trained on; give that "
                          "text to check copies against it")
    return CopyIndex(text, copy_window(max_copy))


def copy_window(max_copy: int | None) -> int:
    """The window of the index that checks copies against `max_copy`: one no longer than
    max_copy + 1 sees every copy that breaks the limit; 12 when there is none (or it is 11 or
    more), so every such limit shares one index."""
    return 12 if max_copy is None else max(2, min(12, max_copy + 1))


def bounded_text_files(path, max_files: int, max_bytes: int, seconds: float,
                       any_file: bool = False) -> list:
    """The files `read_songs(path)` would read (the file itself, or every .txt file under the
    folder), found by a walk that gives up (CorpusError) past `max_files` entries seen,
    `max_bytes` bytes to read or `seconds`: the studio's check before it reads a training text
    that a checkpoint names, which may be any path (the disk's root, a file not lyrics).
    A single file must be a regular .txt file (any regular file with `any_file`); links to
    folders are not followed."""
    import os
    import stat
    import time
    from pathlib import Path

    from ..errors import CorpusError

    path = Path(path)
    deadline = time.monotonic() + seconds
    if not path.is_dir():
        st = path.stat()
        if not stat.S_ISREG(st.st_mode) or not (any_file or path.suffix.lower() == ".txt"):
            raise CorpusError(f"{path} is not a .txt file")
        found, total = [path], st.st_size
    else:
        found, total, seen, todo = [], 0, 0, [path]
        while todo:
            with os.scandir(todo.pop()) as entries:
                for entry in entries:
                    seen += 1
                    if seen > max_files or time.monotonic() > deadline:
                        raise CorpusError(f"{path} holds too many files to search")
                    if entry.is_dir(follow_symlinks=False):
                        todo.append(Path(entry.path))
                    elif entry.name.lower().endswith(".txt") and entry.is_file():
                        found.append(Path(entry.path))
                        total += entry.stat().st_size
    if total > max_bytes:
        raise CorpusError(f"{path} holds {total:,} bytes, more than {max_bytes:,}")
    return found
