"""`songgen sample`: its options, made from the request's fields (songgen/writing/request.py:
their defaults, limits and, where the words fit, help), and what it decides around its one
library call (a prime file read, a title or prime fitted to the model, the seed told, the songs
shown)."""

from __future__ import annotations

import sys
import warnings

import click

from .exits import library_call
from .options import (as_requested, device_option, encoding_callback, request_option,
                      threads_option)
from .output import (base_if_no_run, fit_to_model, measures_told, one_checkpoint,
                     read_prime_file, show_songs, tell_cut, tell_seed)


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
@request_option("temperature", "--temp", "--temperature")
@request_option("top_k", "--top-k")
@request_option("top_p", "--top-p")
@click.option("--title", help="Start the song with this title line (# TITLE).")
@request_option("prime", "--prime", help="Start the song with this text (\\n for a new line).")
@click.option("--prime-file", type=click.Path(exists=True, dir_okay=False, allow_dash=True,
                                              path_type=str),
              help="Start the song with the text of this file (- for standard input).")
@request_option("length", "--length")
@request_option("max_lines", "--max-lines")
@request_option("num_songs", "--num-songs", "-n")
@request_option("seed", "--seed", help="Random seed: the same seed and options (-n included) "
                "give the same songs.")
@request_option("corpus", "--corpus", type=click.Path(exists=True, path_type=str),
                help="The training text: report each song's longest passage copied from it.")
@request_option("max_copy", "--max-copy", help="With --corpus: write a song again if it "
                "copies more than N characters in a row.")
@request_option("retries", "--retries",
                help="With --max-copy: how many times to write a copying song again.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=str),
              help="Write the songs (or JSON) to this new file instead of stdout.")
@request_option("shape", "--shape")
@request_option("rhyme", "--rhyme", metavar="auto|off|PATTERN", callback=as_requested)
@request_option("chorus", "--chorus")
@request_option("scan", "--scan")
@request_option("words", "--words", metavar="RATE")
@device_option
@threads_option
@request_option("precision", "--precision")
@click.option("--strict", is_flag=True, help="Refuse a title or prime with characters the model "
              "never saw, instead of replacing them with close ones (Z -> z, é -> e) or "
              "dropping them.")
@click.option("--encoding", metavar="NAME", callback=encoding_callback,
              help="The text encoding of --prime-file and --corpus, e.g. cp1252 [default: "
              "utf-8; for --corpus, the one the model was trained with].")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON Lines on stdout: one JSON object per song, a line each.")
@request_option("style", "--style", metavar="NAME|NAME=W,...",
                help="Write in one of the model's styles (songgen info lists them), or a blend "
                "of them: cowboy=0.7,burns=0.3 [default: no style, the mix of all].")
@library_call
def sample(checkpoint_arg, checkpoint, device, threads, as_json, title, prime, prime_file,
           output, strict, encoding, **options):
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
    from ..run.trained import load_checkpoint, with_style
    from ..text.reading import describe_chars, normalise
    from ..writing.copycheck import open_copy_index
    from ..writing.request import SampleOptions
    from ..writing.sampling import make_prime, write

    checkpoint = one_checkpoint(checkpoint_arg, checkpoint)
    if prime and prime_file:
        raise click.UsageError("--prime and --prime-file cannot be combined; put the whole "
                               "opening in one of them")
    corpus, max_copy = options["corpus"], options["max_copy"]
    if max_copy is not None and corpus is None:
        raise click.UsageError("--max-copy needs --corpus (the text the model was trained on)")
    if output is not None:
        refuse_existing(output)
    import torch

    from ..model.devices import free_cores

    # One song is written a character at a time: on a busy machine, threads that wait for a
    # taken core cost far more than they bring.
    torch.set_num_threads(threads or free_cores())
    trained = base_if_no_run(checkpoint, device)
    # In the style asked for from here on (an unknown one is refused before any work).
    trained = with_style(trained or load_checkpoint(checkpoint, device=device), options["style"])
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
    opts = SampleOptions(prime=make_prime(title, opening), **options).checked()
    # One song to the terminal or a pipe: printed as it comes, flushed at the first piece (it
    # shows the song has started) and then at every line end.
    first = [True]

    def show(piece: str) -> None:
        sys.stdout.write(piece)
        if first[0] or "\n" in piece:
            sys.stdout.flush()
            first[0] = False

    streaming = not (as_json or output or index)
    with measures_told(trained.path):
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
        show_songs(songs, trained, as_json, output)
    cut = [song.number for song in songs if song.stop == "length"]
    tell_cut([None] if cut and opts.num_songs == 1 else cut, opts.length, opts.temperature)
    # The seed drawn for a request without one is told, so that a song worth keeping can be
    # written again (JSON carries it; at --temp 0 no seed plays a part).
    tell_seed(options["seed"] is None and not as_json and opts.temperature > 0, opts.seed)
