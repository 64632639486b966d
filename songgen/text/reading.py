"""Reading text files: which files a corpus path means (a file, or the .txt files of a folder,
and what else was skipped), decoding their bytes (UTF-8, a named encoding, or auto: each
file's own, UTF-8 else cp1252), refusing what is not text or reads wrong in its encoding,
normalising (BOMs, line ends, NFC), and the memory check made before a corpus is read.

This module knows nothing of songs: songgen/text/lyrics.py splits the text it gives into songs.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from ..errors import CorpusError
from ..files import regular_file

UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

# First bytes of files people rename to .txt, and what to tell them.
_NOT_TEXT = ((b"PK\x03\x04", "a word-processor document or other zip archive (.docx, .odt)"),
             (b"%PDF-", "a PDF"), (b"{\\rtf", "a rich-text (RTF) document"),
             (b"\xd0\xcf\x11\xe0", "an old Word (.doc) document"))


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
    """A lyrics file the user names: refused at once where it is not a regular file."""
    return regular_file(path, CorpusError, missing=f"{path} does not exist; give a lyrics file "
                        "or a folder of .txt files", folder=f"{path} is a folder; give a file",
                        advice="give a lyrics file or a folder of .txt files")


def text_files(path: str | Path) -> list[Path]:
    """The corpus files: the file itself, or every .txt file (any case: .TXT, .Txt) under a
    folder, subfolders included, in sorted order."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".txt" and p.is_file())
        if not files:
            others = _other_files(path)
            held = f" (only {others})" if others else ""
            raise CorpusError(f"{path} holds no .txt files{held}; put one or more UTF-8 lyrics "
                              "files in it")
        return files
    return [_regular_file(path)]


def folder_contents(path: str | Path) -> str | None:
    """What a folder corpus was made of: the .txt files read, and the other files skipped,
    counted by kind (None for a file). Hidden files (.DS_Store) are not counted."""
    path = Path(path)
    if not path.is_dir():
        return None
    read = sum(1 for p in path.rglob("*") if p.suffix.lower() == ".txt" and p.is_file()
               and not p.name.startswith("."))
    line = f"read {read:,} .txt file{'' if read == 1 else 's'} of {path}"
    others = _other_files(path)
    if others:
        line += f"; skipped {others} (only .txt files are read)"
    return line


def _other_files(path: Path) -> str:
    """The files of a folder that are not .txt files, counted by kind ("2 .png, 1 .md"; ""
    for none). Hidden files (.DS_Store) are not counted."""
    skipped: dict[str, int] = {}
    for p in path.rglob("*"):
        if not p.is_file() or p.name.startswith(".") or p.suffix.lower() == ".txt":
            continue
        kind = p.suffix.lower() or "without an extension"
        skipped[kind] = skipped.get(kind, 0) + 1
    return ", ".join(f"{n:,} {kind}" for kind, n in sorted(skipped.items()))


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


def describe_chars(chars: list[str], limit: int = 20) -> str:
    """A readable list of characters: visible ones quoted; control, format (zero-width) and
    combining characters, which would vanish or merge with the quote, as U+XXXX."""
    shown = [repr(c) if c.isprintable() and unicodedata.category(c)[0] not in "MC"
             else f"U+{ord(c):04X}" for c in chars[:limit]]
    more = f" and {len(chars) - limit} more" if len(chars) > limit else ""
    return ", ".join(shown) + more


def looks_like_text(path: Path) -> bool:
    """Whether a file given where a checkpoint was asked for is plainly a text (lyrics): not
    named .pt, and its start is UTF-8 text."""
    if path.suffix == ".pt":
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(4096).decode("utf-8", "ignore")
    except OSError:
        return False
    return bool(head) and all(c.isprintable() or c in "\n\r\t" for c in head)

