"""The lyrics format: songs and stanzas, titles, the end-of-song symbol, streaming a file's
songs and the corpus fingerprint. A corpus built of it for training is songgen/text/corpus.py;
reading bytes as text (encodings, folders) is songgen/text/reading.py; the vocabulary is
songgen/text/vocab.py.

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
from pathlib import Path

from ..errors import CorpusError
from .notlyrics import Scanner
from .reading import AUTO, FALLBACK, UTF16_BOMS, check_memory, decode_text, streamable, text_files
from .vocab import EOS

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
    songgen/text/styles.py) are not lyrics and are taken out; with `marks`, each list comes with
    the style the marks give each song (None: none). `reports`: a list that gets what the file
    holds besides lyrics (songgen.text.notlyrics), once it is read."""
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


def measure_songcraft(path):
    """Measure the songs of a lyrics file or folder: rhyme, chorus, words (songgen.songcraft)."""
    from ..songcraft.measures import measure

    return measure(read_songs(path))
