"""A training run's state: the model, its optimiser and gradient scaler, the learning-rate
schedule, where the streams are (step, epoch, position in the epoch, the LSTM state carried
between steps), the random state, the best validation loss and the recent evaluations.

It is built fresh (seeded; grown from a base model when fine-tuning) or from a checkpoint, and
turned back into one. That round trip is the heart of exact resume: k steps, a checkpoint, a
new state from it and N-k steps give the weights of N steps straight, bit for bit on the CPU.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ..config import TrainConfig
from ..errors import CheckpointError
from ..model.lstm import CharLSTM, context_state, detach, load_grown
from ..run.checkpoint import Checkpoint
from ..text.corpus import Corpus
from .plan import Plan
from .progress import epochs_done, say
from .schedule import LrSchedule


def fused_if_supported(device: torch.device) -> dict:
    """AdamW's fused kernel (one pass over all parameters) where this PyTorch has it for the
    device: CUDA, and the CPU from PyTorch 2.4."""
    if device.type == "cuda" or (device.type == "cpu" and
                                 tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 4)):
        return {"fused": True}
    return {}


class TrainState:
    """The state of a run that a step changes and a checkpoint keeps, built from the run's
    plan (songgen.training.plan). `start()` makes it fresh or from a checkpoint (also on a
    roll-back: the same model object, which a DDP wrapper may hold); `to_checkpoint()` turns it
    back into one."""

    def __init__(self, plan: Plan):
        # Not the checkpoint a resume starts from: kept here, its tensors would stay in memory
        # for the whole run.
        self.plan = replace(plan, saved=None)
        # What a step reads, kept at hand; `config` may change (a roll-back halves its rate).
        self.config, self.device, self.dtype, self.team = (plan.config, plan.device, plan.dtype,
                                                           plan.team)
        self.steps_an_epoch, self.budget_steps = plan.steps_an_epoch, plan.budget_steps
        self.choices = dict(plan.choices)
        self.time_spent = 0.0  # share of the time limit, as last read
        self.model = CharLSTM(plan.model_config).to(self.device)

    def start(self, saved: Checkpoint | None = None) -> "TrainState":
        """Weights, optimiser, random state and counters: from `saved`, or from scratch."""
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.config.lr,
                                           weight_decay=self.config.weight_decay,
                                           **fused_if_supported(self.device))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        if saved is None:
            self.model.load_state_dict(self._initial_weights())
            self.step = self.epoch = self.position = 0
            self.stream: tuple[torch.Tensor, torch.Tensor] | None = None
            self.best_val: float | None = None
            self.schedule = LrSchedule(kind=self.plan.schedule)
            self.history: list[dict] = []
            self.elapsed_before = 0.0
            self.saved_step: int | None = None  # the step of the last checkpoint written
            self.apply_lr()
            return self
        try:
            self.model.load_state_dict(saved.model_state)
            self.optimizer.load_state_dict(saved.optimizer_state)
            # A resume may change these (the saved optimiser state carries the old values).
            for group in self.optimizer.param_groups:
                if group["weight_decay"] != self.config.weight_decay:
                    group["weight_decay"] = self.config.weight_decay
            if saved.scaler_state:
                self.scaler.load_state_dict(saved.scaler_state)
            self._set_rng(saved.rng, saved.step)
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"the checkpoint's training state does not fit the model: "
                                  f"{str(exc).splitlines()[0]}") from None
        if saved.position >= self.steps_an_epoch:
            raise CheckpointError("the checkpoint's stream position is past the end of the corpus")
        self.step, self.epoch, self.position = saved.step, saved.epoch, saved.position
        stream = saved.stream_state
        self.stream = None if stream is None else tuple(
            t[:, self.plan.rows].to(self.device, torch.float32) for t in stream)
        self.best_val = saved.best_val_loss
        self.schedule = LrSchedule.from_dict(saved.schedule, self.plan.schedule,
                                             bad=saved.bad_evals, best=saved.best_val_loss)
        self.history = list(saved.history)
        self.elapsed_before = saved.elapsed
        self.saved_step = saved.step
        self.apply_lr()
        return self

    def _initial_weights(self) -> dict:
        """A new model's weights (seeded), with the fine-tuning base's copied in."""
        torch.manual_seed(self.config.seed)
        fresh = CharLSTM(self.model.config)
        if self.plan.base is not None:
            try:
                load_grown(fresh, self.plan.base.model_state)
            except (KeyError, RuntimeError, ValueError) as exc:
                raise CheckpointError(f"{self.plan.base_path} does not fit its own model "
                                      f"configuration: {str(exc).splitlines()[0][:120]}") from None
        if self.team.rank:
            torch.manual_seed(self.config.seed + self.team.rank)  # its own dropout masks
        return fresh.state_dict()

    def _set_rng(self, saved: dict, step: int) -> None:
        """Each process gets back its own random state; a run resumed on a different number of
        processes seeds the extra ones afresh (only dropout masks depend on it)."""
        ranks = saved.get("ranks")
        if self.team.world > 1 and ranks and len(ranks) == self.team.world:
            saved = ranks[self.team.rank]
        elif self.team.rank:
            torch.manual_seed(self.config.seed + self.team.rank + step)
            return
        torch.set_rng_state(saved["torch"])
        if self.device.type == "cuda" and saved.get("cuda") is not None:
            torch.cuda.set_rng_state(saved["cuda"], self.device)

    def _rng(self) -> dict:
        state = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def resumed(self, old: TrainConfig | None, quiet: bool) -> None:
        """Said on resume; and what a resume asks of the schedule."""
        say(f"resuming at step {self.step} ({epochs_done(self.epoch)})", quiet)
        if old is not None and old.lr != self.config.lr and self.schedule.scale != 1:
            # A learning rate given on resume is the rate from here.
            self.schedule.scale, self.schedule.bad = 1.0, 0
            self.apply_lr()
        if self.schedule.exhausted(self.config.patience):
            # The last run stopped on patience; resuming asks for more training.
            self.schedule.bad = 0
            say(f"validation had stopped improving; continuing until it fails to improve "
                f"for {self.config.patience} more evaluations", quiet)

    # -- the learning rate: the schedule steps the optimiser's rate itself ----------------------

    def progress(self) -> float | None:
        """How far through its budget this invocation is (0 to 1), for the budget schedule: the
        time limit counts from this invocation's start (read with the loss, every `log_every`
        steps), a step limit from the run's."""
        parts = []
        if self.config.time_limit is not None:
            parts.append(self.time_spent)
        if self.budget_steps:
            parts.append(self.step / self.budget_steps)
        return max(parts) if parts else None

    def apply_lr(self) -> float:
        """Set the optimiser's learning rate from the base rate and the schedule."""
        lr = self.config.lr * self.schedule.factor(self.progress())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def before_step(self) -> None:
        """A budget schedule moves with every step; the others only when evaluated."""
        if self.schedule.kind == "budget":
            self.apply_lr()

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    # -- the streams ----------------------------------------------------------------------------

    def advance(self, stream: tuple[torch.Tensor, torch.Tensor]) -> None:
        """A step was made: keep the carried LSTM state and move on one batch."""
        # Kept in float32 whatever the autocast: a bf16 state saved by a bf16 run and handed to
        # an fp32 LSTM on resume makes oneDNN fail ("could not create a primitive descriptor").
        # Under autocast it is rounded back to bf16 exactly as it came, so nothing changes.
        self.stream = detach(stream, torch.float32)
        self.step += 1
        self.position += 1
        if self.position == self.steps_an_epoch:
            # Epoch boundary: start the streams again from the top with a fresh state.
            self.epoch, self.position, self.stream = self.epoch + 1, 0, None

    # -- back into a checkpoint -----------------------------------------------------------------

    def to_checkpoint(self, corpus: Corpus, start_context: torch.Tensor, elapsed: float,
                      songcraft: dict | None = None) -> Checkpoint | None:
        """The run as a checkpoint; with several processes, their stream states and random
        states are gathered into process 0's (the others return None). `start_context` is the
        text whose state a song starts from (song_start_context); `songcraft` the corpus's
        rhyme, chorus and word measures (songgen/songcraft/measures.py)."""
        stream = None if self.stream is None else [self.team.gather_rows(t, 1).cpu()
                                                   for t in self.stream]
        rng = self._rng()
        ranks = self.team.gather_objects(rng)
        if not self.team.main:
            return None
        if self.team.world > 1:
            rng["ranks"] = ranks
        start = context_state(self.model, start_context, self.device)
        return Checkpoint(
            model_config=self.model.config, train_config=self.config,
            vocab=corpus.vocab.chars, fingerprint=corpus.fingerprint,
            corpus=corpus.source, model_state=self.model.state_dict(),
            optimizer_state=self.optimizer.state_dict(),
            scaler_state=self.scaler.state_dict() if self.scaler.is_enabled() else None,
            step=self.step, epoch=self.epoch, position=self.position, stream_state=stream,
            start_state=[t.cpu() for t in start], rng=rng, best_val_loss=self.best_val,
            bad_evals=self.schedule.bad, history=self.history, elapsed=elapsed,
            init_from=self.plan.init_from,
            shape=None if corpus.shape is None else corpus.shape.to_dict(),
            schedule=self.schedule.to_dict(), choices=self.choices, songcraft=songcraft,
            styles=None if corpus.styles is None else corpus.styles.table.to_dict())


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
