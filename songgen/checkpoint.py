"""The checkpoint file: what it holds (a typed schema, validated once when read), atomic save,
safe load, the model it describes loaded for use, and the run folder (lock, rotation, metrics,
what to resume from).

On disk a checkpoint is a plain dict of tensors and primitives, so that
`torch.load(weights_only=True)` reads it and no code is ever unpickled. `Checkpoint.to_dict`
and `Checkpoint.from_dict` are the only places that know its keys.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import BinaryIO, Callable

import torch

from . import __version__
from .config import ModelConfig, TrainConfig
from .errors import (CheckpointError, DamagedCheckpoint, ExistingRun, SonggenError,
                     SonggenWarning, UnreadableCheckpoint)

FORMAT = "songgen-checkpoint"
VERSION = 1
_NUMBERED = re.compile(r"^step-(\d+)\.pt$")
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
# What to do about a file that cannot be read as a checkpoint.
_GIVE = ("give a .pt file that songgen train wrote (a run's folder holds last.pt, best.pt "
         "and step-N.pt; an older one may still be whole)")


@dataclass
class Checkpoint:
    """Everything a checkpoint holds. A model for sampling needs the first three fields; the
    rest is the training run's state, so that a resume continues exactly."""

    model_config: ModelConfig
    vocab: list[str]
    model_state: dict[str, torch.Tensor]
    step: int = 0
    epoch: int = 0
    position: int = 0                       # step within the epoch
    train_config: TrainConfig | None = None
    fingerprint: str | None = None          # of the corpus trained on
    corpus: str | None = None               # its path, as given
    optimizer_state: dict | None = None
    scaler_state: dict | None = None
    stream_state: list[torch.Tensor] | None = None  # the LSTM state carried between steps
    start_state: list[torch.Tensor] | None = None   # the state a song starts from
    rng: dict | None = None
    best_val_loss: float | None = None
    bad_evals: int = 0                      # evaluations since the best one
    history: list[dict] = field(default_factory=list)  # the last 200 evaluations
    elapsed: float = 0.0                    # seconds of training, resumes included
    init_from: dict | None = None           # a fine-tuned run's base: path, step, fingerprint
    shape: dict | None = None               # the corpus's song shape (shape.SongShape.to_dict)
    schedule: dict | None = None            # the learning-rate schedule's state
                                            # (defaults.LrSchedule.to_dict)
    choices: dict | None = None             # automatic choices: name -> {"value", "reason"}
    songcraft: dict | None = None           # rhyme, chorus, words (songcraft.Measures.to_dict)
    songgen_version: str = __version__
    version: int = VERSION
    # Set when read from a file: the checksum it carried, verified (None: written before
    # checkpoints had one).
    checksum: str | None = None

    def to_dict(self) -> dict:
        return {
            "format": FORMAT, "version": self.version, "songgen_version": self.songgen_version,
            "model_config": self.model_config.to_dict(),
            "train_config": None if self.train_config is None else self.train_config.to_dict(),
            "vocab": list(self.vocab), "fingerprint": self.fingerprint, "corpus": self.corpus,
            "model_state": self.model_state, "optimizer_state": self.optimizer_state,
            "scaler_state": self.scaler_state, "step": self.step, "epoch": self.epoch,
            "position": self.position, "stream_state": self.stream_state,
            "start_state": self.start_state, "rng": self.rng,
            "best_val_loss": self.best_val_loss, "bad_evals": self.bad_evals,
            "history": self.history, "elapsed": self.elapsed, "init_from": self.init_from,
            "shape": self.shape, "schedule": self.schedule, "choices": self.choices,
            "songcraft": self.songcraft,
        }

    @classmethod
    def from_dict(cls, state, path: str | Path = "the checkpoint") -> "Checkpoint":
        """Validate a loaded dict: anything a command reads later has the type it expects."""
        _check_header(state, path)
        model_config = _check_model(state, path)
        values = {f.name: state[f.name] for f in fields(cls) if f.name in state}
        values.pop("version", None)
        for name in ("init_from", "shape", "schedule", "choices", "songcraft"):
            # Optional records: a damaged one is dropped.
            if not isinstance(values.get(name), (dict, type(None))):
                values[name] = None
        if not isinstance(values.get("checksum"), (str, type(None))):
            values["checksum"] = None
        values["model_config"] = model_config
        problem = _check_record(state)
        if problem:
            raise CheckpointError(f"{path} has a damaged training record ({problem})")
        if state.get("train_config") is not None:
            options = state["train_config"]
            if isinstance(options, dict) and "lr_schedule" not in options:
                # Written before schedules: the run goes on with its fixed learning rate.
                options = {**options, "lr_schedule": "none"}
            try:
                values["train_config"] = TrainConfig.from_dict(options)
                if values["train_config"].lr is None:  # every version saves the rate it chose
                    raise ValueError("no learning rate")
            except (SonggenError, TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor
                raise CheckpointError(f"{path} has a damaged training record (the "
                                      "training options)") from None
        for name in ("epoch", "position", "bad_evals"):
            values[name] = values.get(name) or 0
        values["elapsed"] = values.get("elapsed") or 0.0
        values["history"] = list(values.get("history") or [])
        return cls(**values, version=state["version"])

    @property
    def has_training_state(self) -> bool:
        return self.optimizer_state is not None and self.rng is not None

    def summary(self, path) -> dict:
        """The parts a person asks about (`songgen info --json`)."""
        return {
            "checkpoint": str(path), "songgen_version": self.songgen_version,
            "format_version": self.version, "model": self.model_config.to_dict(),
            "training": None if self.train_config is None else self.train_config.to_dict(),
            "vocab_size": len(self.vocab), "step": self.step, "epoch": self.epoch,
            "best_val_loss": self.best_val_loss, "corpus": self.corpus,
            "corpus_fingerprint": self.fingerprint, "init_from": self.init_from,
            "checksum": self.checksum, "choices": self.choices, "history": self.history,
            "songcraft": _songcraft_summary(self.songcraft),
        }


def _songcraft_summary(record) -> dict | None:
    """The corpus's rhyme and chorus figures for `info` (songgen/songcraft.py); None if none."""
    from .songcraft import Measures

    m = Measures.from_dict(record)
    if m is None:
        return None
    return {"rhyming_stanzas": round(m.rhyme_rate, 4), "stanzas": m.stanzas,
            "patterns": m.patterns, "repeat_songs": round(m.repeat_rate, 4), "songs": m.songs,
            "chorus_stanza": m.chorus_at + 1, "chorus_gap": m.chorus_gap,
            "words_kept": len(m.vocabulary), "summary": m.summary()}


def save(checkpoint: Checkpoint, path: str | Path) -> None:
    """Write a checkpoint atomically: a crash at any instant leaves either the old file or the
    new one, never a torn one. It carries a checksum of its contents, which `load` verifies."""
    state = checkpoint.to_dict()
    state["checksum"] = content_checksum(state)
    write_atomically(path, lambda f: torch.save(state, f))


def content_checksum(state: dict) -> str:
    """SHA-256 of everything a checkpoint dict holds but its own checksum: every tensor's
    dtype, shape and bytes, and every other value, walked in a fixed order (sorted keys).

    torch.load does not check the zip archive's CRCs, so without this a flipped bit in a
    weight loads silently as a different weight."""
    digest = hashlib.sha256()
    _digest_value(digest, {k: v for k, v in state.items() if k != "checksum"})
    return "sha256:" + digest.hexdigest()


def _digest_value(digest, value, depth: int = 0) -> None:
    if depth > 32:  # a real checkpoint nests a few levels; a damaged pickle can loop
        raise ValueError("the checkpoint's contents nest too deep")
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{flat.dtype}{tuple(value.shape)}:".encode())
        if flat.numel():
            digest.update(memoryview(flat.view(torch.uint8).numpy()))
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}:".encode())
        for key in sorted(value, key=repr):
            digest.update(f"{key!r}=".encode())
            _digest_value(digest, value[key], depth + 1)
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)}:".encode())
        for item in value:
            _digest_value(digest, item, depth + 1)
    else:  # str, int, float (repr is exact), bool, None
        digest.update(f"{type(value).__name__}:{value!r};".encode())


def load(path: str | Path) -> Checkpoint:
    """Load and validate a checkpoint. Never unpickles arbitrary objects (weights_only=True)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}; train a model first or give another path")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path} is not a regular file (a named pipe, a device or a "
                              "socket); give a checkpoint file")
    if path.stat().st_size == 0:
        raise UnreadableCheckpoint(f"{path} is empty (0 bytes), not a checkpoint; it may be from "
                                   "an interrupted copy")
    state = _read_dict(path)
    _check_header(state, path)  # a newer format may checksum differently: say so first
    if "checksum" in state:
        try:
            found = content_checksum(state)
        except ValueError as exc:
            raise UnreadableCheckpoint(f"{path} is damaged or not a checkpoint ({exc})") from None
        if state["checksum"] != found:
            raise DamagedCheckpoint(
                f"{path} is damaged: its contents do not match the checksum saved with it (a "
                "disk, memory or copy error); use another checkpoint (a run's folder also keeps "
                "best.pt and step-N.pt)", what=f"{path} is damaged (checksum mismatch)")
    return Checkpoint.from_dict(state, path)


def peek(path: str | Path) -> Checkpoint:
    """What a checkpoint records, for a listing: memory-mapped, so its weights are not read,
    and so not verified against its checksum (`load` does that before anything is used)."""
    return Checkpoint.from_dict(_read_dict(Path(path), mmap=True), path)


def _read_dict(path: Path, mmap: bool = False):
    try:
        with warnings.catch_warnings():
            # PyTorch warns about unusual pickle protocols before refusing or reading them;
            # the error below (or a clean load) is all a user needs to see.
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        refused = _UNSAFE_GLOBAL.search(str(exc))
        if refused:
            raise CheckpointError(
                f"{path} holds Python code or objects ({refused.group(1)}) that a safe load "
                "refuses; it is not a songgen checkpoint, or it was tampered with: do not open "
                "it some other way") from None
        what = f"{path} is corrupt or not a checkpoint (unpickling failed)"
        raise UnreadableCheckpoint(f"{what}; {_GIVE}", what=what) from None
    except Exception:  # any other loader failure on a damaged file means the same to a user
        what = f"{path} is corrupt, truncated or not a PyTorch file"
        raise UnreadableCheckpoint(f"{what}; {_GIVE}", what=what) from None


def _check_header(state, path) -> None:
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a songgen checkpoint (it holds a "
                                   f"{type(state).__name__})")
    if state.get("format") != FORMAT:
        if state and all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointError(f"{path} is a bare PyTorch state_dict, not a songgen "
                                       "checkpoint; it lacks the vocabulary and configuration "
                                       "needed to use it")
        raise CheckpointError(f"{path} is not a songgen checkpoint")
    version = state.get("version")
    if not isinstance(version, int):
        raise CheckpointError(f"{path} has no valid format version")
    if version > VERSION:
        raise CheckpointError(f"{path} uses checkpoint format {version}, newer than this songgen "
                              f"reads ({VERSION}); upgrade songgen to use it")
    missing = [k for k in ("model_config", "vocab", "model_state", "step") if k not in state]
    if missing:
        raise CheckpointError(f"{path} is incomplete (missing {', '.join(missing)})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:120]


def _check_model(state: dict, path) -> ModelConfig:
    """The configuration, vocabulary and weights must describe one model. The expected shapes
    are worked out, not allocated, so a damaged configuration never takes memory."""
    from .model import weight_shapes

    vocab = state["vocab"]
    if not (isinstance(vocab, list) and vocab and all(isinstance(c, str) for c in vocab)):
        raise CheckpointError(f"{path} has a damaged vocabulary")
    if not isinstance(state["model_config"], dict) or not isinstance(state["model_state"], dict):
        raise CheckpointError(f"{path} has a damaged model section")
    absent = [f.name for f in fields(ModelConfig) if f.name not in state["model_config"]]
    if absent:
        raise CheckpointError(f"{path} has a damaged model configuration (missing "
                                   f"{', '.join(absent)})")
    try:
        config = ModelConfig.from_dict(state["model_config"])  # checks its own values
        expected = weight_shapes(config)
    except Exception as exc:  # wrong types or values inside a damaged file
        raise CheckpointError(f"{path} has a damaged model configuration "
                                   f"({_first_line(exc)})") from None
    if config.vocab_size != len(vocab):
        raise CheckpointError(f"{path} has a damaged model (a vocabulary of {len(vocab)} "
                                   f"symbols, a model made for {config.vocab_size})")
    weights = state["model_state"]
    if set(weights) != set(expected):
        raise CheckpointError(f"{path} has a damaged model (its weights are not those of "
                                   "the model its configuration describes)")
    for name, shape in expected.items():
        value = weights[name]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
            raise CheckpointError(f"{path} has a damaged model (weight {name} has the wrong "
                                       "shape)")
    return config


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_record(state: dict) -> str | None:
    """What of the bookkeeping that commands print or resume from is damaged, if anything."""
    step = state["step"]
    history = state.get("history")
    history = [] if history is None else history
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return "the step count"
    if not isinstance(state.get("train_config"), (dict, type(None))):
        return "the training options"
    if not (state.get("best_val_loss") is None or _is_number(state["best_val_loss"])):
        return "the best validation loss"
    if not (isinstance(history, list) and all(
            isinstance(h, dict) and isinstance(h.get("step"), int) and _is_number(h.get("val_loss"))
            and (h.get("train_loss") is None or _is_number(h["train_loss"])) for h in history)):
        return "the metrics history"
    for name in ("epoch", "position", "bad_evals"):
        value = state.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            return f"the {name.replace('_', ' ')}"
    if not (state.get("elapsed") is None or _is_number(state["elapsed"])):
        return "the training time"
    return None


# -- a checkpoint loaded for use -------------------------------------------------------------

class Trained:
    """A loaded checkpoint: the model (in eval mode on `device`), its vocabulary and the
    checkpoint's contents."""

    def __init__(self, path: Path, checkpoint: Checkpoint, device: torch.device):
        from .lyrics import Vocab
        from .model import CharLSTM

        self.path, self.checkpoint = path, checkpoint
        _check_finite(checkpoint.model_state, path)
        try:
            self.vocab = Vocab(checkpoint.vocab)
            self.model = CharLSTM(checkpoint.model_config)
            self.model.load_state_dict(checkpoint.model_state)
        except Exception as exc:  # any mismatch inside a damaged file reads the same to a user
            raise CheckpointError(f"{path} has a damaged model ({_first_line(exc)})") from None
        self.model.to(device).eval()
        self.device = device
        # Where a song begins: the state at the end of a training song (zeros if not saved).
        start = checkpoint.start_state
        shape = (self.model.config.layers, 1, self.model.config.hidden_size)
        if (isinstance(start, list) and len(start) == 2 and
                all(isinstance(t, torch.Tensor) and t.shape == shape for t in start)):
            self.start_state = tuple(t.float().to(device) for t in start)
        else:
            self.start_state = (torch.zeros(shape, device=device), torch.zeros(shape, device=device))
        self._steppers: dict = {}

    @property
    def step(self) -> int:
        return self.checkpoint.step

    def stepper(self, precision: str = "auto"):
        """The packed one-character-at-a-time form of the model (built once per precision)."""
        from .stepper import Stepper, sampling_precision

        precision = sampling_precision(precision, self.device, self.model.config.hidden_size)
        if precision not in self._steppers:
            self._steppers[precision] = Stepper(self.model, int8=precision == "int8")
        return self._steppers[precision]


def _check_finite(weights: dict, path) -> None:
    for value in weights.values():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path} has weights that are not finite (NaN or infinity), "
                                  "as from a training run that diverged; use an earlier "
                                  "checkpoint, or train again with a lower learning rate")


def find_default(folder: str | Path = "checkpoints") -> Path:
    """best.pt of the folder, else last.pt."""
    return _candidates(Path(folder))[0]


def _candidates(folder: Path) -> list[Path]:
    found = [folder / name for name in ("best.pt", "last.pt") if (folder / name).exists()]
    if not found:
        raise CheckpointError(f"no checkpoint in {folder} (no best.pt or last.pt); train a model "
                              "first or give a checkpoint path")
    return found


def load_checkpoint(path: str | Path | None = None, device: str = "auto") -> Trained:
    """Load a checkpoint for sampling or evaluation. `path` may be a file, or a folder (default:
    checkpoints/) whose best.pt is used, or its last.pt when best.pt is missing or unreadable."""
    from .devices import resolve_device

    if path is not None and not Path(path).is_dir():
        return Trained(Path(path), load(path), resolve_device(device))
    first, *rest = _candidates(Path(path or "checkpoints"))
    try:
        return Trained(first, load(first), resolve_device(device))
    except CheckpointError as exc:
        if not rest:
            raise
        warnings.warn(f"{exc}; using {rest[0]} instead", SonggenWarning)
        return Trained(rest[0], load(rest[0]), resolve_device(device))


def info(path: str | Path | None = None) -> dict:
    """What `songgen info` shows. For a file, its summary. For a run folder (default:
    checkpoints/), the run: its latest checkpoint (last.pt), with the best one (best.pt) beside
    it; a file of the run that cannot be used is named in `problems`."""
    path = Path(path or "checkpoints")
    if not path.is_dir():
        return load(path).summary(path)
    found, problems = {}, []
    for name in ("last.pt", "best.pt"):
        if (path / name).exists():
            try:
                found[name] = load(path / name)
            except CheckpointError as exc:
                problems.append(str(exc))
    if not found:
        if problems:
            raise CheckpointError(problems[0])
        _candidates(path)  # raises: no checkpoint in the folder
    name, latest = next(iter(found.items()))
    summary = latest.summary(path / name)
    summary["run"] = str(path)
    best = found.get("best.pt")
    summary["best_checkpoint"] = None if best is None else {
        "checkpoint": str(path / "best.pt"), "step": best.step, "val_loss": best.best_val_loss}
    summary["problems"] = problems
    return summary


# -- writing files safely --------------------------------------------------------------------

def write_atomically(path: str | Path, write: Callable[[BinaryIO], None],
                     suffix: str = ".tmp", sync: bool = True) -> None:
    """Call `write` on a temporary file beside `path`, fsync it, then rename it over `path`
    (and fsync the folder, so the rename itself survives a crash). On failure nothing but the
    old `path` remains. `sync=False` skips the fsyncs, for a file that is checked when read
    (a crash may then leave it torn, never half-renamed)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it owner-only; use normal permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync:
        _fsync_dir(path.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform can open a folder.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _copy(src: Path, dst: Path) -> None:
    """Make `dst` an independent copy of `src`, atomically (temporary file, fsync, rename).
    Not a hard link: damage to one file on disk must not reach the others."""
    with open(src, "rb") as source:
        write_atomically(dst, lambda f: shutil.copyfileobj(source, f), suffix=".copy")


# -- the run folder --------------------------------------------------------------------------

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a second run is not detected there
    fcntl = None


def numbered(folder: str | Path) -> list[tuple[int, Path]]:
    """Numbered checkpoints (step-000123.pt) in `folder`, oldest first."""
    found = []
    for p in Path(folder).glob("step-*.pt"):
        m = _NUMBERED.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def numbered_path(folder: str | Path, step: int) -> Path:
    return Path(folder) / f"step-{step:09d}.pt"


class RunFolder:
    """The checkpoint folder of a training run: last.pt, best.pt, numbered step-N.pt,
    metrics.jsonl, and a lock file that keeps a second run out."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.last = self.path / "last.pt"
        self.best = self.path / "best.pt"
        self.metrics = self.path / "metrics.jsonl"
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(f"checkpoint folder {self.path} is a file; give a folder path")

    @contextlib.contextmanager
    def lock(self):
        """Hold an exclusive lock for the run. The OS drops it when the process dies, so a
        crashed or killed run never leaves the folder locked."""
        created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(f"cannot create checkpoint folder {self.path}: "
                                  f"{exc.strerror or exc}") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise CheckpointError(f"checkpoint folder {self.path} is not writable; "
                                  "fix its permissions or choose another folder")
        try:
            with self._locked():
                yield
        except BaseException:
            if created:
                self._remove_if_empty()
            raise

    def _remove_if_empty(self) -> None:
        """A run that failed before saving anything leaves no new folder behind (nor the corpus
        cache it may have written there)."""
        from .corpuscache import FOLDER

        leftovers = [p for p in self.path.iterdir() if p.name != ".lock"]
        if [p.name for p in leftovers] == [FOLDER] and leftovers[0].is_dir():
            shutil.rmtree(leftovers[0], ignore_errors=True)
            leftovers = [p for p in leftovers if p.exists()]
        if not leftovers:
            (self.path / ".lock").unlink(missing_ok=True)
            self.path.rmdir()

    @contextlib.contextmanager
    def _locked(self):
        if fcntl is None:
            yield
            return
        handle = open(self.path / ".lock", "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                owner = handle.read().strip() or "another process"
                raise CheckpointError(f"another training run ({owner}) is using {self.path}; "
                                      "wait for it to finish or choose another folder") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            yield
        finally:
            handle.close()

    def check_fresh(self) -> None:
        """A new run must not overwrite an earlier one's checkpoints."""
        if self.last.exists() or self.best.exists():
            corpus = self.recorded_corpus()
            what = f"{self.path} already holds a training run" + (f" (on {corpus})" if corpus else "")
            raise ExistingRun(f"{what}; resume it, or choose another checkpoint folder", what=what)

    def recorded_corpus(self) -> str | None:
        """The corpus path the run in this folder recorded, if a checkpoint can tell."""
        for path in (self.last, self.best):
            try:  # mapped, not read: only one small entry is wanted
                state = _read_dict(path, mmap=True)
                return state.get("corpus") if isinstance(state, dict) else None
            except (SonggenError, OSError):  # unreadable: the error is only a little less specific
                continue
        return None

    def load_for_resume(self) -> Checkpoint:
        """last.pt, or else the newest readable older checkpoint (with a warning)."""
        candidates = [self.last] + [p for _, p in reversed(numbered(self.path))] + [self.best]
        candidates = [p for p in candidates if p.exists()]
        if not candidates:
            raise CheckpointError(f"nothing to resume: {self.path} holds no checkpoint "
                                  "(no last.pt); start a new run instead")
        first_error = None
        loaded = []
        for path in candidates:
            try:
                loaded.append((path, load(path)))
            except CheckpointError as exc:
                first_error = first_error or exc
                continue
            if path == self.last:
                return loaded[0][1]
        if not loaded:
            if not isinstance(first_error, UnreadableCheckpoint):  # its own advice holds
                raise first_error
            raise CheckpointError(f"{first_error.what}, and no other checkpoint in {self.path} "
                                  "can be read; start a new run in another folder")
        path, checkpoint = max(loaded, key=lambda item: item[1].step)
        why = f"unusable ({first_error.what})" if first_error else "missing"
        warnings.warn(f"{self.last} is {why}; resuming from {path.name} at step "
                      f"{checkpoint.step}", SonggenWarning)
        return checkpoint

    def save(self, checkpoint: Checkpoint, best: bool, keep: int) -> None:
        """Write last.pt; copy it to step-N.pt (rotated to `keep`) and to best.pt if it is."""
        try:
            save(checkpoint, self.last)
            if keep > 0:
                _copy(self.last, numbered_path(self.path, checkpoint.step))
                old = numbered(self.path)
                for _, p in old[: max(0, len(old) - keep)]:
                    p.unlink(missing_ok=True)
            if best:
                _copy(self.last, self.best)
        except OSError as exc:
            raise SonggenError(f"could not write a checkpoint in {self.path}: "
                               f"{exc.strerror or exc}; the previous checkpoint is intact. "
                               "Free space or fix the folder, then resume") from None

    def append_metrics(self, line: str) -> None:
        try:
            with open(self.metrics, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as exc:
            raise SonggenError(f"could not write {self.metrics}: {exc.strerror or exc}; "
                               "free space or fix the folder, then resume") from None
