"""The training loop: steps, evaluation, early stopping, checkpoints, signals, roll-backs."""

from __future__ import annotations

import json
import math
import signal
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from . import checkpoint as ckpt
from .batches import StreamBatches
from .config import ModelConfig, TrainConfig
from .loading import Corpus
from .devices import autocast, keep_freed_memory
from .distributed import Team
from .errors import CheckpointError, ConfigError, SonggenWarning, TrainingInterrupted
from .evaluation import LN2, evaluate
from .model import CharLSTM, detach, load_grown
from .progress import Progress, describe_loss, epochs_done, say
from .rundir import CheckpointFolder
from .signals import StopSignals
from .snapshot import Snapshots, song_start_context

MAX_ROLLBACKS = 3
# Validation during training scores at most this many characters, spread over the validation
# text: enough for a stable mean, and quick even when a huge corpus leaves 100M to score.
VAL_CHARS = 2_000_000


@dataclass
class TrainResult:
    step: int
    epoch: int
    best_val_loss: float | None
    last_val_loss: float | None
    checkpoint_dir: Path
    stopped_because: str


def fused_if_supported(device: torch.device) -> dict:
    """AdamW's fused kernel (one pass over all parameters) where this PyTorch has it for the
    device: CUDA, and the CPU from PyTorch 2.4; a few per cent faster than the default."""
    if device.type == "cuda" or (device.type == "cpu" and
                                 tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 4)):
        return {"fused": True}
    return {}


class TrainingLoop(Snapshots):
    """One run: built from a corpus and configurations (restored from a checkpoint when
    resuming), then `run()`."""

    def __init__(self, corpus: Corpus, model_config: ModelConfig, config: TrainConfig,
                 device: torch.device, dtype: torch.dtype, folder: CheckpointFolder,
                 saved: dict | None, quiet: bool, team: Team | None = None):
        self.corpus, self.config, self.device, self.dtype = corpus, config, device, dtype
        self.folder, self.quiet, self.team = folder, quiet, team or Team()
        self.rows = self.team.rows(config.batch_size)
        self.batches = StreamBatches(corpus.train, config.batch_size, config.seq_len, self.rows)
        if device.type == "cpu":
            keep_freed_memory()
        self.model_config = model_config
        self.start_context = song_start_context(corpus.train)
        if len(corpus.val) > VAL_CHARS + 1:
            say(f"validation scores {VAL_CHARS:,} of its {len(corpus.val):,} characters, in "
                "stretches spread evenly over it", quiet)
        self.base_weights: dict | None = None
        self.rollbacks = 0
        self.warned_diverging = False
        self._fresh()
        if saved is not None:
            self._restore(saved)
            say(f"resuming at step {self.step} ({epochs_done(self.epoch)})", quiet)
            if config.patience and self.bad_evals >= config.patience:
                # The last run stopped on patience; resuming asks for more training.
                self.bad_evals = 0
                say(f"validation had stopped improving; continuing until it fails to improve "
                    f"for {config.patience} more evaluations", quiet)

    def _fresh(self) -> None:
        """A new model (seeded, or the fine-tuning base) and optimiser at step 0."""
        torch.manual_seed(self.config.seed)
        self.model = CharLSTM(self.model_config).to(self.device)
        if self.base_weights is not None:
            load_grown(self.model, self.base_weights)
        if self.team.rank:
            torch.manual_seed(self.config.seed + self.team.rank)  # its own dropout masks
        self.net = None  # what the training step calls; set by _join()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.config.lr,
                                           weight_decay=self.config.weight_decay,
                                           **fused_if_supported(self.device))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.step = self.epoch = self.position = 0
        self.state = None
        self.best_val: float | None = None
        self.bad_evals = 0
        self.history: list[dict] = []
        self.elapsed_before = 0.0

    def start_from(self, weights: dict, path) -> None:
        try:
            load_grown(self.model, weights)
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"{path} does not fit its own model configuration: "
                                  f"{str(exc).splitlines()[0][:120]}") from None
        self.base_weights = weights

    def _join(self) -> None:
        """Wrap the model for the training step: in DDP when distributed, which also copies
        process 0's weights to the others."""
        self.net = self.team.wrap(self.model, self.device)

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> TrainResult:
        c = self.config
        target = c.steps
        if c.epochs is not None:
            target = min(target or math.inf, c.epochs * len(self.batches))
        eval_every = c.eval_every or min(len(self.batches), 1000)
        progress = Progress(len(self.batches), target, c.batch_size * c.seq_len, self.quiet,
                            self.step, self.epoch, self.position)
        start = time.monotonic()
        loss_sum = torch.zeros((), device=self.device)
        loss_count = 0
        last_train = last_val = None
        self._join()
        try:
            with StopSignals() as signals:
                while (reason := self._stop_reason()) is None:
                    loss_sum += self._train_step()
                    loss_count += 1
                    progress.advance(self.step, self.epoch, self.position)
                    evaluating = self.step % eval_every == 0
                    reporting = evaluating or self.step % c.log_every == 0
                    signum, time_up = signals.signum, self._time_up(start)
                    if reporting:
                        # The one host synchronisation: read the running loss (and, with several
                        # processes, agree on whether to stop).
                        last_train, signum, time_up = self._agree(loss_sum, loss_count, signum,
                                                                  time_up)
                        if not math.isfinite(last_train):
                            self._roll_back(f"the training loss became {last_train}")
                            loss_sum.zero_()
                            loss_count = 0
                            progress.show(self.step, self.epoch, self.position)
                            continue
                    elif self.team.world > 1:
                        signum, time_up = None, False  # acted on once all processes agree
                    if evaluating:
                        loss_sum.zero_()
                        loss_count = 0
                        last_val = self._evaluate_and_save(last_train, start)
                    if reporting:
                        progress.report(last_train, last_val)
                    if signum:
                        self._save_now(start)
                        raise self._interrupted(signum)
                    if time_up:
                        reason = "reached the time limit"
                        break
                if not self.history or self.history[-1]["step"] != self.step:
                    if loss_count:
                        last_train = self._agree(loss_sum, loss_count, None, False)[0]
                    last_val = self._evaluate_and_save(last_train, start)
        finally:
            progress.close()
            # Drop the DDP wrapper now: it must not outlive the process group it talks through.
            self.net = None
        say(f"stopped: {reason} at step {self.step} ({epochs_done(self.epoch)}); best validation "
            f"loss {describe_loss(self.best_val)}; checkpoints saved in {self.folder.path}/",
            self.quiet)
        return TrainResult(self.step, self.epoch, self.best_val, last_val, self.folder.path, reason)

    def _time_up(self, start: float) -> bool:
        limit = self.config.time_limit
        return limit is not None and time.monotonic() - start >= limit

    def _agree(self, loss_sum: torch.Tensor, count: int, signum: int | None,
               time_up: bool) -> tuple[float, int | None, bool]:
        """The mean training loss since the last reading, over all processes, and whether any
        process was signalled or ran out of time."""
        if self.team.world == 1:
            return loss_sum.item() / count, signum, time_up
        totals = self.team.total(torch.stack([loss_sum.float(), torch.tensor(
            float(count), device=self.device)])).tolist()
        flags = self.team.largest(torch.tensor([signum or 0, int(time_up)],
                                               device=self.device)).tolist()
        return totals[0] / totals[1], flags[0] or None, bool(flags[1])

    def _interrupted(self, signum: int) -> TrainingInterrupted:
        name = signal.Signals(signum).name
        error = TrainingInterrupted(f"{name} received: training stopped at step {self.step}, "
                                    f"saved {self.folder.last}", signum)
        error.silent = not self.team.main
        return error

    def _stop_reason(self) -> str | None:
        c = self.config
        if c.steps is not None and self.step >= c.steps:
            return "reached the step limit"
        if c.epochs is not None and self.epoch >= c.epochs:
            return "reached the epoch limit"
        if c.patience and self.bad_evals >= c.patience:
            return f"validation loss stopped improving for {c.patience} evaluations"
        return None

    def _train_step(self) -> torch.Tensor:
        c = self.config
        x, y = self.batches.batch(self.position, self.device)
        self.model.train()
        with autocast(self.device, self.dtype):
            logits, state = self.net(x, self.state)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if c.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.state = detach(state)
        self.step += 1
        self.position += 1
        if self.position == len(self.batches):
            # Epoch boundary: start the streams again from the top with a fresh state.
            self.epoch, self.position, self.state = self.epoch + 1, 0, None
        return loss.detach()

    def _roll_back(self, what: str) -> None:
        """Go back to the last checkpoint (never a non-finite one) with half the learning rate."""
        self.rollbacks += 1
        lr = self.optimizer.param_groups[0]["lr"]
        if self.rollbacks > MAX_ROLLBACKS:
            raise ConfigError(
                f"{what} at step {self.step} again after {MAX_ROLLBACKS} roll-backs, with the "
                f"learning rate down to {lr:g}; start again with a lower learning rate "
                f"(e.g. {lr / 10:g}) and gradient clipping (e.g. 1.0)")
        failed_at = self.step
        self.config = replace(self.config, lr=lr / 2)
        if self.team.gather_objects(self.folder.last.exists())[0]:  # process 0's view
            self._restore(ckpt.load(self.folder.last))
        else:
            self._fresh()
            self._join()
        for group in self.optimizer.param_groups:
            group["lr"] = lr / 2
        warnings.warn(f"{what} at step {failed_at}; rolled back to step {self.step} and halved "
                      f"the learning rate to {lr / 2:g}", SonggenWarning)

    def _evaluate_and_save(self, train_loss: float | None, start: float) -> float | None:
        c = self.config
        val = evaluate(self.model, self.corpus.val, self.device, self.dtype,
                       rows=128, chunk=256, team=self.team, limit=VAL_CHARS)
        if not math.isfinite(val):
            self._roll_back(f"the validation loss became {val}")
            return None
        elapsed = self.elapsed_before + time.monotonic() - start
        improved = math.isfinite(val) and (self.best_val is None or val < self.best_val)
        if improved:
            self.best_val, self.bad_evals = val, 0
        else:
            self.bad_evals += 1
        record = {"step": self.step, "epoch": self.epoch, "train_loss": train_loss,
                  "val_loss": val, "val_bpc": val / LN2,
                  "chars_per_sec": self._chars_per_sec(elapsed),
                  "lr": self.optimizer.param_groups[0]["lr"], "elapsed": round(elapsed, 3)}
        self.history.append(record)
        self.history = self.history[-200:]
        state = self._state(elapsed)
        if self.team.main:
            self.folder.append_metrics(json.dumps(record))
            self.folder.save(state, self.step, best=improved, keep=c.keep_last)
        say(f"step {self.step}: validation {describe_loss(val)}" + (" (best)" if improved else ""),
            self.quiet)
        self._warn_if_diverging(val)
        return val

    def _warn_if_diverging(self, val: float) -> None:
        """A finite loss can still be far worse than knowing nothing: guessing every character
        at random scores ln(vocabulary size). Well above that, the run is diverging."""
        guess = math.log(len(self.corpus.vocab))
        if val > guess + 0.5 and not self.warned_diverging and self.team.main:
            self.warned_diverging = True
            warnings.warn(f"the validation loss {val:.4g} nats/char is worse than guessing at "
                          f"random ({guess:.2f}): training is diverging; lower the learning "
                          f"rate (now {self.optimizer.param_groups[0]['lr']:g})", SonggenWarning)

    def _chars_per_sec(self, elapsed: float) -> float:
        # Average over the whole run so far, resumes included.
        return round(self.step * self.config.batch_size * self.config.seq_len / max(elapsed, 1e-9))

    def _save_now(self, start: float) -> None:
        elapsed = self.elapsed_before + time.monotonic() - start
        state = self._state(elapsed)
        if self.team.main:
            self.folder.save(state, self.step, best=False, keep=self.config.keep_last)
