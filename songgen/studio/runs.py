"""The runs folder the studio serves: its checkpoints and training runs, found at most
SCAN_DEPTH folders down, every file opened inside it and a regular file (and, listed after
them, songgen's bundled base model: read-only, with no curves); loaded models (at most
MAX_MODELS) and copy-check indexes (MAX_INDEXES) cached; what the page shows of a checkpoint.
Nothing here writes to the runs folder.
"""

from __future__ import annotations

import math
import os
import stat
import threading
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from ..errors import SonggenError
from ..run import basemodel
from ..run.checkpoint import peek
from ..run.curves import read_metrics
from ..run.finding import METRICS, find_runs
from ..run.status import run_summary
from .httpserver import HTTPProblem

MAX_MODELS = 4                # loaded models kept in memory
MAX_INDEXES = 2               # copy-check indexes kept (each about 20 bytes per corpus character)
SCAN_DEPTH = 4                # folder levels below the runs folder searched
# The base model's name in the list: no file under the runs folder is called so (theirs end
# in .pt), so the page can name it like any other.
BASE_NAME = f"base model: {basemodel.NAME}"
MAX_METRICS = 8 * 1024**2     # bytes of one run's metrics.jsonl read (~40,000 evaluations)
# A training text outside the runs folder, for the originality check: read only if it is this
# small, in this few files, found this fast, and what the checkpoint was trained on.
OUTSIDE_BYTES = 256 * 1024**2
OUTSIDE_FILES = 10_000
OUTSIDE_SECONDS = 5.0


BAD_NAME = "its name is not valid UTF-8: rename it to use it here"


def utf8(name: str) -> bool:
    """Whether a name can be sent as it is (a name of bytes not valid UTF-8 holds surrogates)."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def read_bounded(path: Path, name: str) -> list[dict]:
    """A run's metrics, read only if at most MAX_METRICS bytes (one request's work)."""
    size = path.stat().st_size
    if size > MAX_METRICS:
        raise HTTPProblem(400, f"{name} is too large to show ({size / 1024**2:.0f} MB; the "
                               f"studio reads at most {MAX_METRICS // 1024**2} MB)")
    return read_metrics(path)  # refuses a pipe at once


# --- What a checkpoint records --------------------------------------------------------------

def checkpoint_summary(checkpoint) -> dict:
    """What the page shows of a checkpoint (a songgen.run.checkpoint.Checkpoint)."""
    from ..text.styles import style_names

    best = checkpoint.best_val_loss
    # The file's own score: the evaluation made at its step (none when it was saved between
    # two, at a Ctrl-C); the run's best so far may be another file's.
    own = next((h["val_loss"] for h in reversed(checkpoint.history)
                if h["step"] == checkpoint.step), None)
    train = checkpoint.train_config.to_dict() if checkpoint.train_config else {}
    return {
        "step": checkpoint.step, "epoch": checkpoint.epoch,
        "val_loss": own, "val_bpc": None if own is None else own / math.log(2),
        "best_val_loss": best, "best_val_bpc": None if best is None else best / math.log(2),
        "corpus": checkpoint.corpus, "songgen_version": checkpoint.songgen_version,
        "model": checkpoint.model_config.to_dict(),
        "training": {k: v for k, v in train.items() if isinstance(v, (int, float, str, bool))
                     or v is None},
        "chars": "".join(checkpoint.vocab[1:]),  # the first symbol is the end-of-song one
        "styles": style_names(checkpoint),  # for the style picker (songgen.text.styles)
    }


def training_text(root: Path, checkpoint) -> str | None:
    """The training text a checkpoint records, if the studio may read it: inside the runs
    folder `root` (every file in it too), or elsewhere a .txt file or a folder of them, within
    OUTSIDE_BYTES, OUTSIDE_FILES and OUTSIDE_SECONDS, from a checkpoint that has its
    fingerprint (open_copy_index refuses a text that does not match it). A checkpoint
    can name any path: without these bounds it could have the studio read any file, or
    scan the whole disk."""
    from ..writing.copycheck import bounded_text_files

    corpus = checkpoint.corpus
    if not isinstance(corpus, str) or not corpus or "\x00" in corpus:
        return None
    try:
        real = Path(corpus).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    inside = real == root or root in real.parents
    if not inside and checkpoint.fingerprint is None:
        return None
    try:
        found = bounded_text_files(real, OUTSIDE_FILES, OUTSIDE_BYTES, OUTSIDE_SECONDS,
                                   any_file=inside)
    except (OSError, SonggenError):
        return None
    if inside and not all(root in p.resolve().parents for p in found):
        return None  # a file linked from outside
    return corpus


def default_model(checkpoints: list[dict]) -> str | None:
    """The checkpoint `songgen sample --checkpoint RUN` uses, RUN being the run of the newest
    file: its best.pt, else its last.pt (else the newest file)."""
    usable = [c for c in checkpoints if "error" not in c]
    if not usable:
        return None
    run = usable[0]["run"]
    names = {c["name"] for c in usable}
    for f in ("best.pt", "last.pt"):
        name = f if run == "." else f"{run}/{f}"
        if name in names:
            return name
    return usable[0]["name"]


# --- The runs folder --------------------------------------------------------------------------

class Runs:
    """The checkpoints and training runs under one folder, with loaded models cached per file
    (reloaded when the file changes: a running train replaces best.pt atomically)."""

    def __init__(self, root: str | Path):
        self.given = Path(root)
        if not self.given.is_dir():
            raise SonggenError(f"no folder at {self.given}: give the folder that holds your "
                               "training runs (checkpoint folders)")
        self.root = self.given.resolve()
        self._lock = threading.Lock()        # the loaded models
        self._index_lock = threading.Lock()  # the copy-check indexes (slow to build)
        self._summaries: dict[Path, tuple] = {}
        self._models: dict[Path, tuple] = {}
        self._indexes: dict[tuple, object] = {}
        self.base = basemodel.bundled()  # songgen's base model (None: none bundled)

    # Names the page uses are paths relative to the root, with "/" between folders.
    def name_of(self, path: Path) -> str:
        if path == self.base:
            return BASE_NAME
        return PurePosixPath(*path.relative_to(self.root).parts).as_posix()

    def resolve(self, name, suffix: str | None = None) -> Path:
        """A path under the root from a name the page sent; nothing outside it, ever."""
        if not isinstance(name, str) or not name or "\x00" in name:
            raise HTTPProblem(400, "give a checkpoint or run by its name in the list")
        if name == BASE_NAME and self.base is not None and self.base.exists():
            self.regular(self.base, name)
            return self.base  # the one file outside the runs folder that may be read
        # "\\" separates folders on Windows only; elsewhere it is a character of a name.
        parts = PurePosixPath(name.replace("\\", "/") if os.sep == "\\" else name)
        if parts.is_absolute() or ".." in parts.parts or (len(name) > 1 and name[1] == ":"):
            raise HTTPProblem(400, f"{name!r} is not a name under the runs folder: absolute "
                                   "paths and '..' are refused")
        if any(p.startswith(".") for p in parts.parts if p != "."):
            raise HTTPProblem(400, f"{name!r} is a hidden file or folder")
        path = self.inside(self.root / parts, name)
        if path is None:
            raise HTTPProblem(404, f"nothing called {name!r} in the runs folder")
        if suffix is not None:
            if path.suffix != suffix:
                raise HTTPProblem(400, f"{name!r} is not a {suffix} file")
            self.regular(path, name)
        return path

    def inside(self, path: Path, name: str | None = None) -> Path | None:
        """The real path of `path` (None if there is nothing there), refused (403) if it leads
        outside the root."""
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if real != self.root and self.root not in real.parents:
            name = name or self.name_of(path)
            raise HTTPProblem(403, f"{name!r} leads outside the runs folder (a symbolic link?); "
                                   "only what is inside it can be used")
        return real

    def regular(self, real: Path, name: str) -> os.stat_result:
        """Its status, refused (400) unless a regular file: a named pipe would hang a reader."""
        st = real.stat()
        if not stat.S_ISREG(st.st_mode):
            raise HTTPProblem(400, f"{name!r} is not a regular file (a named pipe, a device, a "
                                   "socket or a folder)")
        return st

    def _usable(self, path: Path) -> tuple[Path, os.stat_result] | None:
        """(real path, status) of a file found by a scan, or None where it may not be opened."""
        try:
            real = self.inside(path)
            return None if real is None else (real, self.regular(real, path.name))
        except (HTTPProblem, OSError):
            return None

    def checkpoints(self) -> list[dict]:
        """Every checkpoint in the run folders under the root, newest first."""
        found = []
        for folder in find_runs(self.root, SCAN_DEPTH):
            try:
                names = sorted(os.listdir(folder))
            except OSError:
                continue
            for f in names:
                if f.endswith(".pt") and not f.startswith("."):
                    usable = self._usable(folder / f)
                    if usable is not None:  # not a link out, a pipe or a folder
                        found.append(self._describe(folder / f, *usable))
        found.sort(key=lambda c: (-c["mtime"], c["name"]))
        if self.base is not None and self.base.is_file():  # beside the runs, never the default
            found.append({**self._describe(self.base, self.base, self.base.stat()), "base": True})
        return found

    def _describe(self, path: Path, real: Path, st: os.stat_result) -> dict:
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self._summaries.get(path)
        if cached and cached[0] == key:
            return cached[1]
        run = None if path == self.base else self.name_of(path.parent) or "."
        entry = {"name": self.name_of(path), "run": run,
                 "file": path.name, "mtime": st.st_mtime, "size": st.st_size,
                 "date": datetime.fromtimestamp(st.st_mtime, timezone.utc).astimezone()
                 .strftime("%Y-%m-%d %H:%M")}
        if not utf8(entry["name"]):  # shown escaped; the page could not ask for it by name
            return {**entry, "error": BAD_NAME}
        try:
            entry.update(checkpoint_summary(peek(real)))
            corpus = entry.get("corpus")
            entry["corpus_available"] = bool(corpus) and Path(corpus).exists()
        except Exception as exc:  # a damaged or half-copied file: listed, not usable
            entry["error"] = f"unreadable ({type(exc).__name__})"
        self._summaries[path] = (key, entry)
        return entry

    def model(self, path: Path):
        """The loaded checkpoint, from the cache while the file is unchanged."""
        from .. import load_checkpoint

        with self._lock:
            st = path.stat()
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
            cached = self._models.get(path)
            if cached and cached[0] == key:
                return cached[1]
            trained = load_checkpoint(path, device="cpu")
            self._models.pop(path, None)
            self._models[path] = (key, trained)
            while len(self._models) > MAX_MODELS:  # the least recently loaded goes
                self._models.pop(next(iter(self._models)))
            return trained

    def copy_index(self, trained, max_copy: int | None):
        """The plagiarism index of the model's corpus (cached), or None if it is not here or
        may not be read (see `training_text`). Limits that need the same index share it; the least
        recently used goes first."""
        from ..writing.copycheck import copy_window, open_copy_index

        corpus = training_text(self.root, trained.checkpoint)
        if corpus is None:
            return None
        key = (corpus, trained.checkpoint.fingerprint, copy_window(max_copy))
        with self._index_lock:
            index = self._indexes.pop(key, None)
            if index is None:
                index = open_copy_index(corpus, trained, max_copy)
            self._indexes[key] = index
            while len(self._indexes) > MAX_INDEXES:
                self._indexes.pop(next(iter(self._indexes)))
            return index

    def runs(self) -> list[dict]:
        out = []
        for folder in find_runs(self.root, SCAN_DEPTH):
            name = self.name_of(folder) or "."
            if not utf8(name):  # one folder's odd name empties nobody else's entry
                out.append({"name": name, "error": BAD_NAME})
                continue
            try:
                records = self._metrics(folder, name)
                entry = {"name": name, **run_summary(folder, records)}
            except (HTTPProblem, SonggenError, OSError) as exc:  # listed, with what is wrong
                entry = {"name": name, "error": getattr(exc, "message", None) or
                         getattr(exc, "strerror", None) or str(exc),
                         **run_summary(folder, [])}
            for f in ("last.pt", "best.pt"):
                usable = self._usable(folder / f)
                if usable is not None:
                    s = self._describe(folder / f, *usable)
                    entry.update(corpus=s.get("corpus"), model=s.get("model"),
                                 training=s.get("training"), checkpoint_step=s.get("step"))
                    break
            out.append(entry)
        return out

    def _metrics(self, folder: Path, name: str) -> list[dict]:
        path = folder / METRICS
        real = self.inside(path, f"{name}/{METRICS}")
        if real is None:
            return []  # no evaluation yet
        return read_bounded(real, f"{name}/{METRICS}")

    def metrics(self, name) -> dict:
        folder = self.resolve(name)
        if not folder.is_dir():
            raise HTTPProblem(400, f"{name!r} is not a run folder")
        try:
            records = self._metrics(folder, name)
        except SonggenError as exc:
            raise HTTPProblem(400, str(exc)) from None
        return {"name": name, "records": records, **run_summary(folder, records)}


# --- Parameters -------------------------------------------------------------------------------
