"""A corpus ready for training: the bundled demo songs, a lyrics file or folder streamed,
encoded (one id a character) and measured (its song shape, its styles), then cut into training
and validation streams at a song boundary. The format it reads is songgen/text/lyrics.py.
"""

from __future__ import annotations

import hashlib
import warnings
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import CorpusError, SonggenWarning
from ..songcraft.shape import ShapeMeter, SongShape
from .lyrics import (LOAD_BYTES_PER_BYTE, LOAD_OVERHEAD, ONE_SONG_WARNING, READ_BYTES,
                     CorpusChanged, _hash_into, _no_lyrics, _songs, join_songs, title_key)
from .notlyrics import too_small, warn
from .reading import check_memory, describe_chars, folder_contents, text_files
from .vocab import EOS, UnknownCharacters, Vocab, code_points, code_table, numpy_dtype


def demo_corpus() -> Path:
    """The bundled demo songs: inside the installed package, or data/ of a source checkout."""
    package = Path(__file__).resolve().parent.parent
    for folder in (package / "demo", package.parent / "data"):
        if any(folder.glob("*.txt")):
            return folder
    raise CorpusError("the bundled demo corpus is missing from this installation; "
                      "give a lyrics file or folder to train on")


@dataclass
class Corpus:
    """A corpus ready for training: vocabulary, encoded train and validation streams."""

    vocab: Vocab
    train: torch.Tensor
    val: torch.Tensor
    songs: int
    fingerprint: str
    source: str = ""  # the file or folder it was read from
    shape: SongShape | None = None  # what its songs look like: titles, stanzas, lengths
    cache_file: str = ""  # the corpus cache file its ids are mapped from ("": none)
    cached: bool = False  # whether that file was there already (else it was written now)
    styles: "Styles | None" = None  # its styles (songgen.text.styles), None for an unstyled corpus

    @property
    def chars(self) -> int:
        return len(self.train) + len(self.val)

    def summary(self) -> str:
        songs = f"{self.songs:,} song{'' if self.songs == 1 else 's'}"
        if self.shape is not None and self.shape.titled > 0:
            songs += " (split at two blank lines, or one before a # Title line)"
        ending = int((self.val == 0).sum()) if self.songs > 1 else 0  # songs validation ends
        line = (f"corpus: {self.chars:,} characters, {songs}, vocabulary "
                f"{len(self.vocab)} symbols; train {len(self.train):,} / validation "
                f"{len(self.val):,} characters" + (f" ({self.songs - ending:,} / {ending:,} "
                                                   "songs)" if ending else ""))
        for more in (folder_contents(self.source) if self.source else None,
                     too_small(Path(self.source).name, self.chars - self.songs)):
            line = line if more is None else f"{line}\n{more}"
        return line if self.styles is None else f"{line}\n{self.styles.summary()}"


def load_corpus(path: str | Path, val_frac: float = 0.1, vocab: Vocab | None = None,
                expect_fingerprint: str | None = None, extend: bool = False,
                copies: int = 1, trained_on: str | None = None,
                encoding: str = "utf-8", cache=None, styles: str = "auto",
                known_styles: list[str] | None = None) -> Corpus:
    """Read, split and encode. With `vocab` (from a checkpoint), encode with it instead, adding
    the characters it lacks if `extend`; with `expect_fingerprint`, refuse a text other than the
    one the checkpoint was trained on (`trained_on`, its recorded path, is named then).
    `copies`: processes of this machine loading it at once, for the memory check. `encoding`:
    of the files (UTF-8 by default; a UTF-16 byte-order mark is recognised whatever it is).
    `cache`: where the encoded text may be kept, an object whose `load` takes the arguments
    of `encode_corpus` (`songgen.text.cache.CorpusCache`); None: the text is read.
    `styles`: auto (from the folder layout and style marks) or none; `known_styles`: the
    styles of the checkpoint (kept first; new ones are added only if `extend`)."""
    if cache is None:
        encoded = encode_corpus(path, encoding, vocab, extend, copies)
    else:
        encoded = cache.load(path, encoding, vocab, extend, copies)
    return corpus_from(encoded, path, val_frac, vocab, expect_fingerprint, extend, trained_on,
                       styles, known_styles)


@dataclass
class Encoded:
    """A corpus read and encoded, not yet cut for training: what the corpus cache holds.

    `ids`: the end-of-song symbol, then every song followed by it, in `vocab` (a text is scored
    from that first symbol on, as every song was read in training; training uses `ids[1:]`).
    The first `base` symbols of `vocab` were given (a checkpoint's, which the text may not all
    use; 1 for the text's own vocabulary: EOS alone); those after them occur, sorted.
    `sizes`: characters of each song, its end-of-song symbol included; `new_title`: whether a
    song's title differs from the one before (for the validation cut)."""

    ids: torch.Tensor
    vocab: Vocab
    base: int
    sizes: np.ndarray
    new_title: np.ndarray
    fingerprint: str
    shape: SongShape | None
    origin: str = "read"  # "read": encoded now; "built": and written to the cache; "cache": mapped
    cache_file: str = ""
    # Each song's style as runs of [name or None, songs] (songgen.text.styles), in song order,
    # and the song shape of each style (SongShape.to_dict).
    styles: list | None = None
    style_shapes: dict | None = None


def encode_corpus(path: str | Path, encoding: str = "utf-8", vocab: Vocab | None = None,
                  extend: bool = False, copies: int = 1, files: list[Path] | None = None
                  ) -> Encoded:
    """Read and encode every song of a file or folder (`files`: its files, when known) with
    the text's own vocabulary, or `vocab` grown by the characters it lacks."""
    files = text_files(path) if files is None else files
    size = check_memory(files, LOAD_BYTES_PER_BYTE * copies, LOAD_OVERHEAD * copies)
    encoder = _Encoder(size + len(files) + 17, vocab, extend)
    from .styles import folder_style, warn_empty_folders

    root = Path(path)
    warn_empty_folders(root)
    reports: list = []  # what each file holds besides lyrics
    for file in files:
        folder = folder_style(root, file)
        for songs, labels in _songs(file, encoding, marks=True, reports=reports):
            encoder.add(songs, [label or folder for label in labels])
    if not encoder.sizes:
        raise _no_lyrics(path)
    warn(path, reports)
    found = encoder.digest.hexdigest()[:16]
    final, ids = encoder.finish()
    return Encoded(ids=ids, vocab=final, base=len(vocab) if vocab is not None else 1,
                   sizes=np.frombuffer(encoder.sizes, dtype=np.int64),
                   new_title=np.frombuffer(encoder.new_title, dtype=np.int8),
                   fingerprint=found, shape=encoder.shape.shape(), styles=encoder.style_runs,
                   style_shapes={name: meter.shape().to_dict()
                                 for name, meter in encoder.style_shapes.items()})


def corpus_from(encoded: Encoded, path, val_frac: float = 0.1, vocab: Vocab | None = None,
                expect_fingerprint: str | None = None, extend: bool = False,
                trained_on: str | None = None, styles: str = "auto",
                known_styles: list[str] | None = None) -> Corpus:
    """An encoded text as a training corpus: checked against the run's fingerprint, in its
    vocabulary (see `load_corpus`), cut for validation."""
    if expect_fingerprint is not None and encoded.fingerprint != expect_fingerprint:
        raise CorpusChanged(path, trained_on, encoded.fingerprint, expect_fingerprint)
    vocab, ids, unknown = in_vocab(encoded, vocab, extend)
    if unknown:
        raise UnknownCharacters(unknown, str(path))
    data = ids[1:]
    if len(encoded.sizes) == 1 and len(data) > ONE_SONG_WARNING:
        warnings.warn(f"{path} reads as one song of {len(data):,} characters: it never has two "
                      "blank lines in a row; if it holds several songs, separate them with two "
                      "blank lines so that the model learns where a song ends", SonggenWarning)
    from . import styles as style_module

    labelled = style_module.song_labels(encoded.styles, styles, known_styles, grow=extend,
                                        default=Path(path).stem)
    found = None
    if labelled is None:
        cut = _validation_cut(encoded.sizes, encoded.new_title, data, vocab, val_frac)
        train, val = data[:cut], data[cut:]
    else:
        names, labels = labelled
        train, val, found = style_module.split(
            data, encoded.sizes, encoded.new_title, names, labels, val_frac,
            lambda: _validation_cut(encoded.sizes, encoded.new_title, data, vocab, val_frac))
        found.table.shapes = dict(encoded.style_shapes or {})
        found.notes += [f"style {name} alone uses {describe_chars(chars, 8)}" for name, chars
                        in style_module.own_characters(data, encoded.sizes, labels, names,
                                                       vocab.chars)]
    # A styled corpus's texts are copies (cut per style), not the cache file's mapped ids.
    return Corpus(vocab=vocab, train=train, val=val, songs=len(encoded.sizes),
                  fingerprint=encoded.fingerprint, source=str(Path(path).resolve()),
                  shape=encoded.shape, cache_file=encoded.cache_file if ids is encoded.ids
                  and found is None else "", cached=encoded.origin == "cache", styles=found)


def in_vocab(encoded: Encoded, vocab: Vocab | None,
             extend: bool = False) -> tuple[Vocab, torch.Tensor | None, list[str]]:
    """The encoded text in `vocab` (None: the text's own, sorted), grown by the characters it
    lacks if `extend`: the vocabulary, the ids (`encoded.ids` itself where they already are in
    it, else a new tensor) and the characters `vocab` lacks when not `extend` (then no ids)."""
    have = encoded.vocab.chars
    if vocab is None:
        if encoded.base == 1:
            return encoded.vocab, encoded.ids, []
        target = Vocab([EOS] + sorted(c for c in _present(encoded) if c != EOS))
    else:
        given = vocab.chars
        if have[:len(given)] == given and encoded.base <= len(given):
            # The ids are what encoding with `vocab` gives: the symbols after it occur, sorted.
            extra = have[len(given):]
            if not extra or extend:
                return encoded.vocab, encoded.ids, []
            return vocab, None, extra
        missing = sorted(c for c in _present(encoded) if c not in vocab.index)
        if missing and not extend:
            return vocab, None, missing
        target = Vocab(given + missing)
    if target == encoded.vocab:
        return target, encoded.ids, []
    lookup = np.array([target.index.get(c, 0) for c in have], dtype=numpy_dtype(len(target)))
    source, out = encoded.ids.numpy(), torch.empty(len(encoded.ids), dtype=target.dtype)
    view, step = out.numpy(), 1 << 22
    for start in range(0, len(source), step):
        view[start:start + step] = lookup[source[start:start + step]]
    return target, out, []


def _present(encoded: Encoded) -> list[str]:
    """The symbols that occur in the encoded text (a pass over it)."""
    seen = np.zeros(len(encoded.vocab), dtype=bool)
    ids, step = encoded.ids.numpy(), 1 << 22
    for start in range(0, len(ids), step):
        seen |= np.bincount(ids[start:start + step], minlength=len(seen)).astype(bool)
    return [encoded.vocab.chars[i] for i in np.flatnonzero(seen)]


class _Encoder:
    """Songs in, ids out: a growing buffer of ids in order of first appearance (after a first
    end-of-song symbol), the sizes and title changes of the songs (for the validation cut), and
    the corpus hash. One pass over the small ids at the end renumbers them into the sorted
    vocabulary."""

    def __init__(self, capacity: int, vocab: Vocab | None, extend: bool):
        self.given, self.extend = vocab, extend
        self.chars = list(vocab.chars) if vocab else [EOS]
        self.table = code_table(self.chars)
        self.buffer = np.empty(max(capacity, 1), dtype=numpy_dtype(len(self.chars)))
        self.buffer[0] = 0  # EOS: what the text is read after
        self.used = 1
        self.sizes = array("q")       # characters of each song, its end-of-song symbol included
        self.new_title = array("b")   # whether a song's title differs from the one before
        self.last_title: str | None = None
        self.digest = hashlib.sha256()
        self.shape = ShapeMeter()     # titles, stanzas, lines, song lengths
        self.style_runs: list = []    # [style or None, songs] (songgen.text.styles)
        self.style_shapes: dict[str, ShapeMeter] = {}  # the songs of each style, measured

    def add(self, songs: list[str], styles: list | None = None) -> None:
        if not songs:
            return
        for style in styles or [None] * len(songs):
            if self.style_runs and self.style_runs[-1][0] == style:
                self.style_runs[-1][1] += 1
            else:
                self.style_runs.append([style, 1])
        for style in set(styles or []) - {None}:  # song shape per style, for sampling in it
            own = [song for song, s in zip(songs, styles) if s == style]
            meter = self.style_shapes.setdefault(style, ShapeMeter())
            meter.add(own)
            meter.add_codes(code_points(join_songs(own)))
        self.shape.add(songs)
        for song in songs:
            self.sizes.append(len(song) + 1)
            title = title_key(song)
            self.new_title.append(title != self.last_title)
            self.last_title = title
        text = join_songs(songs)
        _hash_into(self.digest, text)
        # In slices: a file without song breaks is one piece as long as the file.
        for start in range(0, len(text), READ_BYTES):
            codes = code_points(text[start:start + READ_BYTES])
            self.shape.add_codes(codes)  # line lengths
            ids = self.table[codes]
            if ids.min() < 0:
                self._learn(np.unique(codes[ids < 0]))
                ids = self.table[codes]
            self._write(ids)

    def _learn(self, codes: np.ndarray) -> None:
        # A fixed vocabulary's missing characters are learned too, and reported after the whole
        # text is read (`in_vocab`): a different text is the likelier mistake.
        fresh = [chr(c) for c in codes]
        self.table[codes] = np.arange(len(self.chars), len(self.chars) + len(fresh))
        self.chars += fresh
        dtype = numpy_dtype(len(self.chars))
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


def _validation_cut(sizes: np.ndarray, new_title: np.ndarray, data: torch.Tensor, vocab: Vocab,
                    val_frac: float) -> int:
    """Where validation starts: the last `val_frac` of the corpus, cut at the song boundary
    closest to the target, preferring boundaries between songs with different titles, because
    variants of one song sit next to each other and would leak. A corpus of one song is cut at
    a line boundary instead, and so is one whose songs are too long for a song boundary to come
    within a quarter of the validation size of the target (a play, a few long texts)."""
    total = len(data)
    target = total * (1 - val_frac)
    cut = None
    if len(sizes) > 1:
        ends = np.cumsum(sizes, dtype=np.int64)
        cuts = np.flatnonzero(new_title[1:]) + 1
        if len(cuts) == 0:
            cuts = np.arange(1, len(ends))
        cut = int(ends[cuts[np.argmin(np.abs(ends[cuts - 1] - target))] - 1])
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
