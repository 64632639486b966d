"""A training run's state as a checkpoint and back: the part of the training loop that
decides what a checkpoint holds, so that a resume continues exactly."""

from __future__ import annotations

import torch

from . import __version__
from . import checkpoint as ckpt
from .errors import CheckpointError
from .model import context_state


def song_start_context(train: torch.Tensor, size: int = 1000) -> torch.Tensor:
    """The end of the last whole training song, without its end-of-song symbol.

    The state after reading it is the state the model is in when a song ends, so sampling
    starts from it (feeding the end-of-song symbol next), exactly as every song began in
    training. A zero state at that point is something the model never saw.
    """
    end, step = len(train), 1 << 20
    for stop in range(len(train), 0, -step):  # from the back, a stretch at a time
        ends = (train[max(0, stop - step):stop] == 0).nonzero().flatten()
        if len(ends):
            end = max(0, stop - step) + int(ends[-1])
            break
    return train[max(0, end - size):end]


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


class Snapshots:
    """Mixed into TrainingLoop, whose attributes it reads and sets."""

    def _state(self, elapsed: float) -> dict | None:
        """The checkpoint; with several processes, their stream states and random states are
        gathered into process 0's (the others return None)."""
        stream = None if self.state is None else [self.team.gather_rows(t, 1).cpu()
                                                  for t in self.state]
        rng = rng_state(self.device)
        ranks = self.team.gather_objects(rng)
        if not self.team.main:
            return None
        if self.team.world > 1:
            rng["ranks"] = ranks
        return {
            "format": ckpt.FORMAT, "version": ckpt.VERSION, "songgen_version": __version__,
            "model_config": self.model.config.to_dict(), "train_config": self.config.to_dict(),
            "vocab": self.corpus.vocab.chars, "fingerprint": self.corpus.fingerprint,
            "corpus": self.corpus.source,
            "model_state": self.model.state_dict(), "optimizer_state": self.optimizer.state_dict(),
            "scaler_state": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "step": self.step, "epoch": self.epoch, "position": self.position,
            "stream_state": stream,
            "start_state": [t.cpu() for t in context_state(self.model, self.start_context,
                                                           self.device)],
            "rng": rng, "best_val_loss": self.best_val,
            "bad_evals": self.bad_evals, "history": self.history, "elapsed": elapsed,
            # [shape hook] the corpus's song shape (songgen/shape.py), plain numbers and lists
            "shape": None if self.corpus.shape is None else self.corpus.shape.to_dict(),
        }

    def _restore(self, saved: dict) -> None:
        try:
            self.model.load_state_dict(saved["model_state"])
            self.optimizer.load_state_dict(saved["optimizer_state"])
            if saved.get("scaler_state"):
                self.scaler.load_state_dict(saved["scaler_state"])
            self._set_rng(saved["rng"], saved["step"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"the checkpoint's training state does not fit the model: "
                                  f"{str(exc).splitlines()[0]}") from None
        self.step, self.epoch = saved["step"], saved["epoch"]
        self.position = saved["position"]
        stream = saved.get("stream_state")
        self.state = None if stream is None else (stream[0][:, self.rows].to(self.device),
                                                  stream[1][:, self.rows].to(self.device))
        self.best_val = saved.get("best_val_loss")
        self.bad_evals = saved.get("bad_evals", 0)
        self.history = list(saved.get("history", []))
        self.elapsed_before = saved.get("elapsed", 0.0)
        if self.position >= len(self.batches):
            raise CheckpointError("the checkpoint's stream position is past the end of the corpus")

    def _set_rng(self, saved: dict, step: int) -> None:
        """Each process gets back its own random state; a run resumed on a different number of
        processes seeds the extra ones afresh (only dropout masks depend on it)."""
        ranks = saved.get("ranks")
        if self.team.world > 1 and ranks and len(ranks) == self.team.world:
            saved = ranks[self.team.rank]
        elif self.team.rank:
            torch.manual_seed(self.config.seed + self.team.rank + step)
            return
        set_rng_state(saved, self.device)
