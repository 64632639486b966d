"""Model and training configuration: plain dataclasses, importable without PyTorch, and the
upper bounds on what one command may ask for (shared by the library and the command line)."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields

from .errors import ConfigError

# Far beyond any useful setting: their job is to turn a typo (an extra zero or three) into a
# clear message instead of an allocation that exhausts memory.
MAX_LENGTH = 1_000_000   # characters in one song
MAX_SONGS = 10_000       # songs in one call
MAX_HIDDEN = 8192        # LSTM units per layer
MAX_EMBED = 4096         # embedding size
MAX_LAYERS = 16
MAX_SEQ_LEN = 10_000
MAX_BATCH = 8192
MAX_SEED = 2**63 - 1
MAX_TEMPERATURE = 100.0  # already as good as uniform; far above, float32 overflows


class _Plain:
    """Dataclass <-> plain dict (what a checkpoint stores); unknown keys from other versions
    are ignored."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class ModelConfig(_Plain):
    vocab_size: int = 0
    embed_dim: int = 64
    hidden_size: int = 256
    layers: int = 2
    dropout: float = 0.1
    styles: int = 0  # named styles the model is conditioned on (songgen.text.styles); 0: none

    # Fields a checkpoint written before they existed lacks (their default is then meant).
    OPTIONAL = ("styles",)

    def to_dict(self) -> dict:
        data = super().to_dict()
        if not self.styles:  # a model without styles is written exactly as before styles
            del data["styles"]
        return data

    def __post_init__(self):
        if isinstance(self.styles, bool) or not isinstance(self.styles, int) or self.styles < 0:
            raise ConfigError("styles must be a whole number of 0 or more")
        for name, most in (("embed_dim", MAX_EMBED), ("hidden_size", MAX_HIDDEN),
                           ("layers", MAX_LAYERS)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
                raise ConfigError(f"{name.replace('_', ' ')} must be a whole number between 1 "
                                  f"and {most}")
        number = isinstance(self.dropout, (int, float)) and not isinstance(self.dropout, bool)
        if not (number and 0 <= self.dropout < 1):
            raise ConfigError("dropout must be at least 0 and below 1")


@dataclass
class TrainConfig(_Plain):
    seq_len: int = 100
    batch_size: int = 32
    lr: float | None = None         # None: chosen from the model size (songgen.training.defaults)
    weight_decay: float | None = None  # None: chosen from the corpus size (songgen.training.defaults)
    grad_clip: float = 1.0
    seed: int = 1234
    val_frac: float = 0.1
    steps: int | None = None        # stop at this global step (counted from the run's start)
    epochs: int | None = None       # stop after this many epochs (counted from the run's start)
    time_limit: float | None = None  # seconds of training in this invocation
    patience: int = 5               # evaluations without improvement before stopping; 0 = off
    eval_every: int | None = None  # None: once an epoch, and at least every 1000 steps
    log_every: int = 10
    keep_last: int = 2
    device: str = "auto"
    precision: str = "auto"
    checkpoint_dir: str = "checkpoints"
    encoding: str = "utf-8"         # of the text files (UTF-16 with a BOM is always recognised)
    threads: int | None = None      # CPU threads; None: as many as are free, adjusted while training
    lr_schedule: str = "auto"       # auto, plateau, budget or none (songgen.training.defaults)
    corpus_cache: str = "auto"      # the encoded corpus's folder: auto (in checkpoint_dir), none
    styles: str = "auto"            # auto: from the folder layout and style marks; none (songgen.text.styles)

    # Options that fix the data layout, so a resume keeps the checkpoint's values.
    FIXED_ON_RESUME = ("seq_len", "batch_size", "seed", "val_frac", "styles")
    # Options a resume may change (the run goes on with the new value, and records it); not
    # given, they keep the checkpoint's. Limits (steps, epochs, time) belong to each command.
    CHANGEABLE_ON_RESUME = ("lr", "weight_decay", "grad_clip", "patience", "eval_every",
                            "keep_last", "encoding", "lr_schedule")

    def __post_init__(self):
        for name in ("eval_every", "log_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name.replace('_', ' ')} must be at least 1")
        for name, most in (("seq_len", MAX_SEQ_LEN), ("batch_size", MAX_BATCH)):
            if not 1 <= getattr(self, name) <= most:
                raise ConfigError(f"{name.replace('_', ' ')} must be between 1 and {most}")
        for name in ("steps", "epochs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.time_limit is not None and not isinstance(self.time_limit, (int, float)):
            raise ConfigError("the time limit is a number of seconds")
        if self.time_limit is not None and self.time_limit <= 0:
            raise ConfigError("the time limit must be positive")
        if not 0 < self.val_frac <= 0.5:
            raise ConfigError("the validation fraction must be above 0 and at most 0.5")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError("the learning rate must be a positive number")
        decay = 0.0 if self.weight_decay is None else self.weight_decay
        if not (math.isfinite(self.grad_clip) and math.isfinite(decay)):
            raise ConfigError("gradient clip and weight decay must be numbers")
        if self.grad_clip < 0 or decay < 0 or self.patience < 0 or self.keep_last < 0:
            raise ConfigError("gradient clip, weight decay, patience and keep-last cannot be negative")
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise ConfigError("threads must be between 1 and 1024")
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"the seed must be between 0 and {MAX_SEED}")
        self.encoding = check_encoding(self.encoding)
        if self.styles not in ("auto", "none"):
            raise ConfigError("styles is auto (from the folder layout and style marks) or none")
        if self.lr_schedule not in ("auto", "plateau", "budget", "none"):
            raise ConfigError("the learning-rate schedule is auto, plateau, budget or none")


    def step_limit(self, steps_an_epoch: int) -> int | None:
        """The step `steps` and `epochs` stop the run at (the nearer), or None."""
        if self.epochs is None:
            return self.steps
        return min(self.steps or math.inf, self.epochs * steps_an_epoch)


def check_encoding(name: str) -> str:
    """The codec's own name for a text encoding (cp1252, iso8859-1, utf-8), or ConfigError."""
    import codecs

    if name == "auto":  # each file's own: UTF-8, else cp1252 (songgen.text.lyrics)
        return name
    try:
        info = codecs.lookup(name)
    except (LookupError, TypeError, ValueError):
        raise ConfigError(f"unknown text encoding {name!r}; e.g. utf-8, cp1252 (Windows), "
                          "latin-1") from None
    if not getattr(info, "_is_text_encoding", True):  # rot13, base64: not text encodings
        raise ConfigError(f"{name!r} is not a text encoding; e.g. utf-8, cp1252, latin-1")
    return info.name


def launched_distributed() -> bool:
    """True inside a torchrun worker of a run with more than one process (torchrun sets
    WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1
