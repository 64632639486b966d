"""The checkpoint file: what it holds (a typed schema, validated once when read), atomic save,
safe load (the file checked first: songgen.run.safeload), checksums. The run folder (lock,
rotation, metrics, what to resume from) is songgen.run.folder's; what `songgen info` says of a
checkpoint is songgen.run.info's; the model a checkpoint describes, loaded for sampling, is
songgen.run.trained's.

On disk a checkpoint is a plain dict of tensors and primitives, so that
`torch.load(weights_only=True)` reads it and no code is ever unpickled. `Checkpoint.to_dict`
and `Checkpoint.from_dict` are the only places that know its keys.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import BinaryIO, Callable

import torch

from .. import __version__, files
from ..config import ModelConfig, TrainConfig
from ..errors import CheckpointError, DamagedCheckpoint, SonggenError, UnreadableCheckpoint
from .checks import FORMAT, VERSION, check_header, check_model, check_record
from .safeload import read_dict


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
                                            # (schedule.LrSchedule.to_dict)
    choices: dict | None = None             # automatic choices: name -> {"value", "reason"}
    styles: dict | None = None              # the style table (styles.StyleTable.to_dict)
    songcraft: dict | None = None           # rhyme, chorus, words (songcraft.Measures.to_dict)
    run_id: str | None = None               # of the training run that wrote it (songgen.run.folder)
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
            "songcraft": self.songcraft, "run_id": self.run_id,
        }

    @classmethod
    def from_dict(cls, state, path: str | Path = "the checkpoint") -> "Checkpoint":
        """Validate a loaded dict: anything a command reads later has the type it expects."""
        check_header(state, path)
        model_config = check_model(state, path)
        values = {f.name: state[f.name] for f in fields(cls) if f.name in state}
        values.pop("version", None)
        for name in ("init_from", "shape", "schedule", "choices", "styles", "songcraft"):
            # Optional records: a damaged one is dropped.
            if not isinstance(values.get(name), (dict, type(None))):
                values[name] = None
        for name in ("checksum", "run_id"):
            if not isinstance(values.get(name), (str, type(None))):
                values[name] = None
        values["model_config"] = model_config
        problem = check_record(state)
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


def save(checkpoint: Checkpoint, path: str | Path) -> None:
    """Write a checkpoint atomically: a crash at any instant leaves either the old file or the
    new one, never a torn one. It carries a checksum of its contents, which `load` verifies."""
    files.write_atomically(path, writer(checkpoint))


def writer(checkpoint: Checkpoint) -> Callable[[BinaryIO], None]:
    """What writes `checkpoint`, with its checksum, into an open file: for `save`, and for a
    run folder's saves (songgen.run.folder), which stage the file before renaming it."""
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
    files.regular_file(path, CheckpointError, missing=f"no checkpoint at {path}; train a model "
                       "first or give another path", folder=f"{path} is a folder, not a "
                       "checkpoint file", advice="give a checkpoint file")
    if path.stat().st_size == 0:
        raise UnreadableCheckpoint(f"{path} is empty (0 bytes), not a checkpoint; it may be from "
                                   "an interrupted copy")
    state = read_dict(path)  # checked before it is loaded (songgen.run.safeload)
    check_header(state, path)  # a newer format may checksum differently: say so first
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
    return Checkpoint.from_dict(read_dict(Path(path), mmap=True), path)
