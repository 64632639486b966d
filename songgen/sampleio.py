"""What `songgen sample` reads and writes besides the model: a prime file, the songs as
JSON records or a new file, and the seed it chose."""

from __future__ import annotations

import sys

import click


def tell_seed(chosen: bool, seed: int) -> None:
    if chosen:
        click.echo(f"seed {seed} (--seed {seed} with the same options writes this again)",
                   err=True)


def read_prime_file(path: str) -> str:
    """A prime file (or stdin for -), read and normalised like a corpus file."""
    from .corpus import decode_text, read_text

    return decode_text(sys.stdin.buffer.read(), "standard input") if path == "-" else read_text(path)


def song_record(song, trained, options) -> dict:
    return {"number": song.number, "text": song.text, "title": song.title, "chars": song.chars,
            "stop": song.stop, "bits_per_char": round(song.bits_per_char, 4), "seed": song.seed,
            "temperature": options["temperature"], "top_k": options["top_k"],
            "top_p": options["top_p"], "checkpoint": str(trained.path), "step": trained.step,
            "longest_copy": None if song.copy is None else song.copy.length,
            "longest_copy_text": None if song.copy is None else song.copy.text,
            # [shape hook] how the song was shaped and what shape it has
            "shape": {"mode": song.shape, "guided_end": song.guided_end, **song.form}}


def write_new_file(path: str, text: str) -> None:
    """Write all of `text` to `path` atomically (never a half-written song file)."""
    from .atomicfile import write_atomically

    try:
        write_atomically(path, lambda f: f.write(text.encode("utf-8")))
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None
