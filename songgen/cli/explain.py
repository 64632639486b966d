"""`songgen explain`: a text scored character by character, as JSON Lines or a page (the
library call is songgen.inside.explain; the page songgen.inside.page), and the encoding a text is
read in when none is given (eval's rule too)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from .exits import library_call
from .options import device_option, encoding_callback, threads_option
from .output import one_checkpoint


def run_encoding(trained, text: str) -> str:
    """The encoding to read `text` in when none is given: the run's own where it is the text
    the run was trained on (as a resume reads it), else UTF-8."""
    recorded = trained.checkpoint.corpus
    config = trained.checkpoint.train_config
    if recorded and config is not None and Path(recorded).resolve() == Path(text).resolve():
        return config.encoding
    return "utf-8"


@click.command(short_help="Show what the model expected at each character of a text.",
               epilog="""
        Examples:

        \b
          songgen explain song.txt ck -o song.html
          songgen explain song.txt ck --json | head
          songgen sample ck | songgen explain - ck -o new.html

        What the page shows and how p is defined: docs/inside.md.
        """)
@click.argument("text", type=click.Path(exists=True, allow_dash=True, path_type=str))
@click.argument("checkpoint_arg", metavar="[CHECKPOINT]", required=False,
                type=click.Path(path_type=str))
@click.option("--checkpoint", type=click.Path(path_type=str),
              help="Checkpoint file, or a folder (its best.pt, else last.pt) [default: "
              "checkpoints].")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON Lines on stdout: one object per character, in order, with "
              "\"char\", \"p\" and \"top\" (the likeliest choices, [character, p] pairs).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=str),
              help="Write a self-contained HTML page to this new file: the text coloured by "
              "surprise, the choices at each character, the LSTM's cells.")
@click.option("--top", default=10, show_default=True, type=click.IntRange(1, 20),
              help="Choices listed for each character in --json.")
@device_option
@threads_option
@click.option("--encoding", metavar="NAME", callback=encoding_callback,
              help="The text encoding of TEXT, e.g. cp1252 [default: the run's own when TEXT is "
              "the text it was trained on, else utf-8].")
@library_call
def explain(text, checkpoint_arg, checkpoint, as_json, output, top, device, threads, encoding):
    """Score TEXT (a lyrics file or folder, or - for standard input) with the model in
    CHECKPOINT (a file, or a run's folder: its best.pt, else last.pt) [default: checkpoints], one
    character at a time: the probability the model gave each character at temperature 1, from the text
    before it, and the choices it had. The text is read and scored as songgen eval scores it,
    so the mean of -ln p is eval's loss.

    With neither --json nor -o, prints the loss and the characters that surprised the model
    most.
    """
    import tempfile

    import torch

    from ..errors import SonggenError
    from ..files import refuse_existing
    from ..inside.explain import PAGE_LIMIT, PageTooLong, explain_text
    from ..model.devices import free_cores
    from ..run.trained import load_checkpoint

    if output is not None:
        refuse_existing(output)
    torch.set_num_threads(threads or free_cores())
    trained = load_checkpoint(one_checkpoint(checkpoint_arg, checkpoint), device=device)
    if encoding is None:
        encoding = "utf-8" if text == "-" else run_encoding(trained, text)
    with tempfile.TemporaryDirectory() as folder:
        path = text
        if text == "-":  # read like any file: the lyrics reader takes a path
            path = os.path.join(folder, "standard input")
            with open(path, "wb") as handle:
                handle.write(sys.stdin.buffer.read())
        try:
            found = explain_text(path, trained, encoding=encoding, device=device,
                                 most=PAGE_LIMIT if output else None)
            if output:
                from ..inside.page import write_page

                write_page(found, output)
        except PageTooLong as exc:
            raise click.ClickException(f"{exc.what}; explain a part of it (one song, say), or "
                                       "use --json, which has no limit") from None
        except SonggenError as exc:
            if text != "-":
                raise
            raise click.ClickException(str(exc).replace(path, "standard input")) from None
    if as_json:
        for record in found.records(top):
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    elif not output:
        _summary(found)
    if output:
        click.echo(f"wrote {output} ({len(found):,} characters)", err=True)


def _summary(found) -> None:
    """The loss, and the ten characters that surprised the model most, each in its line."""
    import math

    import numpy as np

    from ..text.vocab import EOS

    def name(i) -> str:  # the end of a song is no character: named, not quoted
        return "[end]" if found.chars[int(i)] == EOS else repr(found.chars[int(i)])

    text = found.text().replace(EOS, "\n")
    click.echo(f"{found.loss:.4f} nats/char  {found.loss / math.log(2):.4f} bits/char  "
               f"({len(found):,} characters)")
    surprise = np.where(found.unknown, -np.inf, -found.logp)
    for i in np.argsort(-surprise)[:10]:
        if not np.isfinite(surprise[i]):
            break
        start = text.rfind("\n", 0, i) + 1
        end = text.find("\n", i)
        line = text[start:end if end >= 0 else len(text)]
        expected, char = name(found.top_ids[i, 0]), name(found.ids[i])
        click.echo(f"{surprise[i] / math.log(2):5.1f} bits  {char} where {expected} was "
                   f"likeliest: {line[:70]!r}")
