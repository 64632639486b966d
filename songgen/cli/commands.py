"""The command line's commands (the `songgen` group): each is option parsing plus one library
call. How a command body runs (errors, exit codes, Ctrl-C) is songgen/cli/exits.py, the shared
options songgen/cli/options.py, and what sample and info print songgen/cli/output.py.

PyTorch is imported only inside commands, so `songgen --help` answers at once.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import sys
import warnings

import click
from click.core import ParameterSource

from .. import __version__
from ..config import (MAX_BATCH, MAX_EMBED, MAX_HIDDEN, MAX_LAYERS, MAX_LENGTH, MAX_SEED,
                      MAX_SEQ_LEN, MAX_SONGS, MAX_TEMPERATURE, TrainConfig, launched_distributed)
from .check import check  # noqa: E402 (a command of its own module, added to the group)
from .exits import library_call, process_prefix
from .explain import explain  # noqa: E402
from .options import (MODEL, TRAIN, Duration, corpus_cache_option, device_option,
                      encoding_callback, encoding_option, json_option, positive, threads_option,
                      train_threads_option)
from .output import (base_if_no_run, check_rhyme, craft_options, describe, fit_to_model,
                     one_checkpoint, read_prime_file, show_songs, tell_cut, tell_seed,
                     the_one_used)
from .train import fine_tune_command, settle_steps

# -- what eval decides before its library call -------------------------------------------

def _run_encoding(trained, text: str) -> str:
    """The encoding to read `text` in when none is given: the run's own where it is the text
    the run was trained on (as a resume reads it), else UTF-8."""
    from pathlib import Path

    recorded = trained.checkpoint.corpus
    config = trained.checkpoint.train_config
    if recorded and config is not None and Path(recorded).resolve() == Path(text).resolve():
        return config.encoding
    return "utf-8"


# -- the commands ------------------------------------------------------------------------


# What `songgen --help` lists for each command, and examples at the end of its own --help.
# Kept here, in one place, for every command (a later command without an entry lists the first
# sentence of its description, as click does by default).
@click.group(
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="songgen")
def cli():
    """Learn to write song lyrics, one character at a time, with an LSTM.

    \b
    songgen train lyrics.txt        train (Ctrl-C stops and saves; --resume continues)
    songgen sample --temp 0.8       print a new song from checkpoints/best.pt
    songgen eval other.txt          score a checkpoint on any text
    songgen info                    what a checkpoint holds
    songgen explain song.txt        what the model expected at each character (-o: a page)
    songgen check book.txt          what in a text is not lyrics (-o: a clean copy)
    songgen serve                   a local page to write songs and watch training
    songgen plot                    the training curves as an SVG file

    \b
    Several GPUs: torchrun --standalone --nproc-per-node gpu -m songgen train lyrics.txt

    \b
    The guide: README.md; reference pages in docs/ (lyrics-format, checkpoints,
    defaults, sampling, styles, studio, inside, multi-gpu, python-api, base-model,
    development).
    """


@cli.command(short_help="Train a model on a lyrics file or folder (Ctrl-C saves).", epilog="""
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
    from ..training.loop import train as run_training
    from ..training.progress import format_duration

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
    folder = config.checkpoint_dir
    resume, complete = settle_steps(text, folder, resume, init_from, config, more_steps,
                                     explicit)
    if complete:
        click.echo(complete, err=True)
        return
    if init_from is not None and os.path.isdir(init_from):
        from ..run.checkpoint import find_default

        init_from = str(find_default(init_from))  # as --checkpoint reads a folder
    try:
        result = run_training(text, model=model, config=config, resume=resume,
                              init_from=init_from, explicit=explicit, quiet=quiet,
                              from_scratch=from_scratch)
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
    if not process_prefix():
        click.echo(f"done in {format_duration(result.loop_seconds)}; write a song with: "
                   f"songgen sample --checkpoint {shlex.quote(str(result.checkpoint_dir))}",
                   err=True)
    if launched_distributed():
        # A torchrun worker whose run is complete and saved leaves at once: now and then the
        # interpreter's shutdown after distributed training aborted a worker (SIGABRT from
        # gloo's threads), which torchrun then reports as a failed run.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


@cli.command(short_help="Write new songs with a trained model.", epilog="""
        Examples:

        \b
          songgen sample ck --temp 0.8
          songgen sample --title "Harbour Lights" -n 3 --max-lines 16
          songgen sample --json -n 8 --seed 7 -o songs.jsonl

        Song shape, rhyme, chorus and every control: docs/sampling.md.
        """)
@click.argument("checkpoint_arg", metavar="[CHECKPOINT]", required=False,
                type=click.Path(path_type=str))
@click.option("--checkpoint", type=click.Path(path_type=str),
              help="Checkpoint file, or a folder (its best.pt, else last.pt) [default: "
              "checkpoints]; may also be given as the argument CHECKPOINT.")
@click.option("--temp", "--temperature", "temperature", default=0.8, show_default=True,
              type=click.FloatRange(0, MAX_TEMPERATURE), help="Randomness: 0 = always the likeliest "
              "character, 1 = the model's own odds, higher = wilder.")
@click.option("--top-k", default=0, show_default=True, type=click.IntRange(0),
              help="Pick only among the K likeliest characters (0 = off).")
@click.option("--top-p", default=1.0, show_default=True,
              type=click.FloatRange(0, 1, min_open=True),
              help="Pick only among the likeliest characters whose odds add up to P (1 = off).")
@click.option("--title", help="Start the song with this title line (# TITLE).")
@click.option("--prime", default="", help="Start the song with this text (\\n for a new line).")
@click.option("--prime-file", type=click.Path(exists=True, dir_okay=False, allow_dash=True,
                                              path_type=str),
              help="Start the song with the text of this file (- for standard input).")
@click.option("--length", default=3000, show_default=True, type=click.IntRange(1, MAX_LENGTH),
              help="At most this many characters per song.")
@click.option("--max-lines", type=click.IntRange(1), help="Stop a song after this many lines "
              "of lyrics (title and blank lines not counted).")
@click.option("--num-songs", "-n", default=1, show_default=True, type=click.IntRange(1, MAX_SONGS),
              help="Songs to write (generated together as one batch).")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), help="Random seed: the same seed and options "
              "(-n included) give the same songs.")
@click.option("--corpus", type=click.Path(exists=True, path_type=str),
              help="The training text: report each song's longest passage copied from it.")
@click.option("--max-copy", type=click.IntRange(2), help="With --corpus: write a song again "
              "if it copies more than N characters in a row.")
@click.option("--retries", default=5, show_default=True, type=click.IntRange(0, 100),
              help="With --max-copy: how many times to write a copying song again.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=str),
              help="Write the songs (or JSON) to this new file instead of stdout.")
@click.option("--shape", default="song", show_default=True,
              type=click.Choice(["song", "auto", "free"]),
              help="song (or auto): keep each song shaped like the training songs (a title and "
              "the blank line after it, stanzas, an ending within their lengths); free: let the "
              "model run unguided.")
@click.option("--rhyme", default="auto", show_default=True, metavar="auto|off|PATTERN",
              callback=lambda ctx, param, value: check_rhyme(value),
              help="auto: rhyme where and as the training songs do; off: no rhyme; or a pattern "
              "for every stanza, where lines that rhyme share a letter and X rhymes with none: "
              "AABB, ABAB, XAXA.")
@click.option("--chorus", default="auto", show_default=True, type=click.Choice(["auto", "off"]),
              help="auto: songs bring back a chorus where the training songs do; off: never.")
@click.option("--scan", default="auto", show_default=True, type=click.Choice(["auto", "off"]),
              help="auto: lines of stanza 2 on keep the first stanza's syllables where the "
              "training songs' lines do; off: free.")
@click.option("--words", default=0.01, show_default=True, type=click.FloatRange(0, 1),
              metavar="RATE", help="The share of words that may be made up; the others are "
              "words of the training text or frequent English words (1 = any).")
@device_option
@threads_option
@click.option("--precision", default="auto", show_default=True,
              type=click.Choice(["auto", "fp32", "int8"]),
              help="auto: int8 weights on the CPU where they are faster (256+ units with AVX-512, "
              "512+ without), same quality.")
@click.option("--strict", is_flag=True, help="Refuse a title or prime with characters the model "
              "never saw, instead of replacing them with close ones (Z -> z, é -> e) or "
              "dropping them.")
@click.option("--encoding", metavar="NAME", callback=encoding_callback,
              help="The text encoding of --prime-file and --corpus, e.g. cp1252 [default: "
              "utf-8; for --corpus, the one the model was trained with].")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON Lines on stdout: one JSON object per song, a line each.")
@click.option("--style", metavar="NAME|NAME=W,...",
              help="Write in one of the model's styles (songgen info lists them), or a blend "
              "of them: cowboy=0.7,burns=0.3 [default: no style, the mix of all].")
@library_call
def sample(checkpoint_arg, checkpoint, device, threads, as_json, title, prime, prime_file, corpus, max_copy,
           output, strict, encoding, style, **options):
    """Write new songs with the model in CHECKPOINT (a file, or a run's folder: its best.pt,
    else last.pt) [default: checkpoints; with no run there, songgen's base model of
    public-domain verse] and print them on stdout.

    Songs are separated by two blank lines, so the output is itself a lyrics corpus. Each song
    ends where the model ends it, after --max-lines lines, or at --length characters.

    A title or prime with characters the model never saw has them replaced by close ones it
    knows (Z -> z, é -> e) or dropped, with a warning that names each change (--strict
    refuses them instead).
    """
    from ..errors import SonggenWarning
    from ..files import refuse_existing
    from ..run.trained import load_checkpoint
    from ..text.reading import describe_chars, normalise
    from ..writing.copycheck import open_copy_index
    from ..writing.sampling import SampleOptions, make_prime, write

    if checkpoint_arg is not None:
        if checkpoint is not None and checkpoint != checkpoint_arg:
            raise click.UsageError(f"two checkpoints given: {checkpoint_arg} and --checkpoint "
                                   f"{checkpoint}; give one")
        checkpoint = checkpoint_arg
    if prime and prime_file:
        raise click.UsageError("--prime and --prime-file cannot be combined; put the whole "
                               "opening in one of them")
    if max_copy is not None and corpus is None:
        raise click.UsageError("--max-copy needs --corpus (the text the model was trained on)")
    if output is not None:
        refuse_existing(output)
    import torch

    from ..model.devices import free_cores

    # One song is written a character at a time: on a busy machine, threads that wait for a
    # taken core cost far more than they bring.
    torch.set_num_threads(threads or free_cores())
    from ..text.styles import with_style

    trained = base_if_no_run(checkpoint, device)
    # In the style asked for from here on (an unknown one is refused before any work).
    trained = with_style(trained or load_checkpoint(checkpoint, device=device), style)
    title = normalise(title) if title else title
    opening = normalise(prime.replace("\\n", "\n") +
                        (read_prime_file(prime_file, encoding or "utf-8") if prime_file else ""))
    unknown = trained.vocab.unknown(make_prime(None, title or ""))
    if unknown and strict:
        raise click.ClickException(f"--title has characters the model never saw: "
                                   f"{describe_chars(unknown)}; remove or replace them")
    if not strict:  # (with --strict, the library refuses a prime that has them)
        title = fit_to_model(trained.vocab, title, "--title") if title else title
        opening = fit_to_model(trained.vocab, opening,
                               "--prime-file" if prime_file else "--prime")
    index = open_copy_index(corpus, trained, max_copy, encoding) if corpus else None
    if options["temperature"] == 0 and options["num_songs"] > 1:
        warnings.warn(f"--temp 0 always picks the likeliest character, so all "
                      f"{options['num_songs']} songs would be the same (greedy decoding is "
                      "deterministic); writing one. Raise --temp for different songs",
                      SonggenWarning)
        options["num_songs"] = 1
    # Chosen here rather than inside the library, so that it can be shown: a song worth
    # keeping can then be written again. At --temp 0 no seed plays a part.
    chosen_seed = options["seed"] is None and not as_json and options["temperature"] > 0
    if options["seed"] is None:
        options["seed"] = secrets.randbits(31)
    options = craft_options(trained, options, corpus)
    opts = SampleOptions(prime=make_prime(title, opening), max_copy=max_copy, style=style,
                         **options).checked()
    # One song to the terminal or a pipe: printed as it comes, flushed at the first piece (it
    # shows the song has started) and then at every line end.
    first = [True]

    def show(piece: str) -> None:
        sys.stdout.write(piece)
        if first[0] or "\n" in piece:
            sys.stdout.flush()
            first[0] = False

    streaming = not (as_json or output or index)
    songs = write(trained, opts, copy_index=index, stream_to=show if streaming else None)
    if streaming and opts.num_songs == 1:
        sys.stdout.write("\n")
        sys.stdout.flush()
    elif not songs:
        raise click.ClickException(
            f"every song copied more than {max_copy} characters from the corpus, even after "
            f"{opts.retries} more {'try' if opts.retries == 1 else 'tries'}; raise "
            "--max-copy or --retries, or the --temp")
    else:
        show_songs(songs, trained, opts, as_json, output)
    cut = [song.number for song in songs if song.stop == "length"]
    tell_cut([None] if cut and opts.num_songs == 1 else cut, opts.length, opts.temperature)
    tell_seed(chosen_seed, opts.seed)


@cli.command(name="eval", short_help="Score a checkpoint on any text (bits per character).",
             epilog="""
        Examples:

        \b
          songgen eval other_lyrics.txt --checkpoint ck
          songgen eval old.txt --encoding latin-1 --skip-unknown --json
        """)
@click.argument("text", type=click.Path(exists=True, path_type=str))
@click.argument("checkpoint_arg", metavar="[CHECKPOINT]", required=False,
                type=click.Path(path_type=str))
@click.option("--checkpoint", type=click.Path(path_type=str),
              help="Checkpoint file, or a folder (its best.pt, else last.pt) [default: "
              "checkpoints]; may also be given as the argument CHECKPOINT.")
@click.option("--skip-unknown", is_flag=True,
              help="Skip characters the model never saw (counted) instead of failing.")
@device_option
@click.option("--encoding", metavar="NAME", callback=encoding_callback,
              help="The text encoding of TEXT, e.g. cp1252 [default: the run's own when TEXT is "
              "the text it was trained on, else utf-8].")
@corpus_cache_option("Where TEXT, encoded, is kept to be scored again without reading it: auto "
                     "reads the training run's own cache if it holds TEXT, else keeps it in your "
                     "cache folder (~/.cache/songgen/corpus, or $SONGGEN_CACHE_DIR), never in the "
                     "run's folder")
@json_option
@library_call
def eval_command(text, checkpoint_arg, checkpoint, skip_unknown, device, encoding, corpus_cache,
                 as_json):
    """Score the model in CHECKPOINT (a file, or a run's folder: its best.pt, else last.pt)
    [default: checkpoints] on TEXT: loss in nats and bits per character (lower is better).
    With styles, the whole text is scored as one mix, then each style's songs in their own
    style."""
    from ..run.trained import load_checkpoint
    from ..text.vocab import UnknownCharacters
    from ..training.evaluation import evaluate_text

    trained = load_checkpoint(one_checkpoint(checkpoint_arg, checkpoint), device=device)
    if encoding is None:
        encoding = _run_encoding(trained, text)
    try:
        score = evaluate_text(text, trained, skip_unknown=skip_unknown, device=device,
                              encoding=encoding, cache=corpus_cache)
    except UnknownCharacters as exc:
        raise click.ClickException(f"{exc.what}; add --skip-unknown to score the rest") from None
    if as_json:
        click.echo(json.dumps({"loss": score.loss, "bits_per_char": score.bits_per_char,
                               "chars": score.chars, "skipped": score.skipped,
                               "styles": score.styles, "checkpoint": str(trained.path),
                               "step": trained.step}))
        return
    from .output import describe_score

    click.echo(describe_score(score, trained))


@cli.command(short_help="Show what a checkpoint or run holds, and whether it is intact.",
             epilog="""
        Examples:

        \b
          songgen info ck
          songgen info ck/last.pt --json
        """)
@click.argument("checkpoint", required=False, type=click.Path(path_type=str))
@json_option
@library_call
def info(checkpoint, as_json):
    """Show what CHECKPOINT holds, and whether it is intact; for a run folder [default:
    checkpoints], the run (its latest step and its best) and the checkpoint that sample and
    eval use for it (best.pt, else last.pt)."""
    from ..run.checkpoint import info as checkpoint_info

    summary = the_one_used(checkpoint_info(checkpoint), checkpoint_info)
    click.echo(json.dumps(summary, indent=2) if as_json else describe(summary))



cli.add_command(check)


# --- songgen studio: serve and plot ---------------------------------------------------------

@cli.command(short_help="A local page to write songs and watch training.", epilog="""
        Examples:

        \b
          songgen serve --open
          songgen serve --runs runs/ --port 8080
        """)
@click.option("--runs", default="checkpoints", show_default=True,
              type=click.Path(exists=True, file_okay=False, path_type=str),
              help="The folder whose checkpoints and training runs the page shows (searched "
              "down its subfolders).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on: 127.0.0.1 (any of 127.x.x.x) or ::1 for this computer "
              "only; 0.0.0.0 or :: lets others on the network use it with a token printed at "
              "start.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free one).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a web browser.")
@library_call
def serve(runs, host, port, open_browser):
    """Serve songgen studio: a local web page to write songs with your models (streamed as
    they are written, side by side), co-write, and watch training curves live.

    A writing from the page is at most 16 songs of 20,000 characters and 2 minutes (songgen
    sample allows far more). Stop it with Ctrl-C.
    """
    from ..studio import serve as serve_studio

    serve_studio(runs, host=host, port=port, open_browser=open_browser)


@cli.command(short_help="Draw training curves of runs to an SVG file.", epilog="""
        Examples:

        \b
          songgen plot ck -o curves.svg
          songgen plot ck ck2 runs/ -o compare.svg
        """)
@click.argument("runs", nargs=-1, type=click.Path(exists=True, path_type=str))
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=str),
              help="The SVG file to write; it must not exist yet [default: curves.svg, or "
                   "curves-2.svg, curves-3.svg... where that exists].")
@library_call
def plot(runs, output):
    """Draw the training and validation loss of RUNS (checkpoint folders, searched down their
    subfolders, or metrics.jsonl files) [default: checkpoints] as an SVG file: by step and by
    elapsed time, in nats and bits per character, one colour per run. songgen never
    overwrites a file."""
    from ..run.curves import new_name
    from ..run.curves import plot as plot_curves

    output = output or str(new_name("curves.svg"))
    drawn = plot_curves(list(runs), output)
    click.echo(f"wrote {output} ({len(drawn)} run{'' if len(drawn) == 1 else 's'})", err=True)


# --- songgen explain: inside the model (its parsing is songgen/cli/explain.py) -------------


cli.add_command(explain)
