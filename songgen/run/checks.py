"""What a checkpoint's dict must hold to be used: its header (format and version), one model
(configuration, vocabulary and weight shapes that agree) and a training record of the right
types. songgen.run.checkpoint validates every loaded dict with these, once, when it is read."""

from __future__ import annotations

from dataclasses import fields

import torch

from ..config import ModelConfig
from ..errors import CheckpointError

FORMAT = "songgen-checkpoint"
VERSION = 1


def check_header(state, path) -> None:
    """A songgen checkpoint of a format version this songgen reads, holding what every use
    needs (a model, its vocabulary, the step)."""
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


def first_line(exc: BaseException) -> str:
    """An error's first line (at most 120 characters), to quote in a one-line message."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:120]


def check_model(state: dict, path) -> ModelConfig:
    """The configuration, vocabulary and weights must describe one model. The expected shapes
    are worked out, not allocated, so a damaged configuration never takes memory."""
    from ..model.lstm import weight_shapes

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
                                   f"({first_line(exc)})") from None
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


def check_record(state: dict) -> str | None:
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
