"""A training run's set-up, in one downward pass: read the checkpoint to start from (when
resuming or fine-tuning; a new run on a small text starts from the bundled base model: `_start`)
and the corpus, settle the options (the checkpoint's on resume), then make the run's choices in
one place (`choose`: batch shape, size, learning rate, dropout, weight decay, precision, the
learning-rate schedule), from the corpus, the device and the budget. The result, a `Plan`, is
handed to the training loop (songgen.training.loop.Run).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..config import ModelConfig, TrainConfig
from ..errors import ConfigError, CorpusMissing, SonggenWarning
from ..model.devices import DTYPES, check_precision, decide_precision
from ..model.probes import bf16_speedup, parameter_count, step_seconds, training_bytes
from ..run import checkpoint as ckpt
from ..run.checkpoint import Checkpoint
from ..run.folder import RunFolder
from ..text import styles
from ..text.cache import CorpusCache, folder_for
from ..text.corpus import Corpus, demo_corpus, load_corpus
from ..text.reading import available_memory
from ..text.vocab import Vocab
from .batches import MIN_STEPS, fitting_shape, steps_per_epoch
from .defaults import (SIZES, Choice, budget_characters, choose_dropout, choose_lr,
                       choose_schedule, choose_size, choose_weight_decay)
from .progress import format_duration, say
from .team import Team

# Validation during training scores at most this many characters, spread over the validation
# text: enough for a stable mean, and quick even when a huge corpus leaves 100M to score.
VAL_CHARS = 2_000_000

# A new run on a text of fewer characters than this starts from the bundled base model, which
# has read more verse than a small collection holds; a larger text, with the budget to match,
# may do as well or better from scratch. Set from `python -m benchmarks base`.
BASE_MODEL_BELOW = 3_000_000

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


@dataclass
class Plan:
    """What a run is made of, settled before it starts: the corpus, the model's and the
    training's configurations, where the run starts from, and the choices made for it."""

    corpus: Corpus
    model_config: ModelConfig
    config: TrainConfig
    device: torch.device
    dtype: torch.dtype                  # what the run computes in (its precision)
    folder: RunFolder
    team: Team
    quiet: bool
    choices: dict                       # name -> {"value", "reason"}, kept in the checkpoint
    schedule: str                       # the learning-rate schedule of this invocation
    rows: slice                         # this process's share of the batch rows (all, alone)
    steps_an_epoch: int                 # of the batch shape over the training text
    budget_steps: int | None = None     # the step limit a budget schedule decays over
    saved: Checkpoint | None = None     # the checkpoint a resume continues
    base: Checkpoint | None = None      # the model a fine-tuning run starts from
    base_path: str | Path | None = None
    init_from: dict | None = None       # a fine-tuned run's base, as the checkpoint records it

    @property
    def row_count(self) -> int:
        """How many batch rows this process takes."""
        return self.rows.stop - self.rows.start


def plan_run(source, given_model: dict, config: TrainConfig, resume: bool, init_from,
             explicit: set[str] | None, device: torch.device, folder: RunFolder, team: Team,
             quiet: bool, from_scratch: bool = False) -> Plan:
    """Read the checkpoint to start from and the corpus; settle the configurations; make the
    run's choices."""
    check_precision(config.precision, device)  # a bad choice fails before the corpus is read
    picked = {k: v for k, v in given_model.items() if explicit is None or k in explicit}
    base = ckpt.load(init_from) if init_from is not None else None
    saved = folder.load_for_resume() if resume else None
    if saved is None and team.main:
        folder.check_fresh()
    if saved is not None and source is None:
        source = _recorded_corpus(saved, folder, quiet)
    source = Path(source) if source is not None else demo_corpus()
    start = base_model = None  # a new run's start, chosen here (a resume goes on as it began)
    if saved is None and base is None:
        start, base_model = _start(source, picked, from_scratch, quiet)
        if base_model is not None:
            base, init_from = base_model.checkpoint, base_model.path
    if saved is not None:
        model_config = ModelConfig.from_dict(
            _reconcile(picked, saved.model_config.to_dict(), "model option"))
        config = _resumed_config(config, saved.train_config or TrainConfig(), explicit, quiet)
    team.check_split(config.batch_size)  # before the corpus: a long load would end in this error
    # Encoded once into a file that the processes of the machine map and resumes reuse.
    cache = folder_for(config.corpus_cache, folder.cache)
    cache = None if cache is None else CorpusCache(cache)
    if saved is not None:
        mode, known = styles.for_resume(saved)
        corpus = load_corpus(source, config.val_frac, vocab=Vocab(saved.vocab),
                             expect_fingerprint=saved.fingerprint, trained_on=saved.corpus,
                             copies=team.local_world, encoding=config.encoding, cache=cache,
                             styles=mode, known_styles=known)
        styles.check_same(corpus.styles, saved)
    elif base is not None:
        corpus = load_corpus(source, config.val_frac, vocab=Vocab(base.vocab), extend=True,
                             copies=team.local_world, encoding=config.encoding, cache=cache,
                             styles=config.styles, known_styles=styles.style_names(base))
        arch = _reconcile(picked, base.model_config.to_dict(), "model option")
        model_config = ModelConfig.from_dict({**arch, "vocab_size": len(corpus.vocab),
                                              "styles": styles.count(corpus)})
        styles.keep_base_shapes(corpus.styles, base)
        added = len(corpus.vocab) - len(base.vocab)
        shown = init_from if base_model is None else f"the {start.value}"
        say(f"fine-tuning from {shown} (step {base.step}), keeping its size "
            f"({model_config.layers}x{model_config.hidden_size} LSTM, embedding "
            f"{model_config.embed_dim}) and dropout {model_config.dropout}; {added} new "
            f"character{'' if added == 1 else 's'} added to its vocabulary", quiet)
    else:
        corpus = load_corpus(source, config.val_frac, copies=team.local_world,
                             encoding=config.encoding, cache=cache, styles=config.styles)
        model_config = ModelConfig(vocab_size=len(corpus.vocab), styles=styles.count(corpus),
                                   **given_model)
    say(corpus.summary(), quiet)
    if corpus.cache_file:
        say(f"corpus {'mapped from' if corpus.cached else 'encoded into'} {corpus.cache_file}",
            quiet)
    if len(corpus.val) > VAL_CHARS + 1:
        say(f"validation scores {VAL_CHARS:,} of its {len(corpus.val):,} characters, in "
            "stretches spread evenly over it", quiet)
    plan = choose(corpus, model_config, config, given_model, explicit, device, folder, team,
                  quiet, saved=saved, base=base)
    if config.time_limit is not None:
        say(f"time limit {format_duration(config.time_limit)}", quiet)
    if team.world > 1:
        say(f"distributed: {team.world} processes on {device.type}, {plan.row_count} of "
            f"the {plan.config.batch_size} batch rows each", quiet)
    _check_fits(plan)
    # A fine-tuned run remembers the model it came from, across its resumes too.
    plan.init_from = saved.init_from if saved is not None else None
    if base is not None:
        plan.base_path = init_from
        plan.init_from = {"path": str(Path(init_from).resolve()), "step": base.step,
                          "fingerprint": base.fingerprint, "corpus": base.corpus,
                          "checksum": base.checksum}
    if start is not None:  # listed first: where the run began
        plan.choices = {"start": start.to_dict(), **plan.choices}
        if base_model is not None:
            plan.init_from["base_model"] = base_model.name
    return plan


def _start(source: Path, picked: dict, from_scratch: bool,
           quiet: bool) -> tuple[Choice, "basemodel.BaseModel | None"]:
    """Where a new run not given a model to start from begins: the bundled base model for a
    text under BASE_MODEL_BELOW characters, else (or when asked, when none is bundled, or when
    the model options given are not the base model's) a new model from scratch. Said in one
    header line, which names the base model and the size and dropout it brings."""
    from ..run import basemodel
    from ..text.reading import text_files

    def scratch(reason: str):
        choice = Choice("start", "from scratch", reason)
        say(choice.line(), quiet)
        return choice, None

    if from_scratch:
        return scratch("as asked")
    size = sum(f.stat().st_size for f in text_files(source))  # bytes: at least the characters
    if size >= BASE_MODEL_BELOW:
        return scratch(f"a text of {size:,} bytes is at least {BASE_MODEL_BELOW:,} characters "
                       "long, enough to train a model of its own")
    base = basemodel.load()
    if base is None:
        return scratch("no base model is bundled with this installation of songgen")
    own = base.checkpoint.model_config.to_dict()
    differs = [f"{name.replace('_', ' ')} {value}" for name, value in picked.items()
               if own.get(name) != value]
    if differs:
        return scratch(f"the model asked for ({', '.join(differs)}) is not the base model "
                       f"{base.name}'s ({base.describe()})")
    choice = Choice("start", f"base model {base.name}", f"a text under {BASE_MODEL_BELOW:,} "
                    f"characters ({size:,} bytes) learns more from a model that has read verse "
                    f"already than from scratch; it brings its size and dropout: "
                    f"{base.describe()}")
    say(choice.line(), quiet)
    return choice, base


def choose(corpus: Corpus, model_config: ModelConfig, config: TrainConfig, given_model: dict,
           explicit: set[str] | None, device: torch.device, folder: RunFolder, team: Team,
           quiet: bool, *, saved: Checkpoint | None, base: Checkpoint | None) -> Plan:
    """The run's choices, all made here, each said in one line and kept in the checkpoint.

    A new run: the batch shape for a short text, then what songgen.training.defaults chooses for the
    options not given on purpose (size, learning rate, dropout, weight decay). Every run: the
    precision (made when the run is created, kept on resume), the sampling precision (made
    once), and the learning-rate schedule of this invocation (from its limits). The batch
    shape settled, this process's rows and the steps an epoch are worked out here, once."""
    choices = dict(saved.choices or {}) if saved is not None else {}
    if saved is None:
        config = _short_text_shape(config, len(corpus.train), explicit, team, quiet)
    rows = team.rows(config.batch_size)
    steps_an_epoch = steps_per_epoch(len(corpus.train), config.batch_size, config.seq_len)
    if saved is None:
        model_config, config, made = _automatic_choices(
            model_config, config, given_model, explicit, len(corpus.train), steps_an_epoch,
            rows.stop - rows.start, device, team, fresh=base is None)
        for choice in made:
            say(choice.line(), quiet)
            choices[choice.name] = choice.to_dict()
    precision = _precision(config, saved, explicit, device, team, model_config, quiet)
    choices["precision"] = precision.to_dict()
    if "sampling precision" not in choices:  # made once, when the run is created
        choices["sampling precision"] = _sampling_precision(model_config).to_dict()
    # The schedule: chosen for this invocation (its limits); its state is the run's.
    step_limit = config.step_limit(steps_an_epoch)
    budget_steps = step_limit if config.lr_schedule == "budget" else None
    schedule = choose_schedule(config.lr_schedule, time_limit=config.time_limit,
                               steps=step_limit, patience=config.patience)
    choices[schedule.name] = schedule.to_dict()
    say(schedule.line(), quiet)
    return Plan(corpus, model_config, config, device, DTYPES[precision.value], folder, team,
                quiet, choices, schedule.value, rows, steps_an_epoch, budget_steps, saved=saved,
                base=base)


def _precision(config: TrainConfig, saved: Checkpoint | None, explicit: set[str] | None,
               device: torch.device, team: Team, model_config: ModelConfig,
               quiet: bool) -> Choice:
    """The precision the run computes in: chosen when it is created (by process 0 alone in a
    distributed run, and used by all), kept on every resume (songgen.model.devices.decide_precision).
    Said in the header; kept in the checkpoint's choices."""
    choice = None
    if team.main:
        recorded = (saved.choices or {}).get("precision") if saved is not None else None
        if saved is not None and recorded is None and saved.train_config is not None and \
                saved.train_config.precision != "auto":  # before choices were recorded
            recorded = {"value": saved.train_config.precision, "reason": "as asked"}
        asked = explicit is None or "precision" in explicit
        name, reason, change = decide_precision(
            config.precision, device, recorded=recorded, resumed=saved is not None,
            asked=asked, step=saved.step if saved is not None else 0,
            speedup=lambda: bf16_speedup(model_config, check_cores=team.world == 1))
        choice = Choice("precision", name, reason)
        kept = saved is not None and recorded is not None and name == recorded["value"]
        kept_line = f"precision {name}, kept from the run's start: {reason}"
        say(change or (kept_line if kept else choice.line()), quiet)
    return team.gather_objects(choice)[0]


def _sampling_precision(model_config: ModelConfig) -> Choice:
    """The weights `sample` computes with on a CPU (songgen.model.stepper.sampling_precision),
    chosen for this CPU when the run is created and kept, so that the same seed samples the
    same songs from the run's checkpoints wherever they are sampled."""
    from ..model.stepper import _int8_from_units, int8_available, sampling_precision

    value = sampling_precision("auto", torch.device("cpu"), model_config.hidden_size)
    if value == "int8":
        return Choice("sampling precision", value, "int8 weights on the CPU: they sample this "
                      f"CPU's models of {_int8_from_units()} units a layer or more faster, at no "
                      "measurable cost")
    why = ("this PyTorch has no int8 kernels" if not int8_available() else
           f"int8 weights sample faster on this CPU only from {_int8_from_units()} units a "
           "layer")
    return Choice("sampling precision", value, f"float32 weights: {why}")


def _automatic_choices(model_config: ModelConfig, config: TrainConfig, given_model: dict,
                       explicit: set[str] | None, train_chars: int, steps_an_epoch: int,
                       rows: int, device: torch.device, team: Team, fresh: bool = True
                       ) -> tuple[ModelConfig, TrainConfig, list[Choice]]:
    """A new run's options not given on purpose, chosen by songgen.training.defaults: the hidden size
    from the budget, the learning rate from the size, dropout and weight decay from the corpus
    size (dropout also from how often the budget reads the text). Fine-tuning keeps its base's
    size and dropout. A size's step is timed on `rows` batch rows, this process's share. Every
    process of a distributed run takes the first one's choices."""
    def auto(name: str, value) -> bool:
        return value is None or (explicit is not None and name not in explicit)

    steps = config.step_limit(steps_an_epoch)
    chars_per_step = config.batch_size * config.seq_len
    shape = model_config  # the size timed is the only thing that differs

    disturbed: list[str] = []  # what disturbed the step timings, said in the reasons

    @functools.cache
    def timed(size: int) -> float:
        probe = step_seconds(replace(shape, hidden_size=size), rows, config.seq_len, device,
                             check_cores=team.world == 1)
        if probe.disturbed and probe.disturbed not in disturbed:
            disturbed.append(probe.disturbed)
        return probe.value

    def noting(choice: Choice) -> Choice:
        """The choice, its reason saying so if a step timing it rests on was disturbed."""
        if not disturbed or config.time_limit is None:
            return choice
        return replace(choice, reason=f"{choice.reason}; but the step was {disturbed[0]} (the "
                                      "fastest timing was used), so this may differ from what "
                                      "an idle machine would choose")

    made = []
    if fresh and auto("hidden_size", given_model.get("hidden_size")):
        sizes = {size: parameter_count(replace(model_config, hidden_size=size)) for size in SIZES}
        choice = noting(choose_size(sizes, chars_per_step=chars_per_step, steps=steps,
                                    seconds=config.time_limit, step_seconds=timed))
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
        if "budget" in choice.reason:  # the budget's reading rests on the step timing
            choice = noting(choice)
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


def _check_fits(plan: Plan) -> None:
    """Refuse, before building it, a model that could not train in the memory left: otherwise
    the system kills the process mid-allocation with no word of why."""
    model_config, config, device, team = plan.model_config, plan.config, plan.device, plan.team
    need = training_bytes(model_config, plan.row_count, config.seq_len)
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
