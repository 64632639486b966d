"""A training run: built whole (fresh, resumed or fine-tuned), then looped: step, log,
evaluate and save, stop. Ctrl-C and SIGTERM finish the step, save and stop; a loss that
becomes NaN or infinite rolls the run back to its last checkpoint at half the learning rate.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import checkpoint as ckpt
from .batches import MIN_STEPS, StreamBatches, fitting_shape, steps_per_epoch
from .checkpoint import Checkpoint, RunFolder
from .config import ModelConfig, TrainConfig
from .defaults import (LOWEST, PLATEAU, SIZES, Choice, LrSchedule, budget_characters,
                       choose_dropout, choose_lr, choose_schedule, choose_size,
                       choose_weight_decay)
from .devices import (ThreadTuner, autocast, cpu_cores, free_cores, keep_freed_memory,
                      resolve_precision)
from .distributed import Team
from .errors import (CheckpointError, ConfigError, CorpusMissing, SonggenError, SonggenWarning,
                     TrainingInterrupted)
from .evaluation import LN2, evaluate
from .corpuscache import folder_for
from .lyrics import Corpus, Vocab, available_memory, demo_corpus, load_corpus
from .model import (CharLSTM, bf16_speedup, context_state, detach, load_grown, parameter_count,
                    step_seconds, training_bytes)
from .progress import Progress, describe_loss, epochs_done, format_duration, say

MAX_ROLLBACKS = 3
# Validation during training scores at most this many characters, spread over the validation
# text: enough for a stable mean, and quick even when a huge corpus leaves 100M to score.
VAL_CHARS = 2_000_000
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


def train(source: str | Path | None = None, *, model: dict | ModelConfig | None = None,
          config: TrainConfig | None = None, resume: bool = False,
          init_from: str | Path | None = None, explicit: set[str] | None = None,
          quiet: bool = False) -> TrainResult:
    """Train a model on a lyrics file or folder (the bundled demo corpus when `source` is None).

    model: architecture options (a ModelConfig or a dict of its fields).
    resume: continue the run saved in the checkpoint folder, exactly where it stopped (on the
        text it recorded when `source` is None). Options that leave the model's shape and the
        data layout alone (learning rate, weight decay, clipping, patience, evaluation and
        keep-last, encoding) may change on resume; the rest keep the checkpoint's values.
    init_from: fine-tune: start from this checkpoint's weights (its vocabulary grown by the new
        corpus's characters) with a fresh optimiser at step 0.
    explicit: names of options the caller set on purpose; on resume or fine-tuning, those that
        disagree with the checkpoint are reported (and, on resume, those not set keep the
        checkpoint's values). Without it every given option counts. A fresh run whose batch
        size and sequence length were not set on purpose shrinks them for a short text.
    """
    config = config or TrainConfig()
    given_model = model.to_dict() if isinstance(model, ModelConfig) else dict(model or {})
    given_model.pop("vocab_size", None)
    given_model = {k: v for k, v in given_model.items() if v is not None}  # None: automatic
    if resume and init_from is not None:
        raise ConfigError("resuming a run and starting from a base model cannot be combined; "
                          "choose one")
    team, device = Team.start(config.device)
    try:
        # Only process 0 of a distributed run owns the folder (lock, checks, saving) and speaks.
        quiet = quiet or not team.main
        with contextlib.ExitStack() as held:
            with team.together():
                folder = RunFolder(config.checkpoint_dir)
                if team.main:
                    held.enter_context(folder.lock())
                run = build_run(source, given_model, config, resume, init_from, explicit,
                                device, folder, team, quiet)
            try:
                result = run.loop()
                team.finish()
                return result
            except (_OUT_OF_MEMORY, MemoryError, RuntimeError) as exc:
                if team.lost_contact(exc):
                    raise SonggenError("lost contact with another process of the run, which "
                                       "stopped (see its message); the last checkpoint is "
                                       "intact, resume from it") from None
                if isinstance(exc, RuntimeError) and "allocate" not in str(exc):
                    raise
                raise SonggenError(f"out of memory on {device}: the model or batch is too large "
                                   "for this machine; use a smaller hidden size, batch size or "
                                   "sequence length (the last checkpoint, if any, is intact)") from None
    finally:
        team.close()


# -- building a run ----------------------------------------------------------------------------

def _reconcile(given: dict, saved: dict, what: str) -> dict:
    """Checkpoint values win on resume; warn about each explicit option that disagrees."""
    for name, value in given.items():
        if name in saved and saved[name] != value:
            warnings.warn(f"{what} {name.replace('_', ' ')} = {value} differs from the checkpoint's "
                          f"{saved[name]}; keeping the checkpoint's value", SonggenWarning)
    return saved


_NAMES = {"lr": "learning rate", "eval_every": "evaluation every", "keep_last": "keep-last",
          "lr_schedule": "learning-rate schedule"}


def _resumed_config(config: TrainConfig, old: TrainConfig, explicit: set[str] | None,
                    quiet: bool) -> TrainConfig:
    """The configuration a resume goes on with: the checkpoint's data layout (with a warning
    where an option asked for another), the options it may change as asked (one line says what
    changed) or else as the checkpoint had them, and this command's limits and device."""
    chosen = explicit if explicit is not None else set(config.to_dict())
    mine = {k: getattr(config, k) for k in TrainConfig.FIXED_ON_RESUME if k in chosen}
    kept = _reconcile(mine, {k: getattr(old, k) for k in TrainConfig.FIXED_ON_RESUME},
                      "training option")
    changes = []
    for name in TrainConfig.CHANGEABLE_ON_RESUME:
        before, after = getattr(old, name), getattr(config, name)
        if name not in chosen or after in (None, "auto") or after == before:
            # Not given, or left to songgen: as the run had it (a run from before schedules
            # keeps its fixed learning rate unless a schedule is named).
            kept[name] = before
        else:
            changes.append(f"{_NAMES.get(name, name.replace('_', ' '))} "
                           f"{'auto' if before is None else before} -> {after}")
    if changes:
        say("changed on resume: " + ", ".join(changes), quiet)
    return TrainConfig(**{**config.to_dict(), **kept})


def _short_text_shape(config: TrainConfig, chars: int, explicit: set[str] | None, team: Team,
                      quiet: bool) -> TrainConfig:
    """A new run on a text too short for the default batch shape, whose batch size and
    sequence length were not chosen on purpose, gets a smaller shape that makes at least a few
    steps an epoch (the batch shrinks first, then the sequence length)."""
    if explicit is None or {"batch_size", "seq_len"} & explicit:
        return config
    steps = steps_per_epoch(chars, config.batch_size, config.seq_len)
    if steps >= MIN_STEPS:
        return config
    fits = fitting_shape(chars, config.batch_size, config.seq_len, team.world)
    if fits is None or fits == (config.batch_size, config.seq_len):
        return config  # the batches report the problem
    batch, seq = fits
    say(f"short text: batch size {batch} x sequence length {seq} instead of "
        f"{config.batch_size} x {config.seq_len}, for "
        f"{steps_per_epoch(chars, batch, seq)} steps an epoch", quiet)
    return replace(config, batch_size=batch, seq_len=seq)


def build_run(source, given_model: dict, config: TrainConfig, resume: bool, init_from,
              explicit: set[str] | None, device: torch.device, folder: RunFolder, team: Team,
              quiet: bool) -> "Run":
    """Read the checkpoint to start from and the corpus; settle the configurations."""
    resolve_precision(config.precision, device)  # a bad choice fails before the corpus is read
    picked = {k: v for k, v in given_model.items() if explicit is None or k in explicit}
    base = ckpt.load(init_from) if init_from is not None else None
    saved = folder.load_for_resume() if resume else None
    if saved is None and team.main:
        folder.check_fresh()
    if saved is not None and source is None:
        source = _recorded_corpus(saved, folder, quiet)
    source = Path(source) if source is not None else demo_corpus()
    if saved is not None:
        model_config = ModelConfig.from_dict(
            _reconcile(picked, saved.model_config.to_dict(), "model option"))
        config = _resumed_config(config, saved.train_config or TrainConfig(), explicit, quiet)
    team.rows(config.batch_size)  # before the corpus: a long load would end in this error
    # Encoded once into a file that the processes of the machine map and resumes reuse.
    cache = folder_for(config.corpus_cache, folder.path)
    if saved is not None:
        corpus = load_corpus(source, config.val_frac, vocab=Vocab(saved.vocab),
                             expect_fingerprint=saved.fingerprint, trained_on=saved.corpus,
                             copies=team.local_world, encoding=config.encoding, cache=cache)
    elif base is not None:
        corpus = load_corpus(source, config.val_frac, vocab=Vocab(base.vocab), extend=True,
                             copies=team.local_world, encoding=config.encoding, cache=cache)
        arch = _reconcile(picked, base.model_config.to_dict(), "model option")
        model_config = ModelConfig.from_dict({**arch, "vocab_size": len(corpus.vocab)})
        added = len(corpus.vocab) - len(base.vocab)
        say(f"fine-tuning from {init_from} (step {base.step}); {added} new "
            f"character{'' if added == 1 else 's'} added to its vocabulary", quiet)
    else:
        corpus = load_corpus(source, config.val_frac, copies=team.local_world,
                             encoding=config.encoding, cache=cache)
        model_config = ModelConfig(vocab_size=len(corpus.vocab), **given_model)
    say(corpus.summary(), quiet)
    if corpus.cache_file:
        say(f"corpus {'mapped from' if corpus.cached else 'encoded into'} {corpus.cache_file}",
            quiet)
    choices = dict(saved.choices or {}) if saved is not None else {}
    if saved is None:
        config = _short_text_shape(config, len(corpus.train), explicit, team, quiet)
        model_config, config, made = _automatic_choices(model_config, config, given_model,
                                                        explicit, len(corpus.train), device,
                                                        team, fresh=base is None)
        for choice in made:
            say(choice.line(), quiet)
            choices[choice.name] = choice.to_dict()
    dtype, why = resolve_precision(config.precision, device,
                                   lambda: bf16_speedup(model_config))
    say(f"precision {why}", quiet)
    if config.time_limit is not None:
        say(f"time limit {format_duration(config.time_limit)}", quiet)
    if team.world > 1:
        say(f"distributed: {team.world} processes on {device.type}, "
            f"{config.batch_size // team.world} of the {config.batch_size} batch rows each", quiet)
    _check_fits(model_config, config, device, team)
    return Run(corpus, model_config, config, device, dtype, folder, team, quiet,
               resume_from=saved, base=base, base_path=init_from, choices=choices)


def _automatic_choices(model_config: ModelConfig, config: TrainConfig, given_model: dict,
                       explicit: set[str] | None, train_chars: int, device: torch.device,
                       team: Team, fresh: bool = True
                       ) -> tuple[ModelConfig, TrainConfig, list[Choice]]:
    """A new run's options not given on purpose, chosen by songgen.defaults: the hidden size
    from the budget, the learning rate from the size, dropout and weight decay from the corpus
    size (dropout also from how often the budget reads the text). Fine-tuning keeps its base's
    size and dropout. Every process of a distributed run takes the first one's choices."""
    def auto(name: str, value) -> bool:
        return value is None or (explicit is not None and name not in explicit)

    steps = config.step_limit(steps_per_epoch(train_chars, config.batch_size, config.seq_len))
    chars_per_step = config.batch_size * config.seq_len
    shape = model_config  # the size timed is the only thing that differs

    @functools.cache
    def timed(size: int) -> float:
        return step_seconds(replace(shape, hidden_size=size),
                            config.batch_size // team.world, config.seq_len, device)

    made = []
    if fresh and auto("hidden_size", given_model.get("hidden_size")):
        sizes = {size: parameter_count(replace(model_config, hidden_size=size)) for size in SIZES}
        choice = choose_size(sizes, chars_per_step=chars_per_step, steps=steps,
                             seconds=config.time_limit, step_seconds=timed)
        model_config = replace(model_config, hidden_size=choice.value)
        made.append(choice)
    if auto("lr", config.lr):
        choice = choose_lr(model_config.hidden_size)
        config = replace(config, lr=choice.value)
        made.append(choice)
    parameters = parameter_count(model_config)
    if fresh and auto("dropout", given_model.get("dropout")):
        trained = budget_characters(
            chars_per_step, steps=steps, seconds=config.time_limit,
            step_seconds=None if config.time_limit is None else timed(model_config.hidden_size))
        passes = None if trained is None else trained / max(train_chars, 1)
        choice = choose_dropout(train_chars, parameters, passes)
        model_config = replace(model_config, dropout=choice.value)
        made.append(choice)
    if auto("weight_decay", config.weight_decay):
        choice = choose_weight_decay(train_chars, parameters)
        config = replace(config, weight_decay=choice.value)
        made.append(choice)
    return team.gather_objects((model_config, config, made))[0]


def _recorded_corpus(saved: Checkpoint, folder: RunFolder, quiet: bool) -> str:
    """The text a resumed run was trained on, as its checkpoint recorded it."""
    if not saved.corpus:
        what = f"the run in {folder.path} does not record the text it was trained on"
    elif not Path(saved.corpus).exists():
        what = f"the run in {folder.path} was trained on {saved.corpus}, which no longer exists"
    else:
        say(f"resuming on {saved.corpus}, the text the run was trained on", quiet)
        return saved.corpus
    raise CorpusMissing(f"{what}; give the text to resume on (moved or copied, it is checked "
                        "to be the same text)", what=what)


def _check_fits(model_config: ModelConfig, config: TrainConfig, device: torch.device,
                team: Team) -> None:
    """Refuse, before building it, a model that could not train in the memory left: otherwise
    the system kills the process mid-allocation with no word of why."""
    need = training_bytes(model_config, config.batch_size // team.world, config.seq_len)
    processes = ""
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
    elif device.type == "cpu":  # every process of this machine trains its own copy
        free, need = available_memory(), need * team.local_world
        processes = f" ({team.local_world} processes)" if team.local_world > 1 else ""
    else:
        return
    if free is not None and need > free:
        shape = f"{model_config.layers}x{model_config.hidden_size}"
        raise ConfigError(f"training a {shape} model with batch {config.batch_size} x "
                          f"{config.seq_len} needs about {need / 1e9:.1f} GB of memory{processes} "
                          f"but {device} has {free / 1e9:.1f} GB free; use a smaller hidden size, "
                          "fewer layers or a smaller batch")


def fused_if_supported(device: torch.device) -> dict:
    """AdamW's fused kernel (one pass over all parameters) where this PyTorch has it for the
    device: CUDA, and the CPU from PyTorch 2.4."""
    if device.type == "cuda" or (device.type == "cpu" and
                                 tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 4)):
        return {"fused": True}
    return {}


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


class StopSignals:
    """While active, a first SIGINT/SIGTERM only sets `signum`: the loop finishes its step,
    saves, and stops. It is acknowledged on stderr at once, even while the main thread is deep
    in a long PyTorch operation (where Python runs no signal handler): a thread reads the
    signal wake-up file descriptor and says it. A second signal stops at once: the handler
    raises KeyboardInterrupt, and the step in progress is not saved; during a checkpoint write
    (`writing()`) it waits for the write to end, so a save is never torn."""

    HANDLED = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, speak: bool = True):
        self.signum: int | None = None
        self.speak = speak
        self._previous = {}
        self._writing = self._pending = False
        self._wakeup: tuple[int, int, int] | None = None  # read end, write end, previous fd
        self._watcher: threading.Thread | None = None

    @staticmethod
    def acknowledgement(signum: int) -> str:
        if signum == signal.SIGINT:
            return "stopping after this step; Ctrl-C again to stop now without saving this step"
        return (f"{signal.Signals(signum).name} received: stopping after this step; send it "
                "again to stop now without saving this step")

    def _say(self, signum: int) -> None:
        if self.speak:
            try:
                tqdm.write(self.acknowledgement(signum), file=sys.stderr)
            except (OSError, ValueError):  # stderr closed: nothing to tell
                pass

    def _handle(self, signum, frame):
        if self.signum is None:
            self.signum = signum
            if self._watcher is None:
                self._say(signum)
        elif self._writing:
            self._pending = True
        else:
            raise KeyboardInterrupt

    def _watch(self, fd: int) -> None:
        seen = False
        while True:
            try:
                data = os.read(fd, 64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum in self.HANDLED and not seen:
                    seen = True
                    self._say(signum)

    @contextlib.contextmanager
    def writing(self):
        """A checkpoint write: a second signal during it stops the run only once it is done."""
        self._writing = True
        try:
            yield
        finally:
            self._writing = False
        if self._pending:
            self._pending = False
            raise KeyboardInterrupt

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.HANDLED:
                self._previous[sig] = signal.signal(sig, self._handle)
            read, write = os.pipe()
            os.set_blocking(write, False)
            try:
                self._wakeup = (read, write, signal.set_wakeup_fd(write,
                                                                  warn_on_full_buffer=False))
            except (ValueError, OSError):
                os.close(read)
                os.close(write)
            else:
                self._watcher = threading.Thread(target=self._watch, args=(read,), daemon=True,
                                                 name="songgen-signals")
                self._watcher.start()
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self._wakeup is not None:
            read, write, previous = self._wakeup
            signal.set_wakeup_fd(previous)
            os.close(write)  # the watcher reads the end of the pipe and returns
            self._watcher.join(timeout=5)
            os.close(read)
            self._wakeup = self._watcher = None
        return False


# -- the run -----------------------------------------------------------------------------------

class Run:
    """One training run, complete from construction: the corpus as batches, the model, its
    optimiser and the counters, either from scratch (seeded; grown from `base` when
    fine-tuning) or from the checkpoint `resume_from`. Then `loop()`."""

    def __init__(self, corpus: Corpus, model_config: ModelConfig, config: TrainConfig,
                 device: torch.device, dtype: torch.dtype, folder: RunFolder, team: Team,
                 quiet: bool, *, resume_from: Checkpoint | None = None,
                 base: Checkpoint | None = None, base_path=None, choices: dict | None = None):
        self.corpus, self.model_config, self.config = corpus, model_config, config
        self.device, self.dtype, self.folder, self.team, self.quiet = (device, dtype, folder,
                                                                       team, quiet)
        self.rows = team.rows(config.batch_size)
        self.batches = StreamBatches(corpus.train, config.batch_size, config.seq_len, self.rows,
                                     multiple=team.world)
        if device.type == "cpu":
            keep_freed_memory()
        self.start_context = song_start_context(corpus.train)
        if len(corpus.val) > VAL_CHARS + 1:
            say(f"validation scores {VAL_CHARS:,} of its {len(corpus.val):,} characters, in "
                "stretches spread evenly over it", quiet)
        self.base, self.base_path = base, base_path
        # A fine-tuned run remembers the model it came from, across its resumes too.
        self.init_from = resume_from.init_from if resume_from is not None else None
        if base is not None:
            self.init_from = {"path": str(Path(base_path).resolve()), "step": base.step,
                              "fingerprint": base.fingerprint, "corpus": base.corpus}
        self.model = CharLSTM(model_config).to(device)
        self.net: torch.nn.Module | None = None  # what a step calls: the model, or DDP around it
        self.rollbacks = 0
        self.warned_diverging = False
        self.signals: StopSignals | None = None
        self.started: float | None = None
        self.time_spent = 0.0  # share of the time limit, as last read
        # The learning-rate schedule: chosen for this invocation (its limits), its state saved.
        self.budget_steps = None
        if config.lr_schedule == "budget":
            self.budget_steps = config.step_limit(len(self.batches))
        schedule = choose_schedule(config.lr_schedule, time_limit=config.time_limit,
                                   steps=self.budget_steps, patience=config.patience)
        self.schedule_kind = schedule.value
        self.choices = {**(choices or {}), schedule.name: schedule.to_dict()}
        say(schedule.line(), quiet)
        self._start(resume_from)
        if resume_from is not None:
            say(f"resuming at step {self.step} ({epochs_done(self.epoch)})", quiet)
            old = resume_from.train_config
            if old is not None and old.lr != config.lr and self.schedule.scale != 1:
                # A learning rate given on resume is the rate from here.
                self.schedule.scale, self.schedule.bad = 1.0, 0
                self._apply_lr()
            if self.schedule.exhausted(config.patience):
                # The last run stopped on patience; resuming asks for more training.
                self.schedule.bad = 0
                say(f"validation had stopped improving; continuing until it fails to improve "
                    f"for {config.patience} more evaluations", quiet)

    def _start(self, saved: Checkpoint | None) -> None:
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
            self.schedule = LrSchedule(kind=self.schedule_kind)
            self.history: list[dict] = []
            self.elapsed_before = 0.0
            self.saved_step: int | None = None  # the step of the last checkpoint written
            self._apply_lr()
            return
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
        if saved.position >= len(self.batches):
            raise CheckpointError("the checkpoint's stream position is past the end of the corpus")
        self.step, self.epoch, self.position = saved.step, saved.epoch, saved.position
        stream = saved.stream_state
        self.stream = None if stream is None else (stream[0][:, self.rows].to(self.device),
                                                   stream[1][:, self.rows].to(self.device))
        self.best_val = saved.best_val_loss
        self.schedule = LrSchedule.from_dict(saved.schedule, self.schedule_kind,
                                             bad=saved.bad_evals, best=saved.best_val_loss)
        self.history = list(saved.history)
        self.elapsed_before = saved.elapsed
        self.saved_step = saved.step
        self._apply_lr()

    def _initial_weights(self) -> dict:
        """A new model's weights (seeded), with the fine-tuning base's copied in."""
        torch.manual_seed(self.config.seed)
        fresh = CharLSTM(self.model_config)
        if self.base is not None:
            try:
                load_grown(fresh, self.base.model_state)
            except (KeyError, RuntimeError, ValueError) as exc:
                raise CheckpointError(f"{self.base_path} does not fit its own model "
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

    def _songcraft(self) -> dict:
        """The corpus's rhyme, chorus and word habits (songgen/songcraft.py), measured once."""
        if getattr(self, "_craft", None) is None:
            from .songcraft import measure_ids

            self._craft = measure_ids(self.corpus.train, self.corpus.vocab.chars).to_dict()
        return self._craft

    def _checkpoint(self, elapsed: float) -> Checkpoint | None:
        """The run as a checkpoint; with several processes, their stream states and random
        states are gathered into process 0's (the others return None)."""
        stream = None if self.stream is None else [self.team.gather_rows(t, 1).cpu()
                                                   for t in self.stream]
        rng = self._rng()
        ranks = self.team.gather_objects(rng)
        if not self.team.main:
            return None
        if self.team.world > 1:
            rng["ranks"] = ranks
        start = context_state(self.model, self.start_context, self.device)
        return Checkpoint(
            model_config=self.model.config, train_config=self.config,
            vocab=self.corpus.vocab.chars, fingerprint=self.corpus.fingerprint,
            corpus=self.corpus.source, model_state=self.model.state_dict(),
            optimizer_state=self.optimizer.state_dict(),
            scaler_state=self.scaler.state_dict() if self.scaler.is_enabled() else None,
            step=self.step, epoch=self.epoch, position=self.position, stream_state=stream,
            start_state=[t.cpu() for t in start], rng=rng, best_val_loss=self.best_val,
            bad_evals=self.schedule.bad, history=self.history, elapsed=elapsed,
            init_from=self.init_from,
            shape=None if self.corpus.shape is None else self.corpus.shape.to_dict(),
            schedule=self.schedule.to_dict(), choices=self.choices, songcraft=self._songcraft())

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
        self.net = self.team.wrap(self.model, self.device)
        tuner = self._thread_tuner()
        signals = StopSignals(speak=self.team.main)
        try:
            with signals:
                self.signals = signals
                while (reason := self._stop_reason()) is None:
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
                        raise self._interrupted(signum)
                    if time_up:
                        reason = "reached the time limit"
                        break
                if not self.history or self.history[-1]["step"] != self.step:
                    if self.loss_count:
                        last_train = self._read_loss(None, False)[0]
                    last_val = self._evaluate_and_save(last_train, scheduled=False)
        except KeyboardInterrupt:  # a second signal: stop now
            raise self._stopped_now(signals.signum or signal.SIGINT) from None
        finally:
            progress.close()
            if tuner is not None:
                tuner.close()
            # Drop the DDP wrapper now: it must not outlive the process group it talks through.
            self.net = None
            self.signals = None
        say(f"stopped: {reason} at step {self.step} ({epochs_done(self.epoch)}); best validation "
            f"loss {describe_loss(self.best_val)}; checkpoints saved in {self.folder.path}/",
            self.quiet)
        return TrainResult(self.step, self.epoch, self.best_val, last_val, self.folder.path,
                           reason, time.monotonic() - self.started)

    def _thread_tuner(self) -> ThreadTuner | None:
        """On the CPU, the thread count: as asked, or the cores free now, kept at what runs
        fastest while training (see ThreadTuner)."""
        if self.device.type != "cpu":
            return None
        most = cpu_cores()
        if self.config.threads is not None:
            torch.set_num_threads(self.config.threads)
            say(f"threads: {self.config.threads}, as asked", self.quiet)
            return None
        start = free_cores()
        say(f"threads: {start} ({start} of {most} cores free; fewer if another process takes "
            "one while training)", self.quiet)
        return ThreadTuner(start, most)

    def _elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def _time_up(self) -> bool:
        limit = self.config.time_limit
        return limit is not None and time.monotonic() - self.started >= limit

    def _read_loss(self, signum: int | None, time_up: bool) -> tuple[float, int | None, bool]:
        """The mean training loss since the last evaluation, over all processes, and whether
        any process was signalled or ran out of time."""
        limit = self.config.time_limit
        spent = 0.0 if limit is None else (time.monotonic() - self.started) / limit
        if self.team.world == 1:
            self.time_spent = spent
            return self.loss_sum.item() / self.loss_count, signum, time_up
        totals = self.team.total(torch.stack([self.loss_sum.float(), torch.tensor(
            float(self.loss_count), device=self.device)])).tolist()
        # The share of the time limit spent is agreed too: every process must step with the
        # same learning rate.
        flags = self.team.largest(torch.tensor([signum or 0, int(time_up), spent],
                                               dtype=torch.float64, device=self.device)).tolist()
        self.time_spent = flags[2]
        return totals[0] / totals[1], int(flags[0]) or None, bool(flags[1])

    def _restart_loss(self) -> None:
        self.loss_sum.zero_()
        self.loss_count = 0

    def _stopped_now(self, signum: int) -> TrainingInterrupted:
        """A second signal stopped the run in the middle of a step (or of an evaluation)."""
        if self.saved_step == self.step:
            return self._interrupted(signum)
        name = signal.Signals(signum).name
        if self.saved_step is None:
            error = TrainingInterrupted(f"{name} received again: training stopped at once, "
                                        "before any checkpoint was saved", signum,
                                        resumable=False)
        else:
            error = TrainingInterrupted(
                f"{name} received again: training stopped at once at step {self.step}, not "
                f"saved; {self.folder.last} holds step {self.saved_step}", signum)
        error.silent = not self.team.main
        return error

    def _writing(self):
        return self.signals.writing() if self.signals is not None else contextlib.nullcontext()

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
        if self.schedule.exhausted(c.patience):
            lowest = "" if self.schedule.kind == "none" else (
                f" at the lowest learning rate ({self.config.lr * LOWEST:g})")
            return f"validation loss stopped improving for {c.patience} evaluations{lowest}"
        return None

    def _train_step(self) -> torch.Tensor:
        c = self.config
        if self.schedule.kind == "budget":
            self._apply_lr()
        x, y = self.batches.batch(self.position, self.device)
        self.model.train()
        with autocast(self.device, self.dtype):
            logits, stream = self.net(x, self.stream)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if c.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.stream = detach(stream)
        self.step += 1
        self.position += 1
        if self.position == len(self.batches):
            # Epoch boundary: start the streams again from the top with a fresh state.
            self.epoch, self.position, self.stream = self.epoch + 1, 0, None
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
        self.config = replace(self.config, lr=self.config.lr / 2)
        saved = self.team.gather_objects(self.folder.last.exists())[0]  # process 0's view
        self._start(ckpt.load(self.folder.last) if saved else None)
        self._restart_loss()
        warnings.warn(f"{what} at step {failed_at}; rolled back to step {self.step} and halved "
                      f"the learning rate to {self.optimizer.param_groups[0]['lr']:g}",
                      SonggenWarning)

    def _progress(self) -> float | None:
        """How far through its budget this invocation is (0 to 1), for the budget schedule: the
        time limit counts from this invocation's start (read with the loss, every `log_every`
        steps), a step limit from the run's."""
        parts = []
        if self.config.time_limit is not None:
            parts.append(self.time_spent)
        if self.budget_steps:
            parts.append(self.step / self.budget_steps)
        return max(parts) if parts else None

    def _apply_lr(self) -> float:
        """Set the optimiser's learning rate from the base rate and the schedule."""
        lr = self.config.lr * self.schedule.factor(self._progress())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _evaluate_and_save(self, train_loss: float | None, scheduled: bool = True
                           ) -> float | None:
        """Score the validation text, log it, save last.pt (and best.pt). A scheduled
        evaluation (every `eval_every` steps) also counts for the learning-rate schedule and
        early stopping; the one made because the run stopped between two does not."""
        val = evaluate(self.model, self.corpus.val, self.device, self.dtype,
                       rows=128, chunk=256, team=self.team, limit=VAL_CHARS)
        if not math.isfinite(val):
            self._roll_back(f"the validation loss became {val}")
            return None
        elapsed = self._elapsed()
        improved = self.best_val is None or val < self.best_val
        if improved:
            self.best_val = val
        record = {"step": self.step, "epoch": self.epoch, "train_loss": train_loss,
                  "val_loss": val, "val_bpc": val / LN2,
                  "chars_per_sec": self._chars_per_sec(elapsed),
                  "lr": self.optimizer.param_groups[0]["lr"], "elapsed": round(elapsed, 3),
                  "threads": torch.get_num_threads() if self.device.type == "cpu" else None}
        self.history = (self.history + [record])[-HISTORY:]
        halved = scheduled and self.schedule.evaluated(val) == "halved"
        if halved:
            self._apply_lr()
        checkpoint = self._checkpoint(elapsed)
        if self.team.main:
            with self._writing():
                self.folder.append_metrics(json.dumps(record))
                self.folder.save(checkpoint, best=improved, keep=self.config.keep_last)
                self.saved_step = self.step
        say(f"step {self.step}: validation {describe_loss(val)}" + (" (best)" if improved else ""),
            self.quiet)
        if halved:
            say(f"no better validation loss for {PLATEAU} evaluations: learning rate halved to "
                f"{self.config.lr * self.schedule.scale:g}", self.quiet)
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

    def _save_now(self) -> None:
        checkpoint = self._checkpoint(self._elapsed())
        if self.team.main:
            with self._writing():
                self.folder.save(checkpoint, best=False, keep=self.config.keep_last)
                self.saved_step = self.step
