"""Checkpoint files: atomic save, safe load (weights_only), validation, rotation."""

from __future__ import annotations

import pickle
import re
import warnings
from dataclasses import fields
from pathlib import Path

import torch

from .atomicfile import write_atomically
from .errors import CheckpointError, ConfigError, SonggenWarning

FORMAT = "songgen-checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "model_config", "vocab", "model_state", "step")
_NUMBERED = re.compile(r"^step-(\d+)\.pt$")
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
# What to do about a file that cannot be read as a checkpoint.
_GIVE = ("give a .pt file that songgen train wrote (a run's folder holds last.pt, best.pt "
         "and step-N.pt; an older one may still be whole)")


def save(state: dict, path: str | Path) -> None:
    """Write a checkpoint atomically: a crash at any instant leaves either the old file or the
    new one, never a torn one."""
    write_atomically(path, lambda f: torch.save(state, f))


def load(path: str | Path) -> dict:
    """Load and validate a checkpoint. Never unpickles arbitrary objects (weights_only=True)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}; train a model first or give another path")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes), not a checkpoint; it may be from an "
                              "interrupted copy", hint="unreadable")
    try:
        with warnings.catch_warnings():
            # PyTorch warns about unusual pickle protocols before refusing or reading them;
            # the error below (or a clean load) is all a user needs to see.
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = _UNSAFE_GLOBAL.search(str(exc))
        if refused:
            raise CheckpointError(f"{path} holds Python code or objects ({refused.group(1)}) that "
                                  "a safe load refuses; it is not a songgen checkpoint, or it was "
                                  "tampered with: do not open it some other way") from None
        what = f"{path} is corrupt or not a checkpoint (unpickling failed)"
        raise CheckpointError(f"{what}; {_GIVE}", what=what, hint="unreadable") from None
    except Exception:  # any other loader failure on a damaged file means the same to a user
        what = f"{path} is corrupt, truncated or not a PyTorch file"
        raise CheckpointError(f"{what}; {_GIVE}", what=what, hint="unreadable") from None
    return validate(state, path)


def validate(state, path: str | Path) -> dict:
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a songgen checkpoint (it holds a "
                              f"{type(state).__name__})")
    if state.get("format") != FORMAT:
        if state and all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointError(f"{path} is a bare PyTorch state_dict, not a songgen checkpoint; "
                                  "it lacks the vocabulary and configuration needed to use it")
        raise CheckpointError(f"{path} is not a songgen checkpoint")
    version = state.get("version")
    if not isinstance(version, int):
        raise CheckpointError(f"{path} has no valid format version")
    if version > VERSION:
        raise CheckpointError(f"{path} uses checkpoint format {version}, newer than this songgen "
                              f"reads ({VERSION}); upgrade songgen to use it")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"{path} is incomplete (missing {', '.join(missing)})")
    vocab = state["vocab"]
    if not (isinstance(vocab, list) and vocab and all(isinstance(c, str) for c in vocab)):
        raise CheckpointError(f"{path} has a damaged vocabulary")
    if not isinstance(state["model_config"], dict) or not isinstance(state["model_state"], dict):
        raise CheckpointError(f"{path} has a damaged model section")
    _check_model(state, path)
    _check_record(state, path)
    return state


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


def rotate(folder: str | Path, keep: int) -> None:
    """Delete all but the `keep` most recent numbered checkpoints."""
    old = numbered(folder)
    for _, p in old[: max(0, len(old) - keep)]:
        p.unlink(missing_ok=True)


class Trained:
    """A loaded checkpoint: the model (in eval mode on `device`), its vocabulary, the raw state."""

    def __init__(self, path: Path, state: dict, device: torch.device):
        from .corpus import Vocab
        from .model import CharLSTM, ModelConfig

        self.path, self.state = path, state
        _check_finite(state["model_state"], path)
        try:
            self.vocab = Vocab(state["vocab"])
            self.model = CharLSTM(ModelConfig.from_dict(state["model_config"]))
            self.model.load_state_dict(state["model_state"])
        except Exception as exc:  # any mismatch inside a damaged file reads the same to a user
            raise CheckpointError(f"{path} has a damaged model ({_first_line(exc)})") from None
        self.model.to(device).eval()
        self.device = device
        # Where a song begins: the state at the end of a training song (zeros if not saved).
        start = state.get("start_state")
        shape = (self.model.config.layers, 1, self.model.config.hidden_size)
        if (isinstance(start, list) and len(start) == 2 and
                all(isinstance(t, torch.Tensor) and t.shape == shape for t in start)):
            self.start_state = tuple(t.float().to(device) for t in start)
        else:
            self.start_state = (torch.zeros(shape, device=device), torch.zeros(shape, device=device))

    @property
    def step(self) -> int:
        return self.state["step"]

    def stepper(self, precision: str = "auto"):
        """The packed one-character-at-a-time form of the model (built once per precision).

        auto: int8 weights on the CPU for models of 256 units or more, where they are 1.4-5x
        faster at no measurable cost in bits per character; float32 elsewhere.
        """
        from .stepper import Stepper, int8_available

        if precision not in ("auto", "fp32", "int8"):
            raise ConfigError(f"unknown sampling precision {precision!r}; use auto, fp32 or int8")
        on_cpu = self.device.type == "cpu"
        if precision == "auto":
            precision = ("int8" if on_cpu and self.model.config.hidden_size >= 256
                         and int8_available() else "fp32")
        if precision == "int8" and not (on_cpu and int8_available()):
            raise ConfigError("int8 sampling needs the CPU and a PyTorch build with quantised "
                              "kernels; use fp32")
        cache = self.__dict__.setdefault("_steppers", {})
        if precision not in cache:
            cache[precision] = Stepper(self.model, int8=precision == "int8")
        return cache[precision]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:120]


def _check_model(state: dict, path) -> None:
    """The configuration, vocabulary and weights must describe one model. The expected shapes
    are worked out, not allocated, so a damaged configuration never takes memory."""
    from .config import ModelConfig
    from .model import weight_shapes

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
    if config.vocab_size != len(state["vocab"]):
        raise CheckpointError(f"{path} has a damaged model (a vocabulary of "
                              f"{len(state['vocab'])} symbols, a model made for "
                              f"{config.vocab_size})")
    weights = state["model_state"]
    if set(weights) != set(expected):
        raise CheckpointError(f"{path} has a damaged model (its weights are not those of the "
                              "model its configuration describes)")
    for name, shape in expected.items():
        value = weights[name]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
            raise CheckpointError(f"{path} has a damaged model (weight {name} has the wrong "
                                  "shape)")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_record(state: dict, path) -> None:
    """The bookkeeping that commands print or resume from must have the types they expect."""
    problem = None
    step = state["step"]
    history = state.get("history", [])
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        problem = "the step count"
    elif not isinstance(state.get("train_config"), (dict, type(None))):
        problem = "the training options"
    elif not (state.get("best_val_loss") is None or _is_number(state["best_val_loss"])):
        problem = "the best validation loss"
    elif not (isinstance(history, list) and all(
            isinstance(h, dict) and isinstance(h.get("step"), int) and _is_number(h.get("val_loss"))
            and (h.get("train_loss") is None or _is_number(h["train_loss"])) for h in history)):
        problem = "the metrics history"
    if problem:
        raise CheckpointError(f"{path} has a damaged training record ({problem})")


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
