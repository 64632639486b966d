"""Training: `train()` settles how the call goes on with the run in its folder
(songgen.training.continuation: the demo run going on, steps more, a run complete already), sets
the run up (songgen.training.plan: the corpus, the options and every choice, made in one place)
and loops it. The loop only steps (`train_step`, one plain function over the
state of songgen.training.state), logs, evaluates and saves, and stops. Ctrl-C and SIGTERM finish the
step, save and stop (songgen.training.signals); a loss that becomes NaN or infinite rolls the run back
to its last checkpoint at half the learning rate.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from ..config import ModelConfig, TrainConfig
from ..errors import ConfigError, DeviceError, SonggenError, SonggenWarning
from ..model.devices import DTYPES, ThreadTuner, autocast, cpu_cores, free_cores, keep_freed_memory
from ..run import checkpoint as ckpt
from ..run.checkpoint import Checkpoint
from ..run.folder import RunFolder, find_default
from ..text import styles
from . import continuation
from .batches import StreamBatches
from .evaluation import LN2, evaluate, evaluate_styles
from .plan import VAL_CHARS, Plan, plan_run
from .progress import Progress, describe_loss, epochs_done, say
from .schedule import LOWEST, PLATEAU
from .signals import StopSignals, interrupted, stopped_at_once
from .state import TrainState, song_start_context
from .team import Team
from .threadcount import decide_threads, step_changes_with_threads

MAX_ROLLBACKS = 3
HISTORY = 200  # evaluations kept in the checkpoint

# torch.OutOfMemoryError appeared in PyTorch 2.5; older releases only have the CUDA one.
_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


@dataclass
class TrainResult:
    step: int
    epoch: int
    best_val_loss: float | None
    last_val_loss: float | None
    checkpoint_dir: Path
    stopped_because: str
    loop_seconds: float = 0.0  # the training loop of this call: steps, evaluation, saving
    # The run had nothing left to do before this call (trained nothing, wrote nothing), and
    # the limit it had reached: "steps" or "epochs" (TrainConfig's names), None for an early stop.
    complete_already: bool = False
    limit: str | None = None


def train(source: str | Path | None = None, *, model: dict | ModelConfig | None = None,
          config: TrainConfig | None = None, resume: bool = False,
          init_from: str | Path | None = None, explicit: set[str] | None = None,
          quiet: bool = False, from_scratch: bool = False,
          more_steps: int | None = None) -> TrainResult:
    """Train a model on a lyrics file or folder (the bundled demo corpus when `source` is None).

    model: architecture options (a ModelConfig or a dict of its fields).
    resume: continue the run saved in the checkpoint folder, exactly where it stopped (on the
        text it recorded when `source` is None). Options that leave the model's shape and the
        data layout alone (learning rate, weight decay, clipping, patience, evaluation and
        keep-last, encoding) may change on resume; the rest keep the checkpoint's values.
        Without `source`, `resume` and `init_from`, a folder holding the demo run goes on with
        it, as a resume (said in one line, even when quiet). A run asked to go on that has
        nothing left to do (its step or epoch limit reached, or its early stop) trains nothing:
        the result says `complete_already`. A step limit below the run's step is refused
        (songgen.training.continuation.StepLimitPassed).
    more_steps: train this many steps more than the run has made (counted from 0 for a new
        run); not with a step limit (`config.steps`), which counts from the run's start.
    init_from: fine-tune: start from this checkpoint's weights (its vocabulary grown by the new
        corpus's characters) with a fresh optimiser at step 0; a folder means its best.pt, else
        its last.pt. Without it, a new run on a small text starts so from the bundled base
        model (songgen.training.plan says when and why)...
    from_scratch: ...unless this is set: then it starts from a new model.
    explicit: names of options the caller set on purpose; on resume or fine-tuning, those that
        disagree with the checkpoint are reported (and, on resume, those not set keep the
        checkpoint's values). Without it every given option counts. A fresh run whose batch
        size and sequence length were not set on purpose shrinks them for a short text.
    """
    config = config or TrainConfig()
    given_model = model.to_dict() if isinstance(model, ModelConfig) else dict(model or {})
    given_model.pop("vocab_size", None)
    given_model.pop("styles", None)  # from the corpus
    given_model = {k: v for k, v in given_model.items() if v is not None}  # None: automatic
    if resume and init_from is not None:
        raise ConfigError("resuming a run and starting from a base model cannot be combined; "
                          "choose one")
    if from_scratch and init_from is not None:
        raise ConfigError("starting from a given model and from scratch cannot be combined; "
                          "choose one")
    if more_steps is not None and (isinstance(more_steps, bool) or
                                   not isinstance(more_steps, int) or more_steps < 1):
        raise ConfigError("the number of steps more must be a whole number, at least 1")
    if init_from is not None and Path(init_from).is_dir():
        init_from = str(find_default(init_from))  # as sampling reads a folder
    going = continuation.settle(source, config, resume, init_from, more_steps, explicit)
    if going.complete is not None:
        return _complete_already(going)
    config, resume = going.config, going.resume
    team, device = Team.start(config.device)
    try:
        # Only process 0 of a distributed run owns the folder (lock, checks, saving) and speaks.
        quiet = quiet or not team.main
        if going.demo:
            # Said even when quiet: the caller did not ask for a resume by name.
            say(f"{config.checkpoint_dir} holds the demo run: going on with it (as with "
                "--resume)", not team.main)
        with contextlib.ExitStack() as held:
            with team.together():
                folder = RunFolder(config.checkpoint_dir)
                if team.main:
                    held.enter_context(folder.lock())
                run = Run(plan_run(source, given_model, config, resume, init_from, explicit,
                                   device, folder, team, quiet, from_scratch=from_scratch))
            try:
                result = run.loop()
                team.finish()
                return result
            except (_OUT_OF_MEMORY, MemoryError, RuntimeError) as exc:
                if team.lost_contact(exc):
                    raise SonggenError("lost contact with another process of the run, which "
                                       "stopped (see its message); the last checkpoint is "
                                       "intact, resume from it") from None
                if isinstance(exc, RuntimeError) and _math_library_failed(exc):
                    raise _math_library_error(exc, device, run.dtype) from None
                if isinstance(exc, RuntimeError) and "allocate" not in str(exc):
                    raise
                raise SonggenError(f"out of memory on {device}: the model or batch is too large "
                                   "for this machine; use a smaller hidden size, batch size or "
                                   "sequence length (the last checkpoint, if any, is intact)") from None
    finally:
        team.close()


def _complete_already(going: continuation.Continuation) -> TrainResult:
    """The result of a call that found its run complete: the run as its last checkpoint left it."""
    saved = going.complete
    last = saved.history[-1] if saved.history else None
    last_val = last.get("val_loss") if isinstance(last, dict) else None
    return TrainResult(saved.step, saved.epoch, saved.best_val_loss, last_val,
                       RunFolder(going.config.checkpoint_dir).path, going.reason,
                       complete_already=True, limit=going.limit)


# The words by which oneDNN (CPU) and cuDNN (GPU) failures announce themselves.
_MATH_LIBRARIES = {"primitive descriptor": "oneDNN", "onednn": "oneDNN", "mkldnn": "oneDNN",
                   "dnnl": "oneDNN", "cudnn": "cuDNN"}


def _math_library_failed(exc: RuntimeError) -> bool:
    text = str(exc).lower()
    return any(word in text for word in _MATH_LIBRARIES)


def _math_library_error(exc: RuntimeError, device: torch.device,
                        dtype: torch.dtype) -> DeviceError:
    """A one-line error for a oneDNN or cuDNN failure in a forward or backward pass."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    library = next(name for word, name in _MATH_LIBRARIES.items() if word in text.lower())
    text = text.split(". Run workload")[0].rstrip(".")  # oneDNN's own debugging hint
    precision = {v: k for k, v in DTYPES.items()}.get(dtype, str(dtype))
    advice = ("train in fp32 precision instead" if precision != "fp32" else
              "this should not happen in fp32: please report it, with `songgen info` of the "
              "checkpoint folder")
    return DeviceError(f"{library} could not run the LSTM on {device} in {precision} ({text}); "
                       f"{advice} (the last checkpoint, if any, is intact)")


def train_step(state: TrainState, batches: StreamBatches, net: torch.nn.Module) -> torch.Tensor:
    """One step of truncated BPTT: the next `seq_len` characters of every stream, forward from
    the state carried over from the last step, backward, clip, update. Returns the loss, still
    on the device (reading it would wait for the device)."""
    state.before_step()
    x, y = batches.batch(state.position, state.device)
    style = batches.style_batch(state.position, state.device)  # None without styles
    state.model.train()
    with autocast(state.device, state.dtype):
        logits, stream = net(x, state.stream) if style is None else net(x, state.stream, style)
    loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    if state.config.grad_clip > 0:
        state.scaler.unscale_(state.optimizer)
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), state.config.grad_clip)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.advance(stream)
    return loss.detach()


def thread_tuner(state: TrainState, quiet: bool) -> ThreadTuner | None:
    """On the CPU, the thread count: as asked; kept from the run's start where the count
    changes what its step computes; else the cores free now, kept at what runs fastest while
    training (see ThreadTuner). Checked on the run's own step (songgen.training.threadcount) and
    recorded in the checkpoint's choices."""
    if state.device.type != "cpu":
        return None
    most, free = cpu_cores(), free_cores()
    threads = decide_threads(
        state.config.threads, state.choices.get("threads"), state.step, most, free,
        lambda counts: step_changes_with_threads(state.plan, counts, train_step))
    state.choices["threads"] = threads.record
    say(threads.line, quiet)
    if threads.tune:
        return ThreadTuner(threads.count, most)
    torch.set_num_threads(threads.count)
    return None


def read_loss(team: Team, loss_sum: torch.Tensor, count: int, signum: int | None,
              time_up: bool, spent: float) -> tuple[float, int | None, bool, float]:
    """The mean training loss since the last evaluation, over all processes, whether any
    process was signalled or ran out of time, and the share of the time limit spent (agreed
    too: every process must step with the same learning rate). The one host synchronisation
    of the loop."""
    if team.world == 1:
        return loss_sum.item() / count, signum, time_up, spent
    totals = team.total(torch.stack([loss_sum.float(), torch.tensor(
        float(count), device=loss_sum.device)])).tolist()
    flags = team.largest(torch.tensor([signum or 0, int(time_up), spent],
                                      dtype=torch.float64, device=loss_sum.device)).tolist()
    return totals[0] / totals[1], int(flags[0]) or None, bool(flags[1]), flags[2]


def stop_reason(config: TrainConfig, state: TrainState) -> str | None:
    """Why the run stops before its next step, if it does: a limit reached, or patience run out."""
    if config.steps is not None and state.step >= config.steps:
        return "reached the step limit"
    if config.epochs is not None and state.epoch >= config.epochs:
        return "reached the epoch limit"
    if state.schedule.exhausted(config.patience):
        lowest = "" if state.schedule.kind == "none" else (
            f" at the lowest learning rate ({config.lr * LOWEST:g})")
        return f"validation loss stopped improving for {config.patience} evaluations{lowest}"
    return None


def diverging(val: float, vocab_size: int, lr: float) -> str | None:
    """A finite loss can still be far worse than knowing nothing: guessing every character
    at random scores ln(vocabulary size). Well above that, the run is diverging."""
    guess = math.log(vocab_size)
    if val > guess + 0.5:
        return (f"the validation loss {val:.4g} nats/char is worse than guessing at random "
                f"({guess:.2f}): training is diverging; lower the learning rate (now {lr:g})")
    return None


def corpus_songcraft(corpus) -> dict:
    """The corpus's rhyme, chorus and word habits (songgen/songcraft/measures.py), and each style's own
    (for sampling in it): what a checkpoint keeps for sampling."""
    from ..songcraft.measures import measure_ids

    found = measure_ids(corpus.train, corpus.vocab.chars).to_dict()
    if corpus.styles is not None:
        styles.measure_each(corpus.styles, corpus.train, corpus.vocab.chars)
    return found


def validation_loss(model, corpus, device: torch.device, dtype, team: Team
                    ) -> tuple[float, dict | None]:
    """The loss on the validation text, and per style where the corpus has styles (each on
    its own validation text, read in that style: songgen.text.styles)."""
    if corpus.styles is not None and corpus.styles.val_parts:
        return evaluate_styles(model, corpus.styles, corpus.val, VAL_CHARS, device=device,
                               dtype=dtype, rows=128, chunk=256, team=team)
    return evaluate(model, corpus.val, device, dtype, rows=128, chunk=256, team=team,
                    limit=VAL_CHARS), None


def history_record(state: TrainState, train_loss: float | None, val: float,
                   per_style: dict | None, elapsed: float) -> dict:
    """One evaluation as the checkpoint's history and metrics.jsonl keep it."""
    config = state.config
    chars_a_step = config.batch_size * config.seq_len  # averaged over the run
    record = {"step": state.step, "epoch": state.epoch, "train_loss": train_loss,
              "val_loss": val, "val_bpc": val / LN2,
              "chars_per_sec": round(state.step * chars_a_step / max(elapsed, 1e-9)),
              "lr": state.lr, "elapsed": round(elapsed, 3),
              "threads": torch.get_num_threads() if state.device.type == "cpu" else None}
    if per_style is not None:
        record["val_styles"] = per_style
    return record


def tell_evaluation(step: int, val: float, improved: bool, per_style: dict | None,
                    halved_to: float | None, quiet: bool) -> None:
    """The lines an evaluation prints: its loss, each style's, and a halved learning rate."""
    say(f"step {step}: validation {describe_loss(val)}" + (" (best)" if improved else ""), quiet)
    if per_style:
        say("  per style: " + ", ".join(f"{name} {loss:.4f}" for name, loss in
                                       per_style.items()), quiet)
    if halved_to is not None:
        say(f"no better validation loss for {PLATEAU} evaluations: learning rate halved to "
            f"{halved_to:g}", quiet)


# -- the run -----------------------------------------------------------------------------------

class Run:
    """One training run: the corpus as batches and the training state (songgen.training.state), fresh
    or from the checkpoint the plan resumes. `loop()` steps, logs, evaluates and saves, and
    stops; the state is what it changes."""

    def __init__(self, plan: Plan):
        self.corpus, self.device, self.dtype = plan.corpus, plan.device, plan.dtype
        self.folder, self.team, self.quiet = plan.folder, plan.team, plan.quiet
        config = plan.config
        self.batches = StreamBatches(
            self.corpus.train, config.batch_size, config.seq_len, plan.rows,
            multiple=self.team.world,
            styles=None if self.corpus.styles is None else self.corpus.styles.positions(
                config.seed, len(self.corpus.train)))
        if self.device.type == "cpu":
            keep_freed_memory()
        self.start_context = song_start_context(self.corpus.train)
        self.net: torch.nn.Module | None = None  # what a step calls: the model, or DDP around it
        self.rollbacks = 0
        self.warned_diverging = False
        self.signals: StopSignals | None = None
        self.started: float | None = None
        self.songcraft: dict | None = None  # the corpus's, measured at the first save
        self.state = TrainState(plan).start(plan.saved)
        if plan.saved is not None:
            self.state.resumed(plan.saved.train_config, self.quiet)

    # What the loop and those who watch it (tests, hooks) read of the state.
    config = property(lambda self: self.state.config)
    step = property(lambda self: self.state.step)
    epoch = property(lambda self: self.state.epoch)
    position = property(lambda self: self.state.position)

    def _checkpoint(self, elapsed: float) -> Checkpoint | None:
        if self.state.team.main and self.songcraft is None:  # measured once, by process 0
            self.songcraft = corpus_songcraft(self.corpus)
        return self.state.to_checkpoint(self.corpus, self.start_context, elapsed,
                                        songcraft=self.songcraft if self.state.team.main else None)

    # -- the loop ------------------------------------------------------------------------------

    def loop(self) -> TrainResult:
        c = self.config
        target = c.step_limit(len(self.batches))
        eval_every = c.eval_every or min(len(self.batches), 1000)
        progress = Progress(len(self.batches), target, c.batch_size * c.seq_len, self.quiet,
                            self.step, self.epoch, self.position, c.time_limit)
        self.started = time.monotonic()
        self.loss_sum = torch.zeros((), device=self.device)
        self.loss_count = 0
        last_train = last_val = None
        self.net = self.team.wrap(self.state.model, self.device)
        threads_before = torch.get_num_threads()
        # (A run with nothing left to do needs no thread count, nor its probe.)
        tuner = (thread_tuner(self.state, self.quiet)
                 if stop_reason(self.config, self.state) is None else None)
        signals = StopSignals(speak=self.team.main)
        try:
            with signals:
                self.signals = signals
                while (reason := stop_reason(self.config, self.state)) is None:
                    # Step.
                    began = time.perf_counter()
                    self.loss_sum += self._train_step()
                    if tuner is not None:
                        tuner.step_took(time.perf_counter() - began)
                    self.loss_count += 1
                    progress.advance(self.step, self.epoch, self.position)
                    evaluating = self.step % eval_every == 0
                    reading = evaluating or self.step % c.log_every == 0
                    # Log: the one host synchronisation, where the running loss is read (and,
                    # with several processes, agreement on whether to stop).
                    signum, time_up = signals.signum, self._time_up()
                    if reading:
                        last_train, signum, time_up = self._read_loss(signum, time_up)
                        if not math.isfinite(last_train):
                            self._roll_back(f"the training loss became {last_train}")
                            progress.show(self.step, self.epoch, self.position)
                            continue
                    elif self.team.world > 1:
                        signum, time_up = None, False  # acted on once all processes agree
                    # Evaluate and save.
                    if evaluating:
                        self._restart_loss()
                        last_val = self._evaluate_and_save(last_train)
                    if reading:
                        progress.report(last_train, last_val)
                    # Stop.
                    if signum:
                        self._save_now()
                        raise interrupted(signum, self.step, self.folder.last, self.team.main)
                    if time_up:
                        reason = "reached the time limit"
                        break
                if not self.state.history or self.state.history[-1]["step"] != self.step:
                    if self.loss_count:
                        last_train = self._read_loss(None, False)[0]
                    last_val = self._evaluate_and_save(last_train, scheduled=False)
        except KeyboardInterrupt:  # a second signal: stop now
            raise stopped_at_once(signals.signum or signal.SIGINT, self.step,
                                  self.state.saved_step, self.folder.last, self.team.main) from None
        finally:
            progress.close()
            torch.set_num_threads(threads_before)  # the caller's count, whatever the run used
            # Drop the DDP wrapper now: it must not outlive the process group it talks through.
            self.net = None
            self.signals = None
        say(f"stopped: {reason} at step {self.step} ({epochs_done(self.epoch)}); best validation "
            f"loss {describe_loss(self.state.best_val)}; checkpoints saved in {self.folder.path}/",
            self.quiet)
        return TrainResult(self.step, self.epoch, self.state.best_val, last_val, self.folder.path,
                           reason, time.monotonic() - self.started)

    def _elapsed(self) -> float:
        return self.state.elapsed_before + time.monotonic() - self.started

    def _time_up(self) -> bool:
        limit = self.config.time_limit
        return limit is not None and time.monotonic() - self.started >= limit

    def _read_loss(self, signum: int | None, time_up: bool) -> tuple[float, int | None, bool]:
        limit = self.config.time_limit
        spent = 0.0 if limit is None else (time.monotonic() - self.started) / limit
        loss, signum, time_up, self.state.time_spent = read_loss(
            self.team, self.loss_sum, self.loss_count, signum, time_up, spent)
        return loss, signum, time_up

    def _restart_loss(self) -> None:
        self.loss_sum.zero_()
        self.loss_count = 0

    def _train_step(self) -> torch.Tensor:
        return train_step(self.state, self.batches, self.net)

    def _roll_back(self, what: str) -> None:
        """Go back to the last checkpoint (never a non-finite one) with half the learning rate."""
        self.rollbacks += 1
        lr = self.state.lr
        if self.rollbacks > MAX_ROLLBACKS:
            raise ConfigError(
                f"{what} at step {self.step} again after {MAX_ROLLBACKS} roll-backs, with the "
                f"learning rate down to {lr:g}; start again with a lower learning rate "
                f"(e.g. {lr / 10:g}) and gradient clipping (e.g. 1.0)")
        failed_at = self.step
        self.state.config = replace(self.config, lr=self.config.lr / 2)
        saved = self.team.gather_objects(self.folder.last.exists())[0]  # process 0's view
        self.state.start(ckpt.load(self.folder.last) if saved else None)
        self._restart_loss()
        warnings.warn(f"{what} at step {failed_at}; rolled back to step {self.step} and halved "
                      f"the learning rate to {self.state.lr:g}",
                      SonggenWarning)

    def _evaluate_and_save(self, train_loss: float | None, scheduled: bool = True
                           ) -> float | None:
        """Score the validation text, log it, save last.pt (and best.pt). A scheduled
        evaluation (every `eval_every` steps) also counts for the learning-rate schedule and
        early stopping; the one made because the run stopped between two does not."""
        val, per_style = validation_loss(self.state.model, self.corpus, self.device, self.dtype,
                                         self.team)
        if not math.isfinite(val):
            self._roll_back(f"the validation loss became {val}")
            return None
        elapsed = self._elapsed()
        improved = self.state.best_val is None or val < self.state.best_val
        if improved:
            self.state.best_val = val
        record = history_record(self.state, train_loss, val, per_style, elapsed)
        self.state.history = (self.state.history + [record])[-HISTORY:]
        halved = scheduled and self.state.schedule.evaluated(val) == "halved"
        if halved:
            self.state.apply_lr()
        self._save(self._checkpoint(elapsed), improved, record)
        tell_evaluation(self.step, val, improved, per_style, self.config.lr *
                        self.state.schedule.scale if halved else None, self.quiet)
        warning = diverging(val, len(self.corpus.vocab), self.state.lr)
        if warning and not self.warned_diverging and self.team.main:
            self.warned_diverging = True
            warnings.warn(warning, SonggenWarning)
        return val

    def _save_now(self) -> None:
        self._save(self._checkpoint(self._elapsed()), best=False)

    def _save(self, checkpoint: Checkpoint | None, best: bool, record: dict | None = None
              ) -> None:
        """Process 0 writes the run folder, a stop signal held back until it is written."""
        if not self.team.main:
            return
        with self.signals.writing() if self.signals is not None else contextlib.nullcontext():
            if record is not None:
                self.folder.append_metrics(json.dumps(record))
            self.folder.save(checkpoint, best=best, keep=self.config.keep_last)
            self.state.saved_step = self.step
