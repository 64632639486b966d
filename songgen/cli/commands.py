"""The command line's commands (the `songgen` group): each is option parsing plus one library
call. How a command body runs (errors, exit codes, Ctrl-C) is songgen/cli/exits.py, the shared
options songgen/cli/options.py, and what sample and info print songgen/cli/output.py.

PyTorch is imported only inside commands, so `songgen --help` answers at once.
"""

from __future__ import annotations

import json

import click

from .. import __version__
from .check import check  # each command in its own module, added to the group below
from .exits import library_call
from .explain import explain, run_encoding
from .options import corpus_cache_option, device_option, encoding_callback, json_option
from .output import describe, one_checkpoint, the_one_used
from .sample import sample
from .train import train

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
        encoding = run_encoding(trained, text)
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
    from ..run.info import info as checkpoint_info

    summary = the_one_used(checkpoint_info(checkpoint), checkpoint_info)
    click.echo(json.dumps(summary, indent=2) if as_json else describe(summary))



cli.add_command(check)
cli.add_command(train)
cli.add_command(sample)


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
