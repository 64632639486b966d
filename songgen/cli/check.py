"""The `check` command: what in a text is not lyrics (songgen/text/notlyrics.py finds it), told
with its file and line, and a clean copy written on request (never over a file)."""

from __future__ import annotations

import click

from .exits import library_call
from .options import encoding_option
from .output import write_new_file


@click.command(short_help="Find what in a text is not lyrics; -o writes a clean copy.", epilog="""
        Examples:

        \b
          songgen check book.txt
          songgen check book.txt -o lyrics.txt
          songgen check lyrics/ -o lyrics-clean/

        What is looked for: docs/lyrics-format.md.
        """)
@click.argument("text", type=click.Path(exists=True, path_type=str))
@click.option("--output", "-o", type=click.Path(path_type=str),
              help="Write a copy of TEXT without what is not lyrics to this new file (a new "
              "folder for a folder).")
@encoding_option("TEXT")
@library_call
def check(text, output, encoding):
    """Find what in TEXT (a lyrics file or folder) is not lyrics: a Project Gutenberg licence
    header and footer (training leaves these out by itself), page numbers, bracketed notes and
    illustrations, footnotes and their marks, music marks, index and contents pages, prose
    paragraphs, a text too small to learn from; each with its file and line.

    Training reads all but the licence as it is; with -o, a copy without any of it is written
    (never over an existing file) to look at before training on it.
    """
    from ..files import refuse_existing
    from ..text.notlyrics import check_text

    if output is not None:
        refuse_existing(output)
    checked = check_text(text, encoding)
    click.echo(describe_check(checked))
    if output is not None:
        click.echo(write_cleaned(checked, output), err=True)


def describe_check(checked, shown: int = 10) -> str:
    """`songgen check` as text: what in the text is not lyrics, each kind with its places."""
    from ..text.notlyrics import KINDS, licence_line, too_small

    lines_read = sum(r.lines for r in checked.reports)
    files = len(checked.reports)
    head = (f"{checked.path}: {lines_read:,} lines" +
            (f" in {files:,} files" if files > 1 else "") + f", {checked.chars:,} characters")
    if checked.clean():
        return f"{head}; nothing in it looks like anything but lyrics"
    out = [head]
    out += [line for line in map(licence_line, checked.reports) if line]
    small = too_small(checked.path, checked.chars)
    if small:
        out.append(small)
    if any(r.found for r in checked.reports):
        out.append("what looks like more than lyrics (training reads it as it is; "
                   "-o writes a copy without it):")
    for kind, (one, many) in KINDS.items():
        places = [(r.path, line, text) for r in checked.reports if kind in r.found
                  for line, text in r.found[kind].places]
        if not places:
            continue
        out.append(f"  {len(places):,} {one if len(places) == 1 else many}")
        out += [f"    {path}:{line} {text!r}" for path, line, text in places[:shown]]
        if len(places) > shown:
            out.append(f"    ... and {len(places) - shown:,} more")
    return "\n".join(out)


def write_cleaned(checked, output: str) -> str:
    """Write the clean copy of a checked text (a new file, or a new folder of the files of a
    folder); returns what was written, for the user."""
    from pathlib import Path

    source = Path(checked.path)
    if source.is_dir():
        for index, report in enumerate(checked.reports):
            target = Path(output) / Path(report.path).relative_to(source)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise click.ClickException(f"cannot create {target.parent}: "
                                           f"{exc.strerror or exc}") from None
            write_new_file(str(target), checked.cleaned(index))
    else:
        write_new_file(output, checked.cleaned(0))
    total = sum(r.lines for r in checked.reports)
    return (f"wrote {output}: {checked.left_out:,} of {total:,} lines left out; look it over, "
            f"then train on it: songgen train {output}")
