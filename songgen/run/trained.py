"""A checkpoint loaded for use: the model it describes (in eval mode on a device), its
vocabulary and the packed stepper that sampling runs, ready for generation and evaluation.

The file itself (schema, safe load, checksums, the run folder) is songgen.run.checkpoint's.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..errors import CheckpointError, SonggenWarning
from .checkpoint import Checkpoint, _candidates, _first_line, load


class Trained:
    """A loaded checkpoint: the model (in eval mode on `device`), its vocabulary and the
    checkpoint's contents."""

    def __init__(self, path: Path, checkpoint: Checkpoint, device: torch.device):
        from ..model.lstm import CharLSTM
        from ..text.styles import unstyled
        from ..text.vocab import Vocab

        self.path, self.checkpoint = path, checkpoint
        _check_finite(checkpoint.model_state, path)
        try:
            self.vocab = Vocab(checkpoint.vocab)
            self.model = CharLSTM(checkpoint.model_config)
            self.model.load_state_dict(checkpoint.model_state)
            # With styles, `model` writes with none (songgen.text.styles); `full_model` has them all.
            self.full_model, self.model = self.model, unstyled(self.model)
        except Exception as exc:  # any mismatch inside a damaged file reads the same to a user
            raise CheckpointError(f"{path} has a damaged model ({_first_line(exc)})") from None
        self.full_model.to(device).eval()
        self.model.to(device).eval()
        self.style: str | None = None  # the style it writes in (songgen.text.styles.with_style)
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
        from ..model.stepper import Stepper, int8_available, sampling_precision

        recorded = (self.checkpoint.choices or {}).get("sampling precision") or {}
        if precision == "auto" and self.device.type == "cpu" and recorded.get("value") in (
                "fp32", "int8") and (recorded["value"] == "fp32" or int8_available()):
            precision = recorded["value"]  # chosen once, when the run was created (#22)
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


def load_checkpoint(path: str | Path | None = None, device: str = "auto") -> Trained:
    """Load a checkpoint for sampling or evaluation. `path` may be a file, or a folder (default:
    checkpoints/) whose best.pt is used, or its last.pt when best.pt is missing or unreadable."""
    from ..model.devices import resolve_device

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
