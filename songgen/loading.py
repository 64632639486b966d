"""Loading a training corpus: files streamed a piece at a time into one encoded tensor.

Nothing the size of the corpus is held but the encoded result (1 byte a character for up to 256
symbols): each piece of a file, cut after a song break, is decoded, normalised, split into
songs, hashed and encoded, then dropped. Characters get ids in order of first appearance while
streaming; one pass over the small ids at the end renumbers them into the sorted vocabulary.
The result equals reading every song first (`read_songs`) and encoding the joined text.
"""

from __future__ import annotations

import hashlib
import warnings
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .corpus import (EOS, SONG_BREAK, UTF16_BOMS, Vocab, check_memory, clean_songs,
                     decode_text, describe_chars, id_dtype, split_songs, text_files, title_key)
from .errors import CorpusError, SonggenWarning
from .shape import ShapeMeter, SongShape

READ_BYTES = 1 << 22  # bytes of a file read at a time
# Peak memory while loading: the encoded corpus (up to the file size before it is trimmed) plus
# the pieces in flight; measured by benchmarks/bench_corpus.py.
LOAD_BYTES_PER_BYTE = 1.3
LOAD_OVERHEAD = 600 << 20
ONE_SONG_WARNING = 20_000  # characters: longer than any real song


@dataclass
class Corpus:
    """A corpus ready for training: vocabulary, encoded train and validation streams."""

    vocab: Vocab
    train: torch.Tensor
    val: torch.Tensor
    songs: int
    fingerprint: str
    source: str = ""  # the file or folder it was read from
    shape: SongShape | None = None  # [shape hook] what its songs look like (songgen/shape.py)

    @property
    def chars(self) -> int:
        return len(self.train) + len(self.val)

    def summary(self) -> str:
        songs = f"{self.songs:,} song{'' if self.songs == 1 else 's'}"
        return (f"corpus: {self.chars:,} characters, {songs}, vocabulary "
                f"{len(self.vocab)} symbols; train {len(self.train):,} / validation "
                f"{len(self.val):,} characters")


def load_corpus(path: str | Path, val_frac: float = 0.1, vocab: Vocab | None = None,
                expect_fingerprint: str | None = None, extend: bool = False,
                copies: int = 1, trained_on: str | None = None) -> Corpus:
    """Read, split and encode. With `vocab` (from a checkpoint), encode with it instead, adding
    the characters it lacks if `extend`; with `expect_fingerprint`, refuse a text other than the
    one the checkpoint was trained on (`trained_on`, its recorded path, is named then).
    `copies`: processes of this machine loading it at once, for the memory check."""
    files = text_files(path)
    size = check_memory(files, LOAD_BYTES_PER_BYTE * copies, LOAD_OVERHEAD * copies)
    encoder = _Encoder(size + len(files) + 16, vocab, extend)
    for file in files:
        for songs in _songs(file):
            encoder.add(songs)
    if not encoder.sizes:
        raise CorpusError(f"{path} holds no lyrics (it is empty or only whitespace); "
                          "give a file with at least one song")
    found = encoder.digest.hexdigest()[:16]
    if expect_fingerprint is not None and found != expect_fingerprint:
        if trained_on and Path(path).resolve() == Path(trained_on).resolve():
            what = f"{path} has changed since the run was trained on it"
        else:
            where = f", {trained_on}" if trained_on else ""
            what = f"{path} is not the text the checkpoint was trained on{where}"
        raise CorpusError(f"{what} (fingerprint {found}, expected {expect_fingerprint}); resume "
                          "with the same text, or start a new run in another checkpoint folder")
    if encoder.unknown:
        raise CorpusError(f"characters not in the vocabulary: {describe_chars(encoder.unknown)}")
    vocab, data = encoder.finish()
    if len(encoder.sizes) == 1 and len(data) > ONE_SONG_WARNING:
        warnings.warn(f"{path} reads as one song of {len(data):,} characters: it never has two "
                      "blank lines in a row; if it holds several songs, separate them with two "
                      "blank lines so that the model learns where a song ends", SonggenWarning)
    cut = _validation_cut(encoder, data, vocab, val_frac)
    return Corpus(vocab=vocab, train=data[:cut], val=data[cut:], songs=len(encoder.sizes),
                  fingerprint=found, source=str(Path(path).resolve()),
                  shape=encoder.shape.shape())  # [shape hook]


def _songs(path: Path):
    """The songs of a file, in lists, a piece of the file at a time."""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise CorpusError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        head = _read(handle, path, 2)
        if head.startswith(UTF16_BOMS):  # rare: decoded whole, as UTF-16 has no byte-level lines
            yield split_songs(decode_text(head + _read(handle, path, -1), path))
            return
        offset, lines, raw = 0, 0, head
        open_song: list[str] = []  # text read since the last song break, in pieces
        while True:
            block = _read(handle, path)
            raw += block
            end = len(raw) if not block else max(raw.rfind(b"\n"), raw.rfind(b"\r")) + 1
            if block and end == 0:
                continue  # no line end yet: read on
            # Cut after a line end, so that no UTF-8 sequence is split; a CR at the very end
            # may be the first half of a CRLF, so it waits for the next block.
            if block and end == len(raw) and raw.endswith(b"\r"):
                end -= 1
                if end == 0:
                    continue
            text = decode_text(raw[:end], path, offset, lines)
            offset, lines, raw = offset + end, lines + raw.count(b"\n", 0, end), raw[end:]
            if not block:
                yield split_songs("".join(open_song) + text)
                return
            # A break that closes the open song starts in its trailing blank lines or later.
            tail = _blank_tail(open_song)
            pieces, rest = _closed_songs(tail + text)
            if not pieces:
                open_song.append(text)
                continue
            head_text = "".join(open_song)
            pieces[0] = head_text[:len(head_text) - len(tail)] + pieces[0]
            open_song = [rest]
            yield clean_songs(pieces)


def _read(handle, path: Path, size: int | None = None) -> bytes:
    """The next `size` bytes (a piece, by default; -1: the rest), read errors made plain."""
    try:
        return handle.read(READ_BYTES if size is None else size)
    except OSError as exc:
        raise CorpusError(f"cannot read {path}: {exc.strerror or exc}") from None


def _blank_tail(parts: list[str]) -> str:
    """The run of spaces, tabs and line ends that the joined `parts` end with."""
    tail = []
    for part in reversed(parts):
        kept = part.rstrip(" \t\n")
        tail.append(part[len(kept):])
        if kept:
            break
    return "".join(reversed(tail))


def _closed_songs(text: str) -> tuple[list[str], str]:
    """The pieces of `text` that a song break closes, and the rest, which the next piece of the
    file continues. A break counts only if the text after it could not lengthen it: some
    non-blank character follows within `text`."""
    tail = text[-4096:]
    limit = len(text) - len(tail) + len(tail.rstrip(" \t\n")) if tail.strip() else \
        len(text.rstrip(" \t\n"))
    pieces, start = [], 0
    for match in SONG_BREAK.finditer(text):
        if match.end() >= limit:
            break
        pieces.append(text[start:match.start()])
        start = match.end()
    return pieces, text[start:]


class _Encoder:
    """Songs in, ids out: a growing buffer of ids in order of first appearance, the sizes and
    title changes of the songs (for the validation cut), and the corpus hash."""

    def __init__(self, capacity: int, vocab: Vocab | None, extend: bool):
        self.given, self.extend = vocab, extend
        self.chars = list(vocab.chars) if vocab else [EOS]
        self.table = np.full(0x110000, -1, dtype=np.int32)
        self.table[[ord(c) for c in self.chars]] = np.arange(len(self.chars))
        self.buffer = np.empty(max(capacity, 1), dtype=_id_dtype(len(self.chars)))
        self.used = 0
        self.sizes = array("q")       # characters of each song, its end-of-song symbol included
        self.new_title = array("b")   # whether a song's title differs from the one before
        self.last_title: str | None = None
        self.unknown: list[str] = []  # characters a fixed vocabulary lacks
        self.digest = hashlib.sha256()
        self.shape = ShapeMeter()     # [shape hook] titles, stanzas, lines, song lengths

    def add(self, songs: list[str]) -> None:
        if not songs:
            return
        self.shape.add(songs)  # [shape hook]
        for song in songs:
            self.sizes.append(len(song) + 1)
            title = title_key(song)
            self.new_title.append(title != self.last_title)
            self.last_title = title
        text = EOS.join(songs) + EOS
        # In slices: a file without song breaks is one piece as long as the file.
        for start in range(0, len(text), READ_BYTES):
            part = text[start:start + READ_BYTES]
            self.digest.update(part.encode("utf-8", "surrogatepass"))
            codes = np.frombuffer(part.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
            self.shape.add_codes(codes)  # [shape hook] line lengths
            ids = self.table[codes]
            if ids.min() < 0:
                self._learn(np.unique(codes[ids < 0]))
                ids = self.table[codes]
            self._write(ids)

    def _learn(self, codes: np.ndarray) -> None:
        fresh = [chr(c) for c in codes]
        if self.given is not None and not self.extend:
            # Reported after the whole text is read: a different text is the likelier mistake.
            self.unknown = sorted(self.unknown + fresh)
        self.table[codes] = np.arange(len(self.chars), len(self.chars) + len(fresh))
        self.chars += fresh
        dtype = _id_dtype(len(self.chars))
        if dtype != self.buffer.dtype:  # more symbols than the ids held so far can count
            self.buffer = self.buffer.astype(dtype)

    def _write(self, ids: np.ndarray) -> None:
        end = self.used + len(ids)
        if end > len(self.buffer):  # text that grew (NFC can lengthen a few characters)
            self.buffer.resize(end + len(self.buffer) // 4, refcheck=False)
        self.buffer[self.used:end] = ids
        self.used = end

    def finish(self) -> tuple[Vocab, torch.Tensor]:
        """The final vocabulary (sorted, or the given one with additions sorted after it) and
        the ids renumbered into it."""
        start = len(self.given) if self.given is not None else 1
        final = self.chars[:start] + sorted(self.chars[start:])
        provisional = {c: i for i, c in enumerate(self.chars)}
        lookup = np.empty(len(final), dtype=self.buffer.dtype)
        lookup[[provisional[c] for c in final]] = np.arange(len(final))
        # Trimming with realloc gives the unused tail back without copying the rest.
        self.buffer.resize(self.used, refcheck=False)
        if final != self.chars:
            step = 1 << 20  # the lookup widens its index to int64: keep that copy small
            for begin in range(0, self.used, step):
                part = self.buffer[begin:begin + step]
                part[:] = lookup[part]
        return Vocab(final), torch.from_numpy(self.buffer)


def _id_dtype(symbols: int) -> np.dtype:
    return torch.empty(0, dtype=id_dtype(symbols)).numpy().dtype


def _validation_cut(encoder: _Encoder, data: torch.Tensor, vocab: Vocab, val_frac: float) -> int:
    """Where validation starts: the last `val_frac` of the corpus, cut at the song boundary
    closest to the target, preferring boundaries between songs with different titles, because
    variants of one song sit next to each other and would leak. A corpus of one song is cut at
    a line boundary instead, and so is one whose songs are too long for a song boundary to come
    within a quarter of the validation size of the target (a play, a few long texts)."""
    total = len(data)
    target = total * (1 - val_frac)
    cut = None
    if len(encoder.sizes) > 1:
        sizes = np.cumsum(np.frombuffer(encoder.sizes, dtype=np.int64))
        cuts = np.flatnonzero(np.frombuffer(encoder.new_title, dtype=np.int8)[1:]) + 1
        if len(cuts) == 0:
            cuts = np.arange(1, len(sizes))
        cut = int(sizes[cuts[np.argmin(np.abs(sizes[cuts - 1] - target))] - 1])
        if abs(cut - target) <= (total - target) / 4:
            return cut
    line_cut = _line_cut(data, vocab, target)
    if line_cut is None:
        if cut is None:
            raise CorpusError("the corpus is a single line; a validation split needs at least "
                              "two lines of lyrics")
        return cut
    return line_cut if cut is None else min((cut, line_cut), key=lambda c: abs(c - target))


def _line_cut(data: torch.Tensor, vocab: Vocab, target: float) -> int | None:
    """The end of the last line that ends before the line where `target` falls (None for a
    text without line breaks)."""
    newline = vocab.index.get("\n")
    if newline is None:
        return None
    ids, step = data.numpy(), 1 << 24
    ends = np.concatenate([np.flatnonzero(ids[i:i + step] == newline) + i + 1
                           for i in range(0, len(ids), step)])
    if len(ends) == 0:
        return None
    lines = np.append(ends, len(ids))  # cumulative sizes of the lines, each with its \n
    k = int(np.searchsorted(lines, target))
    return int(lines[min(max(k, 1), len(lines) - 1) - 1])
