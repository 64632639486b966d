"""What `songgen train` settles before its one library call: whether the run goes on (the
demo run, trained again without TEXT, goes on), --more-steps as a step limit, whether the run
is complete already (the same command again trains nothing), and the command that fine-tunes
on a text that changed."""

import os
import shlex

import click

from ..errors import SonggenError


def fine_tune_command(text, folder: str) -> str:
    """The command that fine-tunes the run in `folder` on `text`, into a folder not yet used."""
    # best.pt: the weights that validated best are the better start for a new text.
    base = os.path.join(folder, "best.pt")
    if not os.path.exists(base):
        base = os.path.join(folder, "last.pt")
    stem, n = folder.rstrip("/\\") or folder, 2
    while os.path.exists(f"{stem}-{n}"):
        n += 1
    return shlex.join(["songgen", "train", str(text), "--init-from", base, "--checkpoint-dir",
                       f"{stem}-{n}"])


def settle_steps(text, folder: str, resume: bool, init_from, config, more_steps,
                 explicit: set[str]) -> tuple[bool, str | None]:
    """Whether the run goes on (the demo run, trained again without TEXT, goes on as if
    --resume were given), with --more-steps turned into config.steps; and, where the run is
    complete already (the limit asked for reached, or, with none asked for, its early stop),
    the line that says so: the same command again trains nothing and succeeds. Refuses a
    --steps below the run's step (it counts from the run's start)."""
    demo = text is None and not resume and init_from is None and _holds_demo_run(folder)
    resume, complete = _settle(text, folder, resume or demo, config, more_steps, explicit)
    if demo and complete is None:
        # The first command of the README, run again: go on with its run rather than fail.
        click.echo(f"{folder} holds the demo run: going on with it (as with --resume)",
                   err=True)
    return resume, complete


def _settle(text, folder: str, resume: bool, config, more_steps, explicit: set[str]
            ) -> tuple[bool, str | None]:
    saved = _run_checkpoint(folder) if resume else None
    at = saved.step if saved is not None else None
    if more_steps is not None:
        if config.steps is not None:
            raise click.UsageError("--steps and --more-steps cannot be combined; --steps counts "
                                   "from the run's start, --more-steps from where it stands")
        config.steps = (at or 0) + more_steps
        return resume, None
    if saved is None or (text is not None and not _same_path(text, saved.corpus)):
        return resume, None  # another text: training says what is wrong
    more = "to train more, use --more-steps N"
    if config.steps is not None:
        if config.steps < at:
            raise click.ClickException(
                f"the run in {folder} is at step {at:,} already, and --steps {config.steps} "
                f"counts from the run's start; to train {config.steps:,} steps more, use "
                f"--more-steps {config.steps} (or --steps {at + config.steps})")
        if config.steps == at:
            return resume, f"the run in {folder} is complete at step {at:,} (--steps " \
                           f"{config.steps}); {more}"
    elif config.epochs is not None and config.epochs == saved.epoch:
        return resume, f"the run in {folder} is complete at step {at:,} (--epochs " \
                       f"{config.epochs}); {more}"
    elif config.epochs is None and config.time_limit is None:
        old = saved.train_config
        patience = config.patience if "patience" in explicit or old is None else old.patience
        stopped = _stopped_early(saved, patience)
        if stopped:
            return resume, f"the run in {folder} is complete at step {at:,}: {stopped}; {more}"
    return resume, None


def _same_path(a, b) -> bool:
    from pathlib import Path

    return b is not None and Path(a).resolve() == Path(b).resolve()


def _stopped_early(saved, patience: int) -> str | None:
    """Why the run stopped early (patience run out, at its lowest learning rate), where that
    still holds with this patience; else None."""
    from ..training.defaults import LrSchedule

    kind = (saved.schedule or {}).get("kind", "plateau")
    if not LrSchedule.from_dict(saved.schedule, kind, bad=saved.bad_evals,
                                best=saved.best_val_loss).exhausted(patience):
        return None
    lowest = "" if kind == "none" else " at the lowest learning rate"
    return f"validation loss stopped improving for {patience} evaluations{lowest}"


def _run_checkpoint(folder: str):
    """The run saved in `folder` (its last.pt), or None where there is none to read
    (training then says what is wrong)."""
    from ..run.checkpoint import RunFolder, load

    try:
        return load(RunFolder(folder).last)
    except SonggenError:
        return None


def _holds_demo_run(folder: str) -> bool:
    """Whether `folder` holds a run trained on the bundled demo songs."""
    from pathlib import Path

    from ..run.checkpoint import RunFolder
    from ..text.corpus import demo_corpus

    corpus = RunFolder(folder).recorded_corpus()
    try:
        return corpus is not None and Path(corpus).resolve() == demo_corpus().resolve()
    except (SonggenError, OSError):
        return False
