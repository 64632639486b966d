"""The lyrics format and the corpus made of it: songs and stanzas, titles, the end-of-song
symbol, streaming a file's songs, the corpus fingerprint, encoding a corpus and the validation
cut. Reading bytes as text (encodings, folders) is songgen/textfiles.py; the vocabulary is
songgen/vocab.py (both re-exported here, as this is where a reader of the format looks).

Files are streamed a piece at a time: each piece, cut after a song break, is decoded,
normalised, split into songs, hashed and encoded, then dropped, so nothing the size of the
corpus is held but the encoded result (1 byte a character for up to 256 symbols). `_songs` is
the only parser; every reader (training corpus, evaluation text, copy index) goes through it.

The format: UTF-8 text; songs separated by two or more blank lines, stanzas by one; a song may
start with a `# Title` line, and a `# Title` line after a blank line starts a new song. After
every song the model sees EOS, a reserved symbol that is never a character of the text.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import CorpusError, SonggenWarning
from .notlyrics import Scanner, too_small, warn
from .shape import ShapeMeter, SongShape
from .textfiles import (AUTO, FALLBACK, UTF16_BOMS, BadEncoding, WrongEncoding,  # noqa: F401
                        available_memory, check_memory, decode_text, describe_chars,
                        folder_contents, normalise, read_text, streamable, text_files)
from .vocab import EOS, UnknownCharacters, Vocab, code_points, code_table, id_dtype  # noqa: F401
from .vocab import numpy_dtype

TITLE_MARK = "# "

# Two or more blank lines (lines holding only spaces/tabs count as blank) separate songs, and
# so does one before a `# Title` line: a title is the format's own mark of a new song.
SONG_BREAK = re.compile(r"\n[ \t]*\n(?:(?:[ \t]*\n)+|(?=# ))")
_VERSION_SUFFIX = re.compile(r"\s*\([^()]*\)\s*$")
READ_BYTES = 1 << 22  # bytes of a file read at a time; also characters hashed/encoded at a time
# Peak memory per byte of the files: while loading a training corpus (the encoded corpus plus
# the pieces in flight), and while reading whole songs as text (`read_songs`: Python strings of
# two bytes a character; four-byte text such as emoji doubles it).
LOAD_BYTES_PER_BYTE = 1.3
LOAD_OVERHEAD = 600 << 20
READ_BYTES_PER_BYTE = 6.0
ONE_SONG_WARNING = 20_000  # characters: longer than any real song


class CorpusChanged(CorpusError):
    """A resume was given a text other than the one its run was trained on."""

    def __init__(self, path, trained_on: str | None, found: str, expected: str):
        self.path, self.trained_on = path, trained_on
        if trained_on and Path(path).resolve() == Path(trained_on).resolve():
            what = f"{path} has changed since the run was trained on it"
        else:
            what = f"{path} is not the text the checkpoint was trained on" + (
                f", {trained_on}" if trained_on else "")
        what += f" (fingerprint {found}, expected {expected})"
        super().__init__(f"{what}; resume with the same text, or fine-tune from the run's best "
                         "checkpoint in a new folder to go on with the new text", what=what)


# -- titles --------------------------------------------------------------------------------

def title_of(song: str) -> str | None:
    """The title of a song in the corpus format (its first line, after "# "), or None."""
    first = song.split("\n", 1)[0]
    return first[len(TITLE_MARK):].strip() if first.startswith(TITLE_MARK) else None


def title_line(title: str | None) -> str:
    """The opening of a song with this title (empty for none); a title typed with its "# "
    does not get a second one."""
    title = (title or "").strip()
    if title.startswith(TITLE_MARK):
        title = title[len(TITLE_MARK):].strip()
    return f"{TITLE_MARK}{title}\n\n" if title else ""


def is_title_line(line: str, index: int) -> bool:
    """Whether the `index`-th line (from 0) of a song is its title line."""
    return index == 0 and line.startswith(TITLE_MARK)


def title_key(song: str) -> str:
    """The first line without a trailing '(version)', so that variants of a song group together."""
    return _VERSION_SUFFIX.sub("", song.split("\n", 1)[0])


# -- songs -------------------------------------------------------------------------------

def split_songs(text: str) -> list[str]:
    """Songs are separated by two or more blank lines, or by one before a `# Title` line;
    surrounding blank lines are dropped."""
    return _clean_songs(SONG_BREAK.split(text))


def _clean_songs(pieces: list[str]) -> list[str]:
    """The text between song breaks as songs: trailing spaces on the last line and blank edges
    carry no lyric, and a piece that is only blank is no song."""
    songs = []
    for piece in pieces:
        song = piece.strip("\n").rstrip()
        if song.strip():
            songs.append(song)
    return songs


def _songs(path: Path, encoding: str = "utf-8", marks: bool = False, reports=None):
    """The songs of a file, in lists, a piece of the file at a time: the one parser. A
    Project Gutenberg licence header and footer and style marks (`{style: NAME}` lines, see
    songgen/styles.py) are not lyrics and are taken out; with `marks`, each list comes with
    the style the marks give each song (None: none). `reports`: a list that gets what the file
    holds besides lyrics (songgen.notlyrics), once it is read."""
    from .styles import take_marks

    current = None
    scanner = Scanner(path, find=reports is not None)
    for songs in _song_pieces(path, encoding, scanner.feed):
        songs, labels, current = take_marks(songs, current, path)
        yield (songs, labels) if marks else songs
    if reports is not None:
        reports.append(scanner.finish())


def _song_pieces(path: Path, encoding: str = "utf-8", keep=lambda text: text):
    """The songs of a file, a piece at a time; `keep` is given each piece of its text (whole
    lines, in order) and returns what of it is lyrics."""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise CorpusError(f"cannot read {path}: {exc.strerror or exc}") from None
    if encoding == AUTO:
        encoding = _file_encoding(path)
    with handle:
        head = _read(handle, path, 8)
        if head.startswith(UTF16_BOMS) or not streamable(encoding):
            # Rare: decoded whole, as UTF-16 and multi-byte encodings have no byte-level lines.
            yield split_songs(keep(decode_text(head + _read(handle, path, -1), path,
                                               encoding=encoding)))
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
            text = keep(decode_text(raw[:end], path, offset, lines, encoding))
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
            yield _clean_songs(pieces)


def _file_encoding(path: Path) -> str:
    """The encoding `auto` reads a file in: UTF-8 where all of it is valid UTF-8, else
    FALLBACK (read a piece at a time; a UTF-16 file with its byte-order mark is read as that
    whatever is named)."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with open(path, "rb") as handle:
            while True:
                block = _read(handle, path)
                decoder.decode(block, final=not block)
                if not block:
                    return "utf-8"
    except UnicodeDecodeError:
        return FALLBACK
    except OSError as exc:
        raise CorpusError(f"cannot read {path}: {exc.strerror or exc}") from None


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


def read_songs(path: str | Path, encoding: str = "utf-8") -> list[str]:
    """All songs of a file or a folder, in order, as text (for scoring and the copy index)."""
    files = text_files(path)
    check_memory(files, READ_BYTES_PER_BYTE)
    songs = [song for file in files for piece in _songs(file, encoding) for song in piece]
    if not songs:
        raise _no_lyrics(path)
    return songs


def _no_lyrics(path) -> CorpusError:
    return CorpusError(f"{path} holds no lyrics (it is empty or only whitespace); give a file "
                       "with at least one song")


def join_songs(songs: list[str]) -> str:
    """One stream: every song followed by the end-of-song symbol."""
    return "".join(song + EOS for song in songs)


def _hash_into(digest, text: str) -> None:
    # In slices, so that no UTF-8 copy of a whole corpus is made.
    for start in range(0, len(text), READ_BYTES):
        digest.update(text[start:start + READ_BYTES].encode("utf-8", "surrogatepass"))


def fingerprint(joined: str) -> str:
    """A short stable id of a corpus (its songs joined by `join_songs`), to check that a resume
    or a copy check uses the text a model was trained on."""
    digest = hashlib.sha256()
    _hash_into(digest, joined)
    return digest.hexdigest()[:16]


def demo_corpus() -> Path:
    """The bundled demo songs: inside the installed package, or data/ of a source checkout."""
    here = Path(__file__).resolve().parent
    for folder in (here / "demo", here.parent / "data"):
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
    styles: "Styles | None" = None  # its styles (songgen.styles), None for an unstyled corpus

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
    of `encode_corpus` (`songgen.corpuscache.CorpusCache`); None: the text is read.
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
    # Each song's style as runs of [name or None, songs] (songgen.styles), in song order,
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
        self.style_runs: list = []    # [style or None, songs] (songgen.styles)
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
