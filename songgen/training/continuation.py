"""Whether a call to train goes on with the run in its folder, and how far: settled before the
run starts, from its last checkpoint.

- The demo run goes on: trained again without a text (nor a model to start from), the run on
  the bundled demo songs continues as a resume would, rather than fail on the folder it fills.
- A number of steps more becomes a step limit, counted from the step the run stands at (from
  0 for a new run).
- A run asked to go on that has nothing left to do is complete already: its step or epoch
  limit reached, or, with no limit asked for, its early stop (patience run out at the lowest
  learning rate) still holding. The same call again then trains nothing and writes nothing.
- A step limit below the step the run stands at is refused: step limits count from the run's
  start, so it can only mean some steps more.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..config import TrainConfig
from ..errors import ConfigError, SonggenError
from ..run.checkpoint import Checkpoint, load
from ..run.folder import RunFolder
from ..text.corpus import demo_corpus
from .schedule import LrSchedule


class StepLimitPassed(ConfigError):
    """A step limit below the step the run stands at; `at` is that step, `steps` the limit."""

    def __init__(self, folder, at: int, steps: int):
        what = (f"the run in {folder} is at step {at:,} already, and a step limit of {steps:,} "
                "counts from the run's start")
        super().__init__(f"{what}; to train {steps:,} steps more, ask for {steps:,} more steps "
                         f"(or a step limit of {at + steps:,})", what=what)
        self.at, self.steps = at, steps


@dataclass(frozen=True)
class Continuation:
    """What a call to train asks of the run in its folder, settled: whether it resumes, its
    configuration (a number of steps more turned into a step limit), and whether the demo run
    goes on unasked. Where the run has nothing left to do, `complete` is its last checkpoint,
    `reason` says why and `limit` names the limit reached ("steps" or "epochs", as TrainConfig
    calls them; None for an early stop)."""

    resume: bool
    config: TrainConfig
    demo: bool = False
    complete: Checkpoint | None = None
    reason: str | None = None
    limit: str | None = None


def settle(source, config: TrainConfig, resume: bool, init_from, more_steps: int | None,
           explicit: set[str] | None) -> Continuation:
    """How the call goes on (see the module's docstring). `explicit`: the options set on
    purpose (None: all of them), as train() takes it; a patience not set on purpose is the
    run's own."""
    if more_steps is not None and config.steps is not None:
        raise ConfigError("a step limit and a number of steps more cannot be combined; the "
                          "limit counts from the run's start, steps more from where it stands")
    folder = config.checkpoint_dir
    demo = source is None and not resume and init_from is None and holds_demo_run(folder)
    resume = resume or demo
    saved = _last_checkpoint(folder) if resume else None
    at = saved.step if saved is not None else None
    if more_steps is not None:
        return Continuation(resume, replace(config, steps=(at or 0) + more_steps), demo)
    if saved is None or (source is not None and not _same_path(source, saved.corpus)):
        return Continuation(resume, config, demo)  # another text: training says what is wrong
    complete = _complete(saved, config, explicit)
    if complete is None:
        if config.steps is not None and config.steps < at:
            raise StepLimitPassed(folder, at, config.steps)
        return Continuation(resume, config, demo)
    reason, limit = complete
    return Continuation(resume, config, demo, complete=saved, reason=reason, limit=limit)


def _complete(saved: Checkpoint, config: TrainConfig, explicit: set[str] | None
              ) -> tuple[str, str | None] | None:
    """Why the run `saved` has nothing left to do under `config`, and the limit reached (None
    for an early stop); None where it has more to do."""
    if config.steps is not None:
        return ("reached the step limit", "steps") if config.steps == saved.step else None
    if config.epochs is not None:
        return ("reached the epoch limit", "epochs") if config.epochs == saved.epoch else None
    if config.time_limit is not None:
        return None  # a time limit counts from each call: there is always time to train
    old = saved.train_config
    chosen = explicit is None or "patience" in explicit
    patience = config.patience if chosen or old is None else old.patience
    stopped = _stopped_early(saved, patience)
    return None if stopped is None else (stopped, None)


def _stopped_early(saved: Checkpoint, patience: int) -> str | None:
    """Why the run stopped early (patience run out, at its lowest learning rate), where that
    still holds with this patience; else None."""
    kind = (saved.schedule or {}).get("kind", "plateau")
    if not LrSchedule.from_dict(saved.schedule, kind, bad=saved.bad_evals,
                                best=saved.best_val_loss).exhausted(patience):
        return None
    lowest = "" if kind == "none" else " at the lowest learning rate"
    return f"validation loss stopped improving for {patience} evaluations{lowest}"


def _same_path(a, b) -> bool:
    return b is not None and Path(a).resolve() == Path(b).resolve()


def _last_checkpoint(folder) -> Checkpoint | None:
    """The run saved in `folder` (its last.pt), or None where there is none to read (training
    then says what is wrong)."""
    try:
        return load(RunFolder(folder).last)
    except SonggenError:
        return None


def holds_demo_run(folder) -> bool:
    """Whether `folder` holds a run trained on the bundled demo songs."""
    corpus = RunFolder(folder).recorded_corpus()
    try:
        return corpus is not None and Path(corpus).resolve() == demo_corpus().resolve()
    except (SonggenError, OSError):
        return False
