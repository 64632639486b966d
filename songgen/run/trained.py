"""A checkpoint loaded for use: the model it describes (in eval mode on a device), its
vocabulary and the packed stepper that sampling runs, ready for generation and evaluation, in
no style or in the style (or blend) asked for.

The file itself (schema, safe load, checksums) is songgen.run.checkpoint's, the run folder
songgen.run.folder's.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch

from ..errors import CheckpointError, SonggenWarning
from .checkpoint import Checkpoint, load
from .checks import first_line
from .folder import best_then_last

STYLED_KEPT = 8  # styled copies of a model kept, so that asking again reuses one


class Trained:
    """A loaded checkpoint: the model (in eval mode on `device`), its vocabulary and the
    checkpoint's contents."""

    def __init__(self, path: Path, checkpoint: Checkpoint, device: torch.device):
        from ..model.lstm import CharLSTM
        from ..model.style_input import unstyled
        from ..text.vocab import Vocab

        self.path, self.checkpoint = path, checkpoint
        _check_finite(checkpoint.model_state, path)
        try:
            self.vocab = Vocab(checkpoint.vocab)
            self.model = CharLSTM(checkpoint.model_config)
            self.model.load_state_dict(checkpoint.model_state)
            # With styles, `model` writes with none (songgen.model.style_input); `full_model`
            # has them all.
            self.full_model, self.model = self.model, unstyled(self.model)
        except Exception as exc:  # any mismatch inside a damaged file reads the same to a user
            raise CheckpointError(f"{path} has a damaged model ({first_line(exc)})") from None
        self.full_model.to(device).eval()
        self.model.to(device).eval()
        self.style: str | None = None  # the style it writes in (`with_style`); None: none
        # Its copies in other styles, by blend: shared with those copies (a shallow copy keeps
        # the same dict), so that a studio asking for a style again gets the model it made.
        self.styled: dict[tuple, Trained] = {}
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

    def with_style(self, style) -> "Trained":
        """This model set to write in `style` (a name, a blend such as "cowboy=0.7,burns=0.3",
        or None): a copy whose model has the style folded in; itself when no style is asked
        (it already writes with none). An unknown style raises StyleError."""
        from ..text.styles import parse, style_names

        names = style_names(self.checkpoint)
        blend = parse(style, names)
        if blend is None:
            return self
        key = tuple(sorted(blend.items()))
        if key not in self.styled:
            while len(self.styled) >= STYLED_KEPT:  # the oldest goes
                self.styled.pop(next(iter(self.styled)))
            self.styled[key] = self._in_blend(blend, names)
        return self.styled[key]

    def _in_blend(self, blend: dict[int, float], names: list[str]) -> "Trained":
        from ..model.style_input import unstyled
        from ..text.styles import StyleTable, describe

        styled = copy.copy(self)
        styled.model = unstyled(self.full_model, blend).eval()
        styled._steppers = {}
        styled.style = describe(blend, names)
        # One style's songs have a shape of their own (stanzas, lengths), which steers sampling;
        # a blend keeps the whole corpus's.
        table = StyleTable.from_dict(self.checkpoint.styles)
        shape, craft = table.shapes.get(styled.style), table.songcraft.get(styled.style)
        if len(blend) == 1 and (isinstance(shape, dict) or isinstance(craft, dict)):
            styled.checkpoint = copy.copy(self.checkpoint)
            if isinstance(shape, dict):
                styled.checkpoint.shape = shape
            if isinstance(craft, dict):  # its rhyme, chorus and word habits (songcraft.measures)
                styled.checkpoint.songcraft = craft
        return styled


# As a function, for callers that hold a model and a style: with_style(trained, style).
with_style = Trained.with_style


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
    first, *rest = best_then_last(Path(path or "checkpoints"))
    try:
        return Trained(first, load(first), resolve_device(device))
    except CheckpointError as exc:
        if not rest:
            raise
        warnings.warn(f"{exc}; using {rest[0]} instead", SonggenWarning)
        return Trained(rest[0], load(rest[0]), resolve_device(device))
