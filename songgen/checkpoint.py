"""The checkpoint file: what it holds (a typed schema, validated once when read), atomic save,
safe load, checksums, and the run folder (lock, rotation, metrics, what to resume from). The
model a checkpoint describes, loaded for sampling, is songgen.trained's.

On disk a checkpoint is a plain dict of tensors and primitives, so that
`torch.load(weights_only=True)` reads it and no code is ever unpickled. `Checkpoint.to_dict`
and `Checkpoint.from_dict` are the only places that know its keys.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import re
import shutil
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from . import __version__
from . import files
from .config import ModelConfig, TrainConfig
from .errors import (CheckpointError, DamagedCheckpoint, DiskFull, ExistingRun, SonggenError,
                     SonggenWarning, UnreadableCheckpoint)
from .textfiles import looks_like_text

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
    styles: dict | None = None              # the style table (styles.StyleTable.to_dict)
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
            "styles": self.styles,
            "songcraft": self.songcraft,
        }

    @classmethod
    def from_dict(cls, state, path: str | Path = "the checkpoint") -> "Checkpoint":
        """Validate a loaded dict: anything a command reads later has the type it expects."""
        _check_header(state, path)
        model_config = _check_model(state, path)
        values = {f.name: state[f.name] for f in fields(cls) if f.name in state}
        values.pop("version", None)
        for name in ("init_from", "shape", "schedule", "choices", "styles", "songcraft"):
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
            "styles": self.styles,
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
            "words_kept": len(m.vocabulary), "scanning_lines": m.scan_rate, "summary": m.summary()}


def save(checkpoint: Checkpoint, path: str | Path) -> None:
    """Write a checkpoint atomically: a crash at any instant leaves either the old file or the
    new one, never a torn one. It carries a checksum of its contents, which `load` verifies."""
    files.write_atomically(path, _writer(checkpoint))


def _writer(checkpoint: Checkpoint):
    state = checkpoint.to_dict()
    state["checksum"] = content_checksum(state)
    return lambda f: torch.save(state, f)


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
        if looks_like_text(path):
            what = f"{path} is a text file, not a checkpoint"
            raise UnreadableCheckpoint(f"{what}; give a .pt file that songgen train wrote (to "
                                       "score a text with a model, use songgen eval)",
                                       what=what) from None
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
    absent = [f.name for f in fields(ModelConfig) if f.name not in state["model_config"]
              and f.name not in ModelConfig.OPTIONAL]
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


def find_default(folder: str | Path = "checkpoints") -> Path:
    """best.pt of the folder, else last.pt."""
    return _candidates(Path(folder))[0]


def _candidates(folder: Path) -> list[Path]:
    found = [folder / name for name in ("best.pt", "last.pt") if (folder / name).exists()]
    if not found:
        raise CheckpointError(f"no checkpoint in {folder} (no best.pt or last.pt); train a model "
                              "first or give a checkpoint path")
    return found


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


# -- the run folder --------------------------------------------------------------------------

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
    metrics.jsonl, the corpus cache (corpus-cache/, unless the run keeps it elsewhere), and a
    lock file that keeps a second run out."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.last = self.path / "last.pt"
        self.best = self.path / "best.pt"
        self.metrics = self.path / "metrics.jsonl"
        self.cache = self.path / "corpus-cache"
        self._metrics_checked = False
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(f"checkpoint folder {self.path} is a file; give a folder path")

    @contextlib.contextmanager
    def lock(self):
        """Hold an exclusive lock for the run, on every OS. The OS drops it when the process
        dies, so a crashed or killed run never leaves the folder locked."""
        created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if files.is_disk_full(exc):
                raise self._write_error(exc, "the folder could not be made", None) from None
            raise CheckpointError(f"cannot create checkpoint folder {self.path}: "
                                  f"{files.reason(exc)}") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise CheckpointError(f"checkpoint folder {self.path} is not writable; "
                                  "fix its permissions or choose another folder")
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(files.exclusive(self.path / ".lock", wait=False, note=True))
            except files.Busy as busy:
                raise CheckpointError(f"another training run ({busy.owner or 'another process'})"
                                      f" is using {self.path}; wait for it to finish or choose "
                                      "another folder") from None
            except OSError as exc:
                if created:
                    self._remove_if_empty()
                raise self._write_error(exc, "its lock file could not be made",
                                        self._intact()) from None
            try:
                yield
            except BaseException:
                if created:
                    self._remove_if_empty()
                raise

    def _remove_if_empty(self) -> None:
        """A run that failed before saving anything leaves no new folder behind (nor the corpus
        cache it may have written there). Done while the lock is held: no other run is in it."""
        leftovers = [p for p in self.path.iterdir() if p.name != ".lock"]
        if leftovers == [self.cache] and self.cache.is_dir():
            shutil.rmtree(self.cache, ignore_errors=True)
            leftovers = [p for p in leftovers if p.exists()]
        if not leftovers:
            with contextlib.suppress(OSError):  # Windows keeps a held file: the folder stays
                (self.path / ".lock").unlink(missing_ok=True)
                self.path.rmdir()

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
        """Write step-N.pt (rotated to `keep`), best.pt if it is, and last.pt, in that order:
        last.pt, renamed into place last, is what a resume reads, so a crash or a full disk on
        the way leaves the run where its previous last.pt says, and the resume writes the
        copies again. Each file is written whole under a temporary name, then renamed."""
        staged = None
        try:
            staged = files.stage(self.last, _writer(checkpoint))
            copies = [numbered_path(self.path, checkpoint.step)] if keep > 0 else []
            for target in copies + ([self.best] if best else []):
                files.commit([(_copy(staged, target), target)])
            files.commit([(staged, self.last)])
        except OSError as exc:
            if staged is not None:
                staged.unlink(missing_ok=True)
            raise self._write_error(exc, f"step {checkpoint.step} could not be saved",
                                    self._intact()) from None
        old = numbered(self.path)
        for _, p in old[: max(0, len(old) - keep)]:
            p.unlink(missing_ok=True)

    def _intact(self) -> str | None:
        """What a failed write left: the run's latest saved checkpoint, as it was (None: the
        run has none yet)."""
        try:  # mapped, not read: only the step is wanted
            step = _read_dict(self.last, mmap=True).get("step")
        except (SonggenError, OSError, AttributeError):
            return None
        return f"last.pt (step {step}) is intact"

    def _write_error(self, exc: OSError, failed: str, kept: str | None) -> SonggenError:
        """The error for a write in this folder that failed: a full disk says so, and where."""
        then = "resume the run" if kept else "start the run again"
        kept = kept or "no checkpoint of this run is saved yet"
        if files.is_disk_full(exc):
            what = f"the disk holding {self.path} is full: {failed}, {kept}"
            return DiskFull(f"{what}; free some space, then {then}", what=what,
                            resumable=kept != "no checkpoint of this run is saved yet")
        what = f"{failed} in {self.path}: {files.reason(exc)}, {kept}"
        return SonggenError(f"{what}; fix the folder, then {then}", what=what)

    def append_metrics(self, line: str) -> None:
        """Add an evaluation's record (a JSON line with its "step") to metrics.jsonl. Before
        the first one a run writes, records of that step or later are dropped: they are from a
        save that did not complete (the process was killed, or the disk was full, between the
        record and its checkpoint), which this run now makes again."""
        try:
            if not self._metrics_checked:
                self._forget_metrics_from(json.loads(line)["step"])
                self._metrics_checked = True
            files.append_line(self.metrics, line)
        except OSError as exc:
            raise self._write_error(exc, f"{self.metrics.name} could not be written",
                                    self._intact()) from None

    def _forget_metrics_from(self, step: int) -> None:
        try:
            text = self.metrics.read_bytes()
        except FileNotFoundError:
            return
        lines = text.split(b"\n")
        complete, torn = lines[:-1], lines[-1]  # a last line without its newline is torn
        kept = [line for line in complete if not _record_from(line, step)]
        if len(kept) != len(complete) or torn:
            files.write_atomically(self.metrics, lambda f: f.write(b"".join(
                line + b"\n" for line in kept)))


def _record_from(line: bytes, step: int) -> bool:
    """Whether a metrics line is the record of `step` or a later one."""
    try:
        record = json.loads(line)
    except ValueError:
        return False  # not ours to judge: kept as it is
    return isinstance(record, dict) and isinstance(record.get("step"), int) and \
        record["step"] >= step


def _copy(src: Path, dst: Path) -> Path:
    """Stage an independent copy of `src` for `dst` (never a hard link: damage to one file on
    disk must not reach the others)."""
    with open(src, "rb") as source:
        return files.stage(dst, lambda f: shutil.copyfileobj(source, f), suffix=".copy")
