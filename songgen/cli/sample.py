"""`songgen sample`: its options, and what it decides around its one library call (the seed
told, a prime file read, the rhyme asked for checked, the songs shown)."""

from __future__ import annotations

import secrets
import sys
import warnings

import click

from ..config import MAX_LENGTH, MAX_SEED, MAX_SONGS, MAX_TEMPERATURE
from .exits import library_call
from .options import device_option, encoding_callback, threads_option
from .output import (base_if_no_run, check_rhyme, craft_options, fit_to_model, read_prime_file,
                     show_songs, tell_cut, tell_seed)


@click.command(short_help="Write new songs with a trained model.", epilog="""
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
    from ..writing.request import SampleOptions
    from ..writing.sampling import make_prime, write

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
    from ..run.trained import with_style

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
