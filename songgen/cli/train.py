"""`songgen train`: its options, its one library call (songgen.training.loop.train, which
settles how the run goes on: songgen.training.continuation), the library's errors with the
command line's advice (the command that fine-tunes on a text that changed, among others), and
what it prints: a run complete already, or where the trained run is."""

from __future__ import annotations

import os
import shlex

import click
from click.core import ParameterSource

from ..config import (MAX_BATCH, MAX_EMBED, MAX_HIDDEN, MAX_LAYERS, MAX_SEED, MAX_SEQ_LEN,
                      TrainConfig)
from .exits import library_call, process_prefix
from .options import (MODEL, TRAIN, Duration, corpus_cache_option, device_option, encoding_option,
                      positive, train_threads_option)


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


@click.command(short_help="Train a model on a lyrics file or folder (Ctrl-C saves).", epilog="""
        Examples:

        \b
          songgen train lyrics.txt --checkpoint-dir ck --time-limit 1h30
          songgen train --checkpoint-dir ck --resume --lr 0.001
          songgen train new.txt --init-from ck/best.pt --checkpoint-dir ck-new
          songgen train windows.txt --encoding cp1252 --checkpoint-dir ck-win

        How the defaults choose: docs/defaults.md. Resuming: docs/checkpoints.md.
        Several GPUs: docs/multi-gpu.md.
        """)
@click.argument("text", required=False, type=click.Path(exists=True, path_type=str))
@click.option("--checkpoint-dir", default=TRAIN.checkpoint_dir, show_default=True,
              type=click.Path(path_type=str), help="Where last.pt, best.pt and metrics.jsonl go.")
@click.option("--resume", is_flag=True, help="Continue the run saved in --checkpoint-dir.")
@click.option("--init-from", type=click.Path(exists=True, path_type=str),
              help="Fine-tune: start from this checkpoint's weights (new characters are added); "
              "a folder means its best.pt, else last.pt.")
@click.option("--from-scratch", is_flag=True,
              help="Start a new model, not from songgen's base model [default: from it for a "
              "small text (docs/base-model.md); the header says which and why].")
@click.option("--embed-dim", **positive(MODEL.embed_dim, "Character embedding size.", MAX_EMBED))
@click.option("--hidden-size", type=click.IntRange(1, MAX_HIDDEN),
              help="LSTM units per layer [default: 256; with a time, step or epoch limit, auto: "
              "the largest of 128 to 1024 the budget can train on this machine].")
@click.option("--layers", **positive(MODEL.layers, "Number of LSTM layers.", MAX_LAYERS))
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True),
              help="Dropout between and after layers [default: auto, from the corpus size: "
              "0.4 to 0 as characters per parameter grow].")
@click.option("--seq-len", **positive(TRAIN.seq_len, "Characters per step (BPTT length).", MAX_SEQ_LEN))
@click.option("--batch-size", **positive(TRAIN.batch_size, "Parallel streams per step (under "
              "torchrun: in all, split over the processes).", MAX_BATCH))
@click.option("--lr", type=click.FloatRange(0, 10, min_open=True),
              help="AdamW learning rate [default: auto: 0.006 up to 256 units, 0.0021 at 512, "
              "0.00075 at 1024].")
@click.option("--weight-decay", type=click.FloatRange(0, 1),
              help="AdamW weight decay [default: auto, from the corpus size: 0.05 to 0.01].")
@click.option("--lr-schedule", default=TRAIN.lr_schedule, show_default=True,
              type=click.Choice(["auto", "plateau", "budget", "none"]),
              help="plateau: halve the learning rate after 2 evaluations without improvement, "
              "down to 1/8, and stop (--patience) only at the lowest; budget: also fall to 5% "
              "over the last 30% of --time-limit (or --steps, --epochs); auto: budget with a "
              "time limit, else plateau; none: a fixed learning rate.")
@click.option("--grad-clip", default=TRAIN.grad_clip, show_default=True,
              type=click.FloatRange(0), help="Clip the gradient norm to this (0 = off).")
@click.option("--seed", default=TRAIN.seed, show_default=True, type=click.IntRange(0, MAX_SEED),
              help="Random seed (same seed, same run).")
@click.option("--val-frac", default=TRAIN.val_frac, show_default=True,
              type=click.FloatRange(0, 0.5, min_open=True),
              help="Fraction of the corpus, from its end, kept for validation.")
@click.option("--steps", type=click.IntRange(min=1), help="Stop at this step (counted from the "
              "start of the run, resumes included).")
@click.option("--more-steps", type=click.IntRange(min=1), help="Stop after this many steps more "
              "than the run has made: with --resume, from where it stands.")
@click.option("--epochs", type=click.IntRange(min=1), help="Stop after this many epochs.")
@click.option("--time-limit", type=Duration(), help="Stop after this long, e.g. 90s, 10m, 2h "
              "(a bare number is seconds).")
@click.option("--patience", default=TRAIN.patience, show_default=True,
              type=click.IntRange(0), help="Stop after this many evaluations without a better "
              "validation loss, at the lowest learning rate of the schedule (0 = never).")
@click.option("--eval-every", type=click.IntRange(min=1), help="Evaluate and save every N steps "
              "[default: once an epoch, at least every 1000 steps].")
@click.option("--keep-last", default=TRAIN.keep_last, show_default=True, type=click.IntRange(0),
              help="Numbered checkpoints to keep besides last.pt and best.pt.")
@device_option
@train_threads_option
@click.option("--precision", default="auto", show_default=True,
              type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
              help="auto: bf16 mixed precision where the hardware has it natively (CUDA from "
              "Ampere on, CPUs with AMX or AVX-512 BF16), fp32 elsewhere. Chosen when the run is "
              "created and kept on --resume; given on resume, it changes the run's precision "
              "from there.")
@click.option("--styles", default=TRAIN.styles, show_default=True,
              type=click.Choice(["auto", "none"]),
              help="auto: one style per subfolder of TEXT (lyrics/cowboy/*.txt, "
              "lyrics/burns/*.txt) and per {style: NAME} mark, so that sample --style can ask "
              "for one; none: one mix, as without styles. Kept on --resume.")
@encoding_option("TEXT (kept for --resume)")
@corpus_cache_option("Where the encoded corpus is kept for resumes and for every process of "
                     "the run to share: auto is CHECKPOINT_DIR/corpus-cache")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or statistics (the result "
              "line stays).")
@click.pass_context
@library_call
def train(ctx, text, resume, init_from, from_scratch, quiet, more_steps, **options):
    """Train on TEXT: a UTF-8 lyrics file or a folder of .txt files (subfolders included).

    Without TEXT, trains on the demo songs bundled with songgen; run again, it goes on with
    the demo run already in --checkpoint-dir. Songs are separated by two blank lines, or by
    one before a `# Title` line. Training stops at --steps, --epochs or --time-limit,
    whichever comes first, or when validation stops improving (--patience); Ctrl-C saves and
    stops. A new run on a small text starts from songgen's base model of public-domain verse
    (its size and dropout come with it); --from-scratch starts a new model.

    Options not given are chosen for the corpus, the budget and this machine: the model size
    (with a time, step or epoch limit), the learning rate, dropout, weight decay and the
    learning-rate schedule; the header says what and why.

    With --resume and no TEXT, the run goes on with the text it was trained on. On resume,
    --lr, --weight-decay, --grad-clip, --patience, --eval-every, --keep-last and
    --lr-schedule may change;
    the model's shape, --seq-len, --batch-size, --seed and --val-frac stay as they were.
    """
    from ..errors import CorpusMissing, DiskFull, ExistingRun
    from ..run.basemodel import DamagedBaseModel
    from ..text.lyrics import CorpusChanged
    from ..training.batches import TextTooShort
    from ..training.continuation import StepLimitPassed
    from ..training.loop import train as run_training
    from ..training.progress import format_duration
    from ..training.team import leave_worker

    explicit = {name for name in options
                if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE,
                                                      ParameterSource.ENVIRONMENT)}
    model = {k: options.pop(k) for k in ("embed_dim", "hidden_size", "layers", "dropout")}
    config = TrainConfig(**options)
    if resume and init_from:
        raise click.ClickException("resuming a run and starting from a base model cannot be "
                                   "combined; use --resume or --init-from, not both")
    if from_scratch and init_from:
        raise click.UsageError("--from-scratch and --init-from cannot be combined; a run starts "
                               "from a new model or from the one given, not both")
    if more_steps is not None and config.steps is not None:
        raise click.UsageError("--steps and --more-steps cannot be combined; --steps counts "
                               "from the run's start, --more-steps from where it stands")
    folder = config.checkpoint_dir
    try:
        result = run_training(text, model=model, config=config, resume=resume,
                              init_from=init_from, explicit=explicit, quiet=quiet,
                              from_scratch=from_scratch, more_steps=more_steps)
    except StepLimitPassed as exc:
        raise click.ClickException(
            f"the run in {folder} is at step {exc.at:,} already, and --steps {exc.steps} "
            f"counts from the run's start; to train {exc.steps:,} steps more, use "
            f"--more-steps {exc.steps} (or --steps {exc.at + exc.steps})") from None
    except DamagedBaseModel as exc:
        raise click.ClickException(f"{exc.what}; reinstall songgen, or train without it: add "
                                   "--from-scratch") from None
    except ExistingRun as exc:
        raise click.ClickException(f"{exc.what}; add --resume to continue it, or give "
                                   "--checkpoint-dir a new folder") from None
    except CorpusChanged as exc:
        raise click.ClickException(
            f"{exc.what}; resume with the text it was trained on, or go on with this text "
            f"from the run's weights (its vocabulary grown by any new characters) in a new "
            f"folder: {fine_tune_command(exc.path, folder)}") from None
    except CorpusMissing as exc:
        raise click.ClickException(f"{exc.what}; give the text as TEXT: songgen train TEXT "
                                   f"--checkpoint-dir {shlex.quote(folder)} --resume") from None
    except DiskFull as exc:
        then = "run the same command with --resume" if exc.resumable else "run it again"
        raise click.ClickException(f"{exc.what}; free some space, then {then}") from None
    except TextTooShort as exc:
        advice = ("give more text" if exc.fits is None else
                  f"use e.g. --batch-size {exc.fits[0]} --seq-len {exc.fits[1]}, or more text")
        raise click.ClickException(f"{exc.what}; {advice}") from None
    if result.complete_already:
        if not process_prefix():  # under torchrun, process 0 says it for all
            why = (f" (--{result.limit} {getattr(config, result.limit)})" if result.limit else
                   f": {result.stopped_because}")
            click.echo(f"the run in {folder} is complete at step {result.step:,}{why}; to "
                       "train more, use --more-steps N", err=True)
        return
    if not process_prefix():
        click.echo(f"done in {format_duration(result.loop_seconds)}; write a song with: "
                   f"songgen sample --checkpoint {shlex.quote(str(result.checkpoint_dir))}",
                   err=True)
    leave_worker()
