"""Reading lyrics: files and folders, normalisation, songs, vocabulary, encoding, train/val split."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

import numpy as np
import torch

from .errors import CorpusError

# End-of-song marker inside joined text. NUL never survives reading (binary files are refused),
# so it cannot collide with a character of the lyrics. It is vocabulary index 0.
EOS = "\x00"

# Two or more blank lines (lines holding only spaces/tabs count as blank) separate songs.
SONG_BREAK = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_VERSION_SUFFIX = re.compile(r"\s*\([^()]*\)\s*$")
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_CODE_POINTS = 0x110000
_CHUNK = 1 << 22  # characters per chunk when encoding or hashing
# Peak memory while reading whole songs (`read_songs`), per byte of the files: 3.8 measured
# for text that needs two bytes a character in Python; four-byte text (emoji) doubles it.
READ_BYTES_PER_BYTE = 6.0


def _decode(raw: bytes, path: Path, offset: int = 0, lines: int = 0) -> str:
    """Strict UTF-8 (UTF-16 when it carries a BOM); errors name the line and byte offset.

    NUL is the end-of-song symbol, so text holding it is refused whatever its encoding; it is
    checked before UTF-8 decoding so that a binary file (an image, a PDF) is called one.
    `raw` may be a piece of the file that starts a line: `offset` bytes and `lines` lines
    come before it.
    """
    if raw.startswith(UTF16_BOMS):
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise CorpusError(f"{path}: invalid UTF-16 at byte offset {exc.start}; "
                              "convert the file to UTF-8 and try again") from None
    elif b"\x00" in raw:
        raise CorpusError(f"{path}: contains NUL bytes, so it looks like a binary file (or "
                          "UTF-16 without a byte-order mark), not lyrics; give a plain UTF-8 "
                          "text file")
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = lines + raw.count(b"\n", 0, exc.start) + 1
            column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1)
            raise CorpusError(
                f"{path}: not valid UTF-8 at line {line}, byte offset {offset + exc.start} "
                f"(byte {column} of the line); save the file as UTF-8 and try again") from None
    if "\x00" in text:
        raise CorpusError(f"{path}: contains NUL characters, which lyrics cannot hold; "
                          "remove them or give a plain text file")
    return text


def normalise(text: str) -> str:
    """Drop BOMs, turn CRLF and CR into LF, and NFC-normalise (so é and e+◌́ are one character).

    Every U+FEFF goes, not only a leading one: files joined with `cat` carry their BOMs inside.
    """
    # Each replace scans the whole text even when it finds nothing; most files need none.
    if "\ufeff" in text:
        text = text.replace("\ufeff", "")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text)


def read_text(path: str | Path) -> str:
    """The normalised text of one file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise CorpusError(f"{path} is a folder; read it with read_songs") from None
    except OSError as exc:
        raise CorpusError(f"cannot read {path}: {exc.strerror or exc}") from None
    return decode_text(raw, path)


def decode_text(raw: bytes, name: str | Path, offset: int = 0, lines: int = 0) -> str:
    """Bytes from anywhere (a file, standard input) decoded and normalised like a corpus file;
    `name` is what errors call the source (see `_decode` for the rest)."""
    return normalise(_decode(raw, name, offset, lines))


def text_files(path: str | Path) -> list[Path]:
    """The corpus files: the file itself, or every *.txt under a folder in sorted order."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{path} does not exist; give a lyrics file or a folder of .txt files")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise CorpusError(f"{path} holds no .txt files; put one or more UTF-8 lyrics files in it")
        return files
    return [path]


def split_songs(text: str) -> list[str]:
    """Songs are separated by two or more blank lines; surrounding blank lines are dropped."""
    return clean_songs(SONG_BREAK.split(text))


def clean_songs(pieces: list[str]) -> list[str]:
    """The text between song breaks as songs: trailing spaces on the last line and blank edges
    carry no lyric, and a piece that is only blank is no song."""
    songs = []
    for piece in pieces:
        song = piece.strip("\n").rstrip()
        if song.strip():
            songs.append(song)
    return songs


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_memory(files: list[Path], per_byte: float = READ_BYTES_PER_BYTE,
                 overhead: int = 0) -> int:
    """Refuse, before reading anything, a corpus that could not be loaded in the memory left;
    returns the files' total size in bytes."""
    size = sum(f.stat().st_size for f in files)
    available = available_memory()
    needed = size * per_byte + overhead
    if available is not None and needed > available:
        raise CorpusError(
            f"the corpus is {size / 1e9:.2f} GB; loading it needs about "
            f"{needed / 1e9:.1f} GB of memory but {available / 1e9:.1f} GB is free; "
            "train on a part of it or free memory")
    return size


def read_songs(path: str | Path) -> list[str]:
    """All songs of a file or a folder, in order."""
    songs = []
    files = text_files(path)
    check_memory(files)
    for file in files:
        songs.extend(split_songs(read_text(file)))
    if not songs:
        raise CorpusError(f"{path} holds no lyrics (it is empty or only whitespace); "
                          "give a file with at least one song")
    return songs


def id_dtype(symbols: int) -> torch.dtype:
    """The smallest integer dtype that holds ids of `symbols` symbols (1 byte up to 256)."""
    if symbols <= 256:
        return torch.uint8
    return torch.int16 if symbols <= 32768 else torch.int32


class Vocab:
    """Characters <-> integer ids. Id 0 is the end-of-song symbol; the rest are sorted characters."""

    def __init__(self, chars: list[str]):
        if not chars or chars[0] != EOS or len(set(chars)) != len(chars):
            raise ValueError("a vocabulary starts with the end-of-song symbol and has no repeats")
        self.chars = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}
        # Code point -> id for every possible code point, so that encoding is one table lookup
        # per character, straight into the output dtype; `_missing` marks code points outside
        # the vocabulary (an id no symbol has when it fits, else -1 in a wider table).
        narrow = len(self.chars) < 256
        self._missing = 255 if narrow else -1
        self._table = np.full(_CODE_POINTS, self._missing, dtype=np.uint8 if narrow else np.int32)
        self._table[[ord(c) for c in self.chars]] = np.arange(len(self.chars))

    @classmethod
    def from_text(cls, *texts: str) -> "Vocab":
        return cls([EOS] + sorted(_chars_in(*texts) - {EOS}))

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
        """Vectorised encoding, a chunk at a time. Raises on unknown characters."""
        out = torch.empty(len(text), dtype=self.dtype)
        view = out.numpy()
        for start, codes in _code_chunks(text):
            ids = self._table[codes]
            if (ids.max(initial=0) if self._missing == 255 else ids.min(initial=0)) == self._missing:
                missing = self.unknown(text[start:start + len(codes)])
                raise CorpusError(f"characters not in the vocabulary: {describe_chars(missing)}")
            view[start:start + len(codes)] = ids
        return out

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def describe_chars(chars: list[str], limit: int = 20) -> str:
    """A readable list of characters: visible ones quoted; control, format (zero-width) and
    combining characters, which would vanish or merge with the quote, as U+XXXX."""
    shown = [repr(c) if c.isprintable() and unicodedata.category(c)[0] not in "MC"
             else f"U+{ord(c):04X}" for c in chars[:limit]]
    more = f" and {len(chars) - limit} more" if len(chars) > limit else ""
    return ", ".join(shown) + more


def join_songs(songs: list[str]) -> str:
    """One stream: every song followed by the end-of-song symbol."""
    return "".join(song + EOS for song in songs)


def fingerprint(*texts: str) -> str:
    """A short stable id of the normalised corpus (the texts one after the other), to check that
    a resume uses the same text. Hashed in chunks, so no UTF-8 copy of the whole is made."""
    digest = hashlib.sha256()
    for text in texts:
        for start in range(0, len(text), _CHUNK):
            digest.update(text[start:start + _CHUNK].encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


def _code_chunks(text: str):
    """(start, code points as uint32) for consecutive chunks of `text`: bounded temporaries."""
    for start in range(0, len(text), _CHUNK):
        piece = text[start:start + _CHUNK].encode("utf-32-le", "surrogatepass")
        yield start, np.frombuffer(piece, dtype=np.uint32)


def _chars_in(*texts: str) -> set[str]:
    """The set of characters of the texts, counted with numpy instead of a Python set."""
    present = np.zeros(_CODE_POINTS, dtype=bool)
    for text in texts:
        for _, codes in _code_chunks(text):
            present[codes] = True
    return {chr(c) for c in np.flatnonzero(present)}


def title_key(song: str) -> str:
    """The title without a trailing '(version)' so that variants of one song group together."""
    first = song.split("\n", 1)[0]
    return _VERSION_SUFFIX.sub("", first)


def demo_corpus() -> Path:
    """The bundled demo songs: inside the installed package, or data/ of a source checkout."""
    here = Path(__file__).resolve().parent
    for folder in (here / "demo", here.parent / "data"):
        if any(folder.glob("*.txt")):
            return folder
    raise CorpusError("the bundled demo corpus is missing from this installation; "
                      "give a lyrics file or folder to train on")
