"""The corpus cache: a text read and encoded once, kept in a file that every process maps
read-only, so that the operating system holds one copy of the encoded corpus for all the
processes of a machine, and a resume (or `songgen eval`) starts without reading the text again.

One file per text (its resolved path and encoding), in a folder of its own:

    byte 0    MAGIC (16 bytes, the format version last), header length (8), its CRC-32 (4)
    byte 32   the header, JSON: the text's files, each with its size, modification time, change
              time and inode; the vocabulary, the counts, the fingerprint, the song shape; a
              CRC-32 of every 64 MiB of the data
    next page the data: song sizes (int64 each), new-title flags (int8 each), zeros up to a
              multiple of 64, then the ids (1, 2 or 4 bytes each: `corpus.Encoded.ids`)

A file is used only if its header checks out, the text's files are the ones it records with the
same size, times and inode, the file is exactly as long as its header says, and every byte of
its data matches the checksums; anything else (a changed text, a truncated or damaged file,
another format version) is rebuilt from the text, never trusted. A file's change time (ctime)
cannot be set back by a program, so a file rewritten to its old size with its old modification
time is caught too. When the check fails, the text is read whole and its fingerprint is, as
always, the final word on whether it is a run's text.

Builders lock a file beside the cache file (through `filelock`, on every OS), so that of the
processes loading a text at once (torchrun's, or two commands) one encodes and writes while the
others wait, then map its file. Files are written to a temporary name and renamed (every rename
puts a whole file in place). The write is not synced to disk: a file torn by a crash fails its
checksums and is rebuilt. A cache is a convenience: one that would take more than half of the
free space of its disk is not written, so that it never crowds out a run's checkpoints.

Where: a training run keeps its text's cache in its own folder (`RunFolder.cache`); anything
else (`songgen eval` of another text) in the user's cache folder (`user_folder`), so that a
run's folder holds that run and nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import struct
import sys
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from .. import files
from ..errors import SonggenWarning
from ..songcraft.shape import SongShape
from .corpus import Encoded, encode_corpus
from .reading import text_files
from .vocab import Vocab

MAGIC = b"songgen-corpus\x00\x02"  # the last byte is the format version
_PREFIX = struct.Struct("<16sQI4x")
_ALIGN = 4096   # the data starts on a page
_IDS_ALIGN = 64
_CHUNK = 64 << 20  # bytes of data per checksum
_MAX_HEADER = 1 << 30


ENV = "SONGGEN_CACHE_DIR"  # the user's cache folder, if set


def folder_for(setting: str | Path | None, default: str | Path) -> Path | None:
    """The cache folder a setting names: "auto" (or None) for `default`, "none" for no cache,
    else the folder itself."""
    if setting is None or str(setting) == "auto":
        return Path(default)
    if str(setting).lower() == "none":
        return None
    return Path(setting)


def user_folder() -> Path:
    """The user's own cache folder for corpus caches: $SONGGEN_CACHE_DIR if set, else
    songgen/corpus in the platform's cache folder ($XDG_CACHE_HOME or ~/.cache; %LOCALAPPDATA%
    on Windows)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "songgen" / "corpus"


class CorpusCache:
    """The corpus cache in one folder, as the reader `corpus.load_corpus` is handed."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def load(self, path: str | Path, encoding: str = "utf-8", vocab: Vocab | None = None,
             extend: bool = False, copies: int = 1) -> Encoded:
        return load_encoded(path, self.folder, encoding, vocab=vocab, extend=extend,
                            copies=copies)


def mapped(path: str | Path, folder: str | Path, encoding: str = "utf-8") -> Encoded | None:
    """The encoded text of a file or folder from its cache file in `folder` if one is there
    and holds the text as it is now, else None; nothing is written."""
    found, _ = _open(cache_file(folder, path, encoding), file_stats(text_files(path)),
                     encoding, 1)
    return found


def cache_file(folder: str | Path, source: str | Path, encoding: str = "utf-8") -> Path:
    """The cache file of a text in `folder`: named after the text, and a hash of its resolved
    path and encoding."""
    resolved = Path(source).resolve()
    key = hashlib.sha256(f"{resolved}\0{encoding}".encode("utf-8", "surrogatepass")).hexdigest()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", resolved.name)[:40].strip("._") or "corpus"
    return Path(folder) / f"{stem}-{key[:16]}.corpus"


def file_stats(files: list[Path]) -> list[list]:
    """What the cache checks a text's files by: path, size, modification and change times
    (nanoseconds) and inode."""
    stats = []
    for file in files:
        st = file.stat()
        stats.append([str(file.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                      st.st_ino])
    return stats


def load_encoded(path: str | Path, folder: str | Path, encoding: str = "utf-8",
                 vocab: Vocab | None = None, extend: bool = False, copies: int = 1) -> Encoded:
    """The encoded text of a file or folder: mapped from its cache file in `folder` while the
    text's files are unchanged, else read and encoded (`corpus.encode_corpus`, with `vocab`
    grown if `extend`) and written there. The ids may be in another vocabulary than `vocab`
    (the one the file was built with): `corpus.in_vocab` translates. `copies`: processes of
    this machine loading it at once. A cache that cannot be written is warned about, and the
    text is used as read."""
    texts = text_files(path)
    target = cache_file(folder, path, encoding)
    stats = file_stats(texts)
    found, damage = _open(target, stats, encoding, copies)
    if found is not None:
        return found
    if damage:
        warnings.warn(f"the corpus cache {target} is damaged ({damage}); rebuilding it from "
                      "the text", SonggenWarning)
    with _building(target) as locked:
        found, _ = _open(target, stats, encoding, copies)  # built while this one waited
        if found is not None:
            return found
        encoded = encode_corpus(path, encoding, vocab, extend, files=texts,
                                copies=1 if locked else copies)
        if file_stats(texts) != stats:
            return encoded  # the text changed while it was read: nothing to cache it by
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if not _room_for(target, encoded):
                return encoded
            _write(target, encoded, stats, encoding, _threads(copies))
        except OSError as exc:
            why = ("its disk is full" if files.is_disk_full(exc) else files.reason(exc))
            warnings.warn(f"cannot write the corpus cache {target} ({why}); the text is used "
                          "as read, without it", SonggenWarning)
            return encoded
        mapped, _ = _open(target, stats, encoding, copies, verify=False)
    if mapped is None:  # replaced at once by another builder with another text: keep ours
        return encoded
    mapped.origin = "built"
    return mapped  # the memory the encoding used is given back; the mapped pages are shared


@contextlib.contextmanager
def _building(target: Path):
    """Hold the lock of a cache file while building it; yields whether it is held (where the
    lock cannot be made, in an unwritable folder, each process builds, the last rename wins)."""
    with contextlib.ExitStack() as held:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # Released on leaving, or by the OS when the process dies.
            held.enter_context(files.exclusive(target.with_name(target.name + ".lock")))
            locked = True
        except OSError:  # writing says why it failed
            locked = False
        yield locked


def _room_for(target: Path, encoded: Encoded) -> bool:
    """Whether the cache file of `encoded` takes at most half of the free space on its disk;
    if not, say so: an optional speed-up must not crowd out the checkpoints of a run."""
    need = (encoded.ids.numel() * encoded.ids.element_size() + len(encoded.sizes) * 9
            + 2 * _ALIGN)  # the header's page or two
    free = shutil.disk_usage(target.parent).free
    if need <= free // 2:
        return True
    warnings.warn(f"not writing the corpus cache {target}: it would take {need:,} of the "
                  f"{free:,} bytes free on its disk, more than half; the text is used as read",
                  SonggenWarning)
    return False


def _threads(copies: int) -> int:
    return max(1, min(8, (os.cpu_count() or 1) // max(copies, 1)))


def _checksums(data: np.ndarray, threads: int) -> list[int]:
    """CRC-32 of every _CHUNK bytes of `data` (uint8), several at once (zlib lets go of the
    interpreter lock while it works)."""
    pieces = [data[i:i + _CHUNK] for i in range(0, len(data), _CHUNK)]
    if threads == 1 or len(pieces) < 2:
        return [zlib.crc32(piece) for piece in pieces]
    with ThreadPoolExecutor(min(threads, len(pieces))) as pool:
        return list(pool.map(zlib.crc32, pieces))


def _layout(songs: int, ids: int, itemsize: int, header: int) -> tuple[int, int, int]:
    """Where the data starts, where its ids start (from the data's start), and its length."""
    data = -(-(_PREFIX.size + header) // _ALIGN) * _ALIGN
    at_ids = -(-(songs * 9) // _IDS_ALIGN) * _IDS_ALIGN
    return data, at_ids, at_ids + ids * itemsize


def _write(target: Path, encoded: Encoded, stats: list, encoding: str, threads: int) -> None:
    songs = len(encoded.sizes)
    ids = encoded.ids.numpy()
    _, at_ids, _ = _layout(songs, len(ids), ids.itemsize, 0)
    head = np.zeros(at_ids, dtype=np.uint8)
    head[:songs * 8] = np.ascontiguousarray(encoded.sizes, dtype="<i8").view(np.uint8)
    head[songs * 8:songs * 9] = encoded.new_title.astype(np.int8).view(np.uint8)
    raw_ids = ids.view(np.uint8)
    header = json.dumps({
        "encoding": encoding, "files": stats, "chars": encoded.vocab.chars,
        "base": encoded.base, "dtype": ids.dtype.str, "ids": len(ids), "songs": songs,
        "fingerprint": encoded.fingerprint,
        "shape": None if encoded.shape is None else encoded.shape.to_dict(),
        "styles": encoded.styles,  # each song's style, as runs (songgen.text.styles)
        "style_shapes": encoded.style_shapes,
        "checksums": {"songs": _checksums(head, threads), "ids": _checksums(raw_ids, threads)},
    }, ensure_ascii=True).encode("ascii")
    start, _, _ = _layout(songs, len(ids), ids.itemsize, len(header))

    def write(f):
        f.write(_PREFIX.pack(MAGIC, len(header), zlib.crc32(header)))
        f.write(header)
        f.write(bytes(start - _PREFIX.size - len(header)))
        f.write(memoryview(head))
        for i in range(0, len(raw_ids), _CHUNK):  # no single write of gigabytes
            f.write(memoryview(raw_ids[i:i + _CHUNK]))

    files.write_atomically(target, write, sync=False)


def _open(target: Path, stats: list, encoding: str, copies: int,
          verify: bool = True) -> tuple[Encoded | None, str | None]:
    """The cache file mapped, if it holds this text as it is now; else None and what is wrong
    with the file when it is damaged (None when it is absent or for another text)."""
    try:
        with open(target, "rb") as f:
            prefix = f.read(_PREFIX.size)
            if len(prefix) < _PREFIX.size:
                return None, "it is cut short"
            magic, length, crc = _PREFIX.unpack(prefix)
            if magic != MAGIC:
                if magic[:-1] == MAGIC[:-1]:
                    return None, None  # another version of the format: rebuilt, no alarm
                return None, "it is not a corpus cache file"
            if length > _MAX_HEADER:
                return None, "its header is damaged"
            raw = f.read(length)
            size = os.fstat(f.fileno()).st_size
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    except OSError as exc:
        return None, f"it cannot be read: {exc.strerror or exc}"
    if len(raw) != length:
        return None, "it is cut short"
    if zlib.crc32(raw) != crc:
        return None, "its header does not match its checksum"
    try:
        header = json.loads(raw)
        if header["files"] != stats or header["encoding"] != encoding:
            return None, None  # the text changed: rebuilt, as expected
        if "styles" not in header:
            return None, None  # written before styles: rebuilt, as it lacks them
        songs, count, dtype = int(header["songs"]), int(header["ids"]), np.dtype(header["dtype"])
        vocab = Vocab(header["chars"])
        sums = header["checksums"]
        shape = SongShape.from_dict(header["shape"]) if header["shape"] is not None else None
        start, at_ids, length = _layout(songs, count, dtype.itemsize, len(raw))
        fingerprint, base = str(header["fingerprint"]), int(header["base"])
    except (KeyError, TypeError, ValueError) as exc:
        return None, f"its header is damaged ({exc})"
    if size != start + length:
        return None, (f"it is {size:,} bytes long where its header says {start + length:,}"
                      + (": cut short" if size < start + length else ""))
    data = np.memmap(target, dtype=np.uint8, mode="c", offset=start, shape=(length,))
    if verify:
        threads = _threads(copies)
        if (_checksums(data[:at_ids], threads) != sums["songs"]
                or _checksums(data[at_ids:], threads) != sums["ids"]):
            return None, "its data does not match its checksums"
    encoded = Encoded(ids=torch.from_numpy(data[at_ids:].view(dtype)), vocab=vocab, base=base,
                      sizes=data[:songs * 8].view("<i8"), new_title=data[songs * 8:songs * 9]
                      .view(np.int8), fingerprint=fingerprint, shape=shape, origin="cache",
                      styles=header["styles"], style_shapes=header.get("style_shapes"),
                      cache_file=str(target))
    return encoded, None
