"""Reading a checkpoint file without trusting it: what songgen checks before torch.load, and
the load itself.

torch.load(weights_only=True) runs no code, but it believes the archive: a compressed entry
inflates to whatever size it likes (a 1.2 MB file took 2 GB), a storage may claim more
elements than its entry holds, and a refused import is reported in words that vary with the
PyTorch version. So the zip archive is read first, and refused where it is not what songgen
writes (`torch.save`: every entry stored, not compressed; a few hundred entries; each storage's
entry exactly the size its tensor needs); then its pickle is walked by an unpickler that builds
nothing and imports nothing, to name any code it would call and the storages it refers to. Only
then does torch.load read it, and what it returns is checked for nesting a printer or a
checksum could not walk.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import torch

from ..errors import CheckpointError, UnreadableCheckpoint
from ..files import open_regular
from ..text.reading import looks_like_text

MAX_ENTRIES = 4096            # a checkpoint of an 8-layer model with its optimizer has ~150
MAX_PICKLE = 32 * 1024**2     # bytes of the pickle (the vocabulary, the records); ~10 KB is usual
MAX_DEPTH = 32                # containers in containers; a real checkpoint nests ~5
# Imports a checkpoint's pickle may name: PyTorch's own (torch.load then decides) and the few
# plain containers PyTorch writes. Anything else is code.
_DATA_GLOBALS = {"collections.OrderedDict", "_codecs.encode", "builtins.set",
                 "builtins.frozenset", "builtins.bytearray", "builtins.complex"}
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
# What to do about a file that cannot be read as a checkpoint.
GIVE = ("give a .pt file that songgen train wrote (a run's folder holds last.pt, best.pt "
        "and step-N.pt; an older one may still be whole)")


def read_dict(path: Path, mmap: bool = False):
    """The object a checkpoint file holds, loaded by torch.load(weights_only=True) once the
    file passed the checks above; every refusal is a CheckpointError that says why."""
    _check_archive(path)
    try:
        with warnings.catch_warnings():
            # PyTorch warns about unusual pickle protocols before refusing or reading them;
            # the error below (or a clean load) is all a user needs to see.
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        refused = _UNSAFE_GLOBAL.search(str(exc))
        if refused:
            raise _holds_code(path, refused.group(1)) from None
        raise _unreadable(path, "unpickling failed") from None
    except Exception:  # any other loader failure on a damaged file means the same to a user
        raise _unreadable(path, None) from None
    if _too_deep(state):
        what = (f"{path} is damaged or not a checkpoint (its contents nest too deep or hold "
                "themselves)")
        raise UnreadableCheckpoint(f"{what}; {GIVE}", what=what)
    return state


def _unreadable(path: Path, why: str | None) -> UnreadableCheckpoint:
    if looks_like_text(path):
        what = f"{path} is a text file, not a checkpoint"
        return UnreadableCheckpoint(f"{what}; give a .pt file that songgen train wrote (to "
                                    "score a text with a model, use songgen eval)", what=what)
    what = (f"{path} is corrupt or not a checkpoint ({why})" if why else
            f"{path} is corrupt, truncated or not a PyTorch file")
    return UnreadableCheckpoint(f"{what}; {GIVE}", what=what)


def _holds_code(path: Path, name: str) -> CheckpointError:
    return CheckpointError(
        f"{path} holds Python code or objects ({name}) that a safe load refuses (none of it "
        "ran); it is not a songgen checkpoint, or it was tampered with: do not open it some "
        "other way")


def _refuse(path: Path, why: str) -> UnreadableCheckpoint:
    what = f"{path} is not a checkpoint songgen wrote ({why})"
    return UnreadableCheckpoint(f"{what}; it was not opened; {GIVE}", what=what)


# --- The archive ------------------------------------------------------------------------------

def _check_archive(path: Path) -> None:
    """Refuse an archive songgen would never write, before anything in it is inflated or
    unpickled. A file that is no zip archive at all is refused too: PyTorch's older format
    allocates whatever sizes it states."""
    try:
        # The user's file, a link to one included; never waiting on a named pipe.
        handle = open(open_regular(path, os.O_RDONLY, follow=True), "rb")
    except OSError:
        raise _unreadable(path, None) from None
    with handle:
        try:
            storages, sizes, prefix = _read_archive(path, zipfile.ZipFile(handle))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError):
            # A zip archive cut short or damaged, or no archive at all (which PyTorch would
            # have tried to unpickle as its older format).
            handle.seek(0)
            zipped = handle.read(4) == b"PK\x03\x04"
            raise _unreadable(path, None if zipped else "unpickling failed") from None
        except NotImplementedError:  # a compression method zipfile does not know
            raise _refuse(path, "an entry packed in an unknown way") from None
    for key, nbytes in storages.items():
        found = sizes.get(f"{prefix}data/{key}")
        if found is None:
            raise _unreadable(path, f"the storage {key} it names is missing")
        if found != nbytes:
            raise _refuse(path, f"its storage {key} holds {found:,} bytes for a tensor of "
                                f"{nbytes:,}")


def _read_archive(path: Path, archive: zipfile.ZipFile):
    """(bytes each storage needs, each entry's size, the archive's folder), or a refusal."""
    entries = archive.infolist()
    if len(entries) > MAX_ENTRIES:
        raise _refuse(path, f"{len(entries):,} entries, where songgen writes a few hundred at "
                            "most")
    packed = [e.filename for e in entries if e.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise _refuse(path, f"its entry {packed[0]} is compressed, which songgen never does")
    pickles = [e for e in entries if e.filename.endswith("data.pkl")
               and e.filename.count("/") == 1]
    if len(pickles) != 1:
        raise _unreadable(path, "no data.pkl in the archive")
    if pickles[0].file_size > MAX_PICKLE:
        raise _refuse(path, f"its data.pkl holds {pickles[0].file_size:,} bytes, where songgen "
                            f"writes {MAX_PICKLE // 1024**2} MB at most")
    prefix = pickles[0].filename[:-len("data.pkl")]
    sizes = {e.filename: e.file_size for e in entries}
    return _scan_pickle(path, archive.read(pickles[0])), sizes, prefix


class _Opaque:
    """What the scanning unpickler builds for anything it would import or call: nothing."""

    def __init__(self, name: str = ""):
        self.name = name

    def __call__(self, *args, **kwargs):
        return _Opaque(self.name)

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


class _Scanner(pickle.Unpickler):
    """Walks a pickle and notes its imports and storages; imports nothing, so runs no code."""

    def __init__(self, data: bytes):
        import io

        super().__init__(io.BytesIO(data))
        self.code: list[str] = []
        self.storages: dict[str, int] = {}  # key -> bytes its tensor needs

    def find_class(self, module, name):
        full = f"{module}.{name}"
        if not (module == "torch" or module.startswith("torch.") or full in _DATA_GLOBALS):
            self.code.append(full)
        return _Opaque(full)

    def persistent_load(self, pid):
        # torch.save: ("storage", storage type, key, location, number of elements).
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _Opaque) and isinstance(pid[2], str)
                and isinstance(pid[4], int) and pid[4] >= 0):
            raise pickle.UnpicklingError("an unknown persistent record")
        self.storages[pid[2]] = pid[4] * _item_size(pid[1].name)
        return _Opaque("storage")


def _item_size(name: str) -> int:
    """Bytes per element of a storage type named torch.FloatStorage, torch.UntypedStorage..."""
    module, _, attr = name.rpartition(".")
    kind = getattr(torch, attr, None) if module == "torch" and attr.endswith("Storage") else None
    if kind is torch.UntypedStorage:
        return 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage is deprecated, yet still what is saved
        dtype = getattr(kind, "dtype", None)
    if not isinstance(dtype, torch.dtype):
        raise pickle.UnpicklingError(f"an unknown storage type {name}")
    return dtype.itemsize


def _scan_pickle(path: Path, data: bytes) -> dict[str, int]:
    scanner = _Scanner(data)
    try:
        scanner.load()
    except Exception:
        if scanner.code:
            raise _holds_code(path, scanner.code[0]) from None
        raise _unreadable(path, "unpickling failed") from None
    if scanner.code:
        raise _holds_code(path, scanner.code[0])
    return scanner.storages


def _too_deep(state) -> bool:
    """Whether containers nest more than MAX_DEPTH levels or one holds itself (walked without
    recursion; a container met again off the current path, such as the one empty tuple, is
    walked once)."""
    todo, path, done = [(state, 0, False)], set(), set()
    while todo:
        value, depth, leaving = todo.pop()
        if leaving:
            path.discard(id(value))
            done.add(id(value))
            continue
        if isinstance(value, dict):
            items = value.values()
        elif isinstance(value, (list, tuple)):
            items = value
        else:
            continue
        if depth >= MAX_DEPTH or id(value) in path:
            return True
        if id(value) in done:
            continue
        path.add(id(value))
        todo.append((value, depth, True))
        todo.extend((item, depth + 1, False) for item in items)
    return False
