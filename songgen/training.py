"""train(): set up a fresh, resumed or fine-tuned run, then hand it to the training loop."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .config import ModelConfig, TrainConfig
from .corpus import Vocab, available_memory, demo_corpus
from .loading import load_corpus
from .devices import resolve_precision
from .distributed import Team
from .errors import ConfigError, SonggenError, SonggenWarning
from .loop import TrainingLoop, TrainResult
from .model import training_bytes
from .progress import say
from .rundir import CheckpointFolder

# torch.OutOfMemoryError appeared in PyTorch 2.5; older releases only have the CUDA one.
_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def _reconcile(given: dict, saved: dict, what: str) -> dict:
    """Checkpoint values win on resume; warn about each explicit option that disagrees."""
    for name, value in given.items():
        if name in saved and saved[name] != value:
            warnings.warn(f"{what} {name.replace('_', ' ')} = {value} differs from the checkpoint's "
                          f"{saved[name]}; keeping the checkpoint's value", SonggenWarning)
    return saved


def train(source: str | Path | None = None, *, model: dict | ModelConfig | None = None,
          config: TrainConfig | None = None, resume: bool = False,
          init_from: str | Path | None = None, explicit: set[str] | None = None,
          quiet: bool = False) -> TrainResult:
    """Train a model on a lyrics file or folder (the bundled demo corpus when `source` is None).

    model: architecture options (a ModelConfig or a dict of its fields).
    resume: continue the run saved in the checkpoint folder, exactly where it stopped.
    init_from: fine-tune: start from this checkpoint's weights (its vocabulary grown by the new
        corpus's characters) with a fresh optimiser at step 0.
    explicit: names of options the caller set on purpose; on resume or fine-tuning, those that
        disagree with the checkpoint are reported. Without it every given option counts.
    """
    config = config or TrainConfig()
    given_model = model.to_dict() if isinstance(model, ModelConfig) else dict(model or {})
    given_model.pop("vocab_size", None)
    if resume and init_from is not None:
        what = "resuming a run and starting from a base model cannot be combined"
        raise ConfigError(f"{what}; choose one", what=what, hint="resume-or-init")
    team, device = Team.start(config.device)
    try:
        # Only process 0 of a distributed run owns the folder (lock, checks, saving) and speaks.
        quiet = quiet or not team.main
        with contextlib.ExitStack() as held:
            with team.together():
                folder = CheckpointFolder(config.checkpoint_dir)
                if team.main:
                    held.enter_context(folder.lock())
                loop = _prepare(source, given_model, config, resume, init_from, explicit,
                                device, folder, team, quiet)
            try:
                result = loop.run()
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


def _prepare(source, given_model: dict, config: TrainConfig, resume: bool, init_from,
             explicit: set[str] | None, device, folder: CheckpointFolder, team: Team,
             quiet: bool) -> TrainingLoop:
    """Read the corpus and the checkpoint to start from; build the training loop."""
    dtype = resolve_precision(config.precision, device)
    source = Path(source) if source is not None else demo_corpus()
    picked = {k: v for k, v in given_model.items() if explicit is None or k in explicit}
    base = ckpt.load(init_from) if init_from is not None else None
    saved = folder.load_for_resume() if resume else None
    if saved is None and team.main:
        folder.check_fresh()
    if saved is not None:
        model_config = ModelConfig.from_dict(
            _reconcile(picked, saved["model_config"], "model option"))
        old = TrainConfig.from_dict(saved["train_config"])
        mine = {k: getattr(config, k) for k in TrainConfig.FIXED_ON_RESUME
                if explicit is None or k in explicit}
        kept = _reconcile(mine, {k: getattr(old, k) for k in TrainConfig.FIXED_ON_RESUME},
                          "training option")
        config = TrainConfig(**{**config.to_dict(), **kept})
    team.rows(config.batch_size)  # before the corpus: a long load would end in this error
    if saved is not None:
        corpus = load_corpus(source, config.val_frac, vocab=Vocab(saved["vocab"]),
                             expect_fingerprint=saved.get("fingerprint"),
                             trained_on=saved.get("corpus"),
                             copies=team.local_world)
    elif base is not None:
        corpus = load_corpus(source, config.val_frac, vocab=Vocab(base["vocab"]), extend=True,
                             copies=team.local_world)
        arch = _reconcile(picked, base["model_config"], "model option")
        model_config = ModelConfig.from_dict({**arch, "vocab_size": len(corpus.vocab)})
        added = len(corpus.vocab) - len(base["vocab"])
        say(f"fine-tuning from {init_from} (step {base['step']}); {added} new "
            f"character{'' if added == 1 else 's'} added to its vocabulary", quiet)
    else:
        corpus = load_corpus(source, config.val_frac, copies=team.local_world)
        model_config = ModelConfig(vocab_size=len(corpus.vocab), **given_model)
    say(corpus.summary(), quiet)
    if team.world > 1:
        say(f"distributed: {team.world} processes on {device.type}, "
            f"{config.batch_size // team.world} of the {config.batch_size} batch rows each", quiet)
    _check_fits(model_config, config, device, team)
    loop = TrainingLoop(corpus, model_config, config, device, dtype, folder, saved, quiet, team)
    if base is not None:
        loop.start_from(base["model_state"], init_from)
    return loop
