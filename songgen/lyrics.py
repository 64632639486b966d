"""The lyrics format: reading, normalising, songs and stanzas, titles, the end-of-song symbol,
the vocabulary, the corpus fingerprint and the validation cut.

Files are streamed a piece at a time: each piece, cut after a song break, is decoded,
normalised, split into songs, hashed and encoded, then dropped, so nothing the size of the
corpus is held but the encoded result (1 byte a character for up to 256 symbols). `_songs` is
the only parser; every reader (training corpus, evaluation text, copy index) goes through it.

The format: UTF-8 text; songs separated by two or more blank lines, stanzas by one; a song may
start with a `# Title` line, and a `# Title` line after a blank line starts a new song. After every song the model sees EOS, a reserved symbol that is
never a character of the text.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import warnings
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import CorpusError, SonggenWarning
from .shape import ShapeMeter, SongShape

# End-of-song marker inside joined text. NUL never survives reading (binary files are refused),
# so it cannot collide with a character of the lyrics. It is vocabulary index 0.
EOS = "\x00"
TITLE_MARK = "# "

# Two or more blank lines (lines holding only spaces/tabs count as blank) separate songs, and
# so does one before a `# Title` line: a title is the format's own mark of a new song.
SONG_BREAK = re.compile(r"\n[ \t]*\n(?:(?:[ \t]*\n)+|(?=# ))")
_VERSION_SUFFIX = re.compile(r"\s*\([^()]*\)\s*$")
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_CODE_POINTS = 0x110000
READ_BYTES = 1 << 22  # bytes of a file read at a time; also characters hashed/encoded at a time
# Peak memory per byte of the files: while loading a training corpus (the encoded corpus plus
# the pieces in flight), and while reading whole songs as text (`read_songs`: Python strings of
# two bytes a character; four-byte text such as emoji doubles it).
LOAD_BYTES_PER_BYTE = 1.3
LOAD_OVERHEAD = 600 << 20
READ_BYTES_PER_BYTE = 6.0
ONE_SONG_WARNING = 20_000  # characters: longer than any real song

# First bytes of files people rename to .txt, and what to tell them.
_NOT_TEXT = ((b"PK\x03\x04", "a word-processor document or other zip archive (.docx, .odt)"),
             (b"%PDF-", "a PDF"), (b"{\\rtf", "a rich-text (RTF) document"),
             (b"\xd0\xcf\x11\xe0", "an old Word (.doc) document"))


class UnknownCharacters(CorpusError):
    """Text holds characters a model's vocabulary lacks; `chars` lists them, sorted."""

    def __init__(self, chars: list[str], where: str = "the text", advice: str = ""):
        self.chars = chars
        what = f"{where} has characters the model never saw: {describe_chars(chars)}"
        super().__init__(f"{what}; {advice}" if advice else what, what=what)


class BadEncoding(CorpusError):
    """Bytes of a text file that its encoding (UTF-8 unless given) cannot decode; `what` names
    the file, line and byte offset, `encoding` the encoding tried."""

    def __init__(self, what: str, encoding: str):
        self.encoding = encoding
        advice = ("save the file as UTF-8, or give its encoding (e.g. cp1252 for Windows text)"
                  if encoding == "utf-8" else "give the file's real encoding, or save it as UTF-8")
        super().__init__(f"{what}; {advice}", what=what)


class WrongEncoding(CorpusError):
    """Text that decodes in the encoding given but reads wrong in it: control characters no
    lyrics hold (Windows-1252 read as Latin-1), or UTF-8 read a byte at a time (mojibake such
    as "â€™"). `fits`: the encoding it reads right in."""

    def __init__(self, what: str, fits: str):
        self.fits = fits
        super().__init__(f"{what}; give that encoding, or auto to choose each file's (UTF-8, "
                         "else cp1252)", what=what)


AUTO = "auto"             # the encoding that picks each file's own: UTF-8, else FALLBACK
FALLBACK = "cp1252"       # Windows-1252: what text not in UTF-8 most often is
_C1 = re.compile("[\x80-\x9f]")  # C1 control characters: never in lyrics


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


# -- reading text --------------------------------------------------------------------------

def streamable(encoding: str) -> bool:
    """Whether text in `encoding` may be decoded a piece at a time, cut after line ends: UTF-8
    and single-byte encodings, where a line-end byte is always a line end and never part of
    another character. Others (UTF-16, Shift-JIS, ...) are decoded whole."""
    import codecs

    if encoding == AUTO:  # UTF-8 or FALLBACK, both streamable
        return True
    name = codecs.lookup(encoding).name
    if name == "utf-8":
        return True
    try:
        return len(bytes(range(256)).decode(name, "replace")) == 256 and \
            "\n\r".encode(name) == b"\n\r"
    except (UnicodeError, LookupError):
        return False


def _decode(raw: bytes, path, offset: int = 0, lines: int = 0, encoding: str = "utf-8") -> str:
    """Strict UTF-8 or `encoding` (UTF-16 when it carries a BOM); errors name the line and
    byte offset.

    NUL is the end-of-song symbol, so text holding it is refused whatever its encoding; it is
    checked before UTF-8 decoding so that a binary file (an image, a PDF) is called one.
    `raw` may be a piece of the file that starts a line: `offset` bytes and `lines` lines
    come before it.
    """
    if offset == 0:
        for magic, what in _NOT_TEXT:
            if raw.startswith(magic):
                raise CorpusError(f"{path} looks like {what}, not plain text; export or save "
                                  "it as plain text (UTF-8) and give that file")
    if raw.startswith(UTF16_BOMS):
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise CorpusError(f"{path}: invalid UTF-16 at byte offset {exc.start}; "
                              "convert the file to UTF-8 and try again") from None
    elif b"\x00" in raw and streamable(encoding):
        raise CorpusError(f"{path}: contains NUL bytes, so it looks like a binary file (or "
                          "UTF-16 without a byte-order mark), not lyrics; give a plain UTF-8 "
                          "text file")
    else:
        if encoding == AUTO:
            encoding = "utf-8" if _is_utf8(raw) else FALLBACK
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            line = lines + raw.count(b"\n", 0, exc.start) + 1
            column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1)
            name = "UTF-8" if encoding == "utf-8" else encoding
            raise BadEncoding(f"{path}: not valid {name} at line {line}, byte offset "
                              f"{offset + exc.start} (byte {column} of the line)",
                              encoding) from None
    if "\x00" in text:
        raise CorpusError(f"{path}: contains NUL characters, which lyrics cannot hold; "
                          "remove them or give a plain text file")
    if not raw.startswith(UTF16_BOMS):
        _check_encoding_fits(raw, text, path, lines, encoding)
    return text


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _check_encoding_fits(raw: bytes, text: str, path, lines: int, encoding: str) -> None:
    """Refuse text that a single-byte encoding decoded but that reads wrong in it."""
    import codecs

    name = codecs.lookup(encoding).name
    if name == "utf-8" or raw.isascii() or not streamable(name):  # single-byte encodings only
        return
    where = f"{path} read as {encoding}"
    if _is_utf8(raw):
        # Non-ASCII bytes that happen to form valid UTF-8 throughout are UTF-8 text: a
        # single-byte reading of it shows mojibake such as "Ã©" for "é".
        sample = next((w for w in text.split() if not w.isascii()), "")
        right = sample.encode(name, "replace").decode("utf-8", "replace")
        raise WrongEncoding(f"{where} shows {sample[:30]!r} where it reads {right[:30]!r} as "
                            "UTF-8", "utf-8")
    found = _C1.search(text)
    if found is not None:
        line = lines + text.count("\n", 0, found.start()) + 1
        chars = describe_chars(sorted(set(_C1.findall(text))), limit=5)
        try:
            raw.decode(FALLBACK)
        except UnicodeDecodeError:
            fits = None
        else:
            fits = FALLBACK
        what = (f"{where} holds control characters that no lyrics hold ({chars}; first at "
                f"line {line})")
        if fits is None or name == FALLBACK:
            raise CorpusError(f"{what}; give the file's real encoding, or save it as UTF-8",
                              what=what)
        raise WrongEncoding(f"{what}: it reads as {fits} (Windows)", fits)


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


def decode_text(raw: bytes, name, offset: int = 0, lines: int = 0,
                encoding: str = "utf-8") -> str:
    """Bytes from anywhere (a file, standard input) decoded and normalised like a corpus file;
    `name` is what errors call the source (see `_decode` for the rest)."""
    return normalise(_decode(raw, name, offset, lines, encoding))


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """The normalised text of one file (a prime file, say): not split into songs."""
    path = _regular_file(Path(path))
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"cannot read {path}: {exc.strerror or exc}") from None
    return decode_text(raw, path, encoding=encoding)


def _regular_file(path: Path) -> Path:
    """Refuse at once what is not a regular file: reading a named pipe or a device such as
    /dev/zero would wait forever or never end."""
    if not path.exists():
        raise CorpusError(f"{path} does not exist; give a lyrics file or a folder of .txt files")
    if path.is_dir():
        raise CorpusError(f"{path} is a folder; give a file")
    if not path.is_file():
        raise CorpusError(f"{path} is not a regular file (a named pipe, a device or a socket); "
                          "give a lyrics file or a folder of .txt files")
    return path


def text_files(path: str | Path) -> list[Path]:
    """The corpus files: the file itself, or every .txt file (any case: .TXT, .Txt) under a
    folder, subfolders included, in sorted order."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".txt" and p.is_file())
        if not files:
            raise CorpusError(f"{path} holds no .txt files; put one or more UTF-8 lyrics files "
                              "in it")
        return files
    return [_regular_file(path)]


def folder_contents(path: str | Path) -> str | None:
    """What a folder corpus was made of: the .txt files read, and the other files skipped,
    counted by kind (None for a file). Hidden files (.DS_Store) are not counted."""
    path = Path(path)
    if not path.is_dir():
        return None
    read, skipped = 0, {}
    for p in path.rglob("*"):
        if not p.is_file() or p.name.startswith("."):
            continue
        kind = p.suffix.lower()
        if kind == ".txt":
            read += 1
        else:
            kind = kind or "without an extension"
            skipped[kind] = skipped.get(kind, 0) + 1
    line = f"read {read:,} .txt file{'' if read == 1 else 's'} of {path}"
    if skipped:
        kinds = ", ".join(f"{n:,} {kind}" for kind, n in sorted(skipped.items()))
        line += f"; skipped {kinds} (only .txt files are read)"
    return line


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


def _songs(path: Path, encoding: str = "utf-8", marks: bool = False):
    """The songs of a file, in lists, a piece of the file at a time: the one parser. Style
    marks (`{style: NAME}` lines, see songgen/styles.py) are not lyrics and are taken out;
    with `marks`, each list comes with the style the marks give each song (None: none)."""
    from .styles import take_marks

    current = None
    for songs in _song_pieces(path, encoding):
        songs, labels, current = take_marks(songs, current, path)
        yield (songs, labels) if marks else songs


def _song_pieces(path: Path, encoding: str = "utf-8"):
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
            yield split_songs(decode_text(head + _read(handle, path, -1), path,
                                          encoding=encoding))
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
            text = decode_text(raw[:end], path, offset, lines, encoding)
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


def check_memory(files: list[Path], per_byte: float, overhead: int = 0) -> int:
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


def describe_chars(chars: list[str], limit: int = 20) -> str:
    """A readable list of characters: visible ones quoted; control, format (zero-width) and
    combining characters, which would vanish or merge with the quote, as U+XXXX."""
    shown = [repr(c) if c.isprintable() and unicodedata.category(c)[0] not in "MC"
             else f"U+{ord(c):04X}" for c in chars[:limit]]
    more = f" and {len(chars) - limit} more" if len(chars) > limit else ""
    return ", ".join(shown) + more


def demo_corpus() -> Path:
    """The bundled demo songs: inside the installed package, or data/ of a source checkout."""
    here = Path(__file__).resolve().parent
    for folder in (here / "demo", here.parent / "data"):
        if any(folder.glob("*.txt")):
            return folder
    raise CorpusError("the bundled demo corpus is missing from this installation; "
                      "give a lyrics file or folder to train on")


# -- the vocabulary ------------------------------------------------------------------------

def id_dtype(symbols: int) -> torch.dtype:
    """The smallest integer dtype that holds ids of `symbols` symbols (1 byte up to 256)."""
    if symbols <= 256:
        return torch.uint8
    return torch.int16 if symbols <= 32768 else torch.int32


def _code_table(chars: list[str]) -> np.ndarray:
    """Code point -> id for every possible code point (-1: not in `chars`), so that encoding
    is one table lookup per character."""
    table = np.full(_CODE_POINTS, -1, dtype=np.int32)
    table[[ord(c) for c in chars]] = np.arange(len(chars))
    return table


def _codes(text: str) -> np.ndarray:
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
            for start in range(0, len(text), READ_BYTES):
                present[_codes(text[start:start + READ_BYTES])] = True
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
            self._table = _code_table(self.chars)
        out = torch.empty(len(text), dtype=self.dtype)
        view = out.numpy()
        for start in range(0, len(text), READ_BYTES):
            ids = self._table[_codes(text[start:start + READ_BYTES])]
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
        line = (f"corpus: {self.chars:,} characters, {songs}, vocabulary "
                f"{len(self.vocab)} symbols; train {len(self.train):,} / validation "
                f"{len(self.val):,} characters")
        files = folder_contents(self.source) if self.source else None
        line = line if files is None else f"{line}\n{files}"
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
    for file in files:
        folder = folder_style(root, file)
        for songs, labels in _songs(file, encoding, marks=True):
            encoder.add(songs, [label or folder for label in labels])
    if not encoder.sizes:
        raise _no_lyrics(path)
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
    lookup = np.array([target.index.get(c, 0) for c in have], dtype=_numpy_dtype(len(target)))
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
        self.table = _code_table(self.chars)
        self.buffer = np.empty(max(capacity, 1), dtype=_numpy_dtype(len(self.chars)))
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
            meter.add_codes(_codes(join_songs(own)))
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
            codes = _codes(text[start:start + READ_BYTES])
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
        dtype = _numpy_dtype(len(self.chars))
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


def _numpy_dtype(symbols: int) -> np.dtype:
    return torch.empty(0, dtype=id_dtype(symbols)).numpy().dtype


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
