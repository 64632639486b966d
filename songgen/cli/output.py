"""What the sample and info commands print, and the sample command's dealings with the user
around its one library call: the seed told, a prime file read, a title or prime fitted to the
model's characters, an old checkpoint's missing measures told with the options to change,
songs shown or written (text or JSON lines)."""

from __future__ import annotations

import contextlib
import json
import sys
import warnings

import click

# -- what sample and info print ----------------------------------------------------------

def tell_seed(chosen: bool, seed: int) -> None:
    if chosen:
        click.echo(f"seed {seed} (--seed {seed} with the same options writes this again)",
                   err=True)


def base_if_no_run(checkpoint, device: str):
    """The bundled base model, loaded, when no checkpoint is given and checkpoints/ holds no
    run (said in one line); None otherwise. Neither a run nor a base model is an error."""
    from ..run.basemodel import NAME, DamagedBaseModel, has_run, load_base_model

    if checkpoint is not None or has_run("checkpoints"):
        return None
    try:
        trained = load_base_model(device)
    except DamagedBaseModel as exc:
        raise click.ClickException(f"{exc.what}; reinstall songgen, or train a model of your "
                                   "own: songgen train TEXT --from-scratch") from None
    if trained is None:  # said here: "no checkpoint in checkpoints" left the user wondering
        raise click.ClickException("no run in checkpoints (no best.pt or last.pt) and no base "
                                   "model is bundled with this installation of songgen; train "
                                   "a model first (songgen train TEXT) or give a checkpoint path")
    click.echo(f"no run in checkpoints: writing with songgen's base model {NAME} "
               "(public-domain verse); to write like your songs: songgen train TEXT", err=True)
    return trained


def read_prime_file(path: str, encoding: str = "utf-8") -> str:
    """A prime file (or stdin for -), read and normalised like a corpus file."""
    from ..text.reading import decode_text, read_text

    if path == "-":
        return decode_text(sys.stdin.buffer.read(), "standard input", encoding=encoding)
    return read_text(path, encoding)


def fit_to_model(vocab, text: str, what: str) -> str:
    """A title or prime with the characters the model never saw replaced by close ones it
    knows (Z -> z, é -> e) or dropped, each change told in a warning; an error when nothing
    usable is left."""
    from ..errors import SonggenWarning
    from ..text.reading import describe_chars

    fitted, changes = vocab.fit(text)
    if not changes:
        return text
    if text.strip() and not fitted.strip():
        raise click.ClickException(
            f"{what} has only characters the model never saw: "
            f"{describe_chars(sorted(c for c, _ in changes))}; write it with characters of the "
            "training text")
    told = "; ".join(f"{describe_chars([c])} became {new!r}" if new else
                     f"{describe_chars([c])} was dropped" for c, new in changes)
    warnings.warn(f"{what} has characters the model never saw: {told}", SonggenWarning)
    return fitted


def tell_cut(songs, length: int, temperature: float) -> None:
    """Say which songs were cut at the length limit, rather than ended by the model."""
    advice = ("greedy decoding (--temp 0) tends to repeat one phrase; raise --temp"
              if temperature == 0 else "raise --length")
    for number in songs:
        which = "the song" if number is None else f"song {number}"
        click.echo(f"{which} was cut at {length:,} characters; {advice}", err=True)


def write_new_file(path: str, text: str) -> None:
    """Write all of `text` to `path`, a new file, atomically (never a half-written song file,
    never over a file)."""
    from ..files import write_new

    write_new(path, text.encode("utf-8"))


def one_checkpoint(argument: str | None, option: str | None) -> str | None:
    """The checkpoint given as the argument CHECKPOINT or as --checkpoint (not two)."""
    if argument is not None and option is not None and option != argument:
        raise click.UsageError(f"two checkpoints given: {argument} and --checkpoint {option}; "
                               "give one")
    return argument if argument is not None else option


def the_one_used(summary: dict, read) -> dict:
    """`info` of a run folder: the run, with the details of the checkpoint that sample and
    eval take from it (best.pt, else last.pt) rather than of the latest. `read`: info of a
    path."""
    if "run" not in summary:
        return summary
    latest = {"checkpoint": summary["checkpoint"], "step": summary["step"]}
    best = summary["best_checkpoint"]
    if best is not None and best["checkpoint"] != summary["checkpoint"]:
        summary = {**read(best["checkpoint"]), "run": summary["run"], "best_checkpoint": best,
                   "problems": summary["problems"]}
    return {**summary, "latest_checkpoint": latest}


def describe_score(score, trained) -> str:
    """`songgen eval` as text: the whole text's score, with the checkpoint that gave it; for a
    model with styles, that whole-text line reads every song with no style (the mix of all),
    and a line for each style reads that style's songs in it."""
    from ..training.progress import LN2

    counted = f"{score.chars:,} characters" + (
        f", {score.skipped:,} unknown skipped" if score.skipped else "")
    if score.styles:
        counted += ", every song read with no style: the mix of all"
    lines = [f"{score.loss:.4f} nats/char  {score.bits_per_char:.4f} bits/char  ({counted}; "
             f"checkpoint {trained.path}, step {trained.step:,})"]
    lines += [f"{loss:.4f} nats/char  {loss / LN2:.4f} bits/char  style {name} (its songs, read "
              "in that style)" for name, loss in (score.styles or {}).items()]
    return "\n".join(lines)


def describe(summary: dict) -> str:
    """`songgen info` as text."""
    from ..training.progress import describe_loss

    m, t = summary["model"], summary["training"] or {}
    lines = []
    used = ""
    if "run" in summary:
        best, latest = summary["best_checkpoint"], summary["latest_checkpoint"]
        lines.append(f"run          {summary['run']}: latest step {latest['step']:,}" + (
            f", best at step {best['step']:,} ({describe_loss(best['val_loss'])})" if best
            else ", no best.pt"))
        lines += [f"problem      {problem}" for problem in summary["problems"]]
        used = " (the one sample and eval use for the run; below, what it holds)"
    integrity = ("intact (its checksum matches its contents)" if summary["checksum"] else
                 "not checked: written before checkpoints carried a checksum")
    base = summary["init_from"]
    lines += [
        f"checkpoint   {summary['checkpoint']}{used}",
        f"integrity    {integrity}",
        f"model        {m['layers']}x{m['hidden_size']} LSTM, embedding {m['embed_dim']}, "
        f"dropout {m['dropout']}, vocabulary {summary['vocab_size']}",
        f"corpus       {summary['corpus'] or 'not recorded'} (fingerprint "
        f"{summary['corpus_fingerprint']})",
        f"training     step {summary['step']:,}, epoch {summary['epoch']}, batch "
        f"{t.get('batch_size')} x seq {t.get('seq_len')}, {_learning_rate(summary)}",
        f"best val     {describe_loss(summary['best_val_loss'])}",
        "songcraft    " + _songcraft(summary.get("songcraft")),
    ]
    table = summary.get("styles")
    if isinstance(table, dict) and table.get("names"):
        lines.append(f"styles       {len(table['names'])}: " + ", ".join(
            f"{name} ({songs:,} songs, {chars:,} chars)" for name, songs, chars in
            zip(table["names"], table.get("songs") or [], table.get("chars") or [])))
    for i, (name, choice) in enumerate((summary.get("choices") or {}).items()):
        if isinstance(choice, dict):
            lines.append(f"{'chosen' if i == 0 else '':<13}{name} {choice.get('value')}: "
                         f"{choice.get('reason')}")
    if base and base.get("base_model"):  # started from songgen's bundled base model
        lines.append(f"fine-tuned   from songgen's base model {base['base_model']} (step "
                     f"{base.get('step')}, {base.get('checksum')})")
    elif base:
        lines.append(f"fine-tuned   from {base.get('path')} (step {base.get('step')}, trained "
                     f"on {base.get('corpus') or 'an unrecorded corpus'})")
    history = summary["history"]
    if history:
        lines.append("history      step     train    val (nats/char)")
        # The first few and the last few evaluations; the middle is summed up in one row.
        shown = history if len(history) <= 9 else history[:3] + [None] + history[-5:]
        for h in shown:
            if h is None:
                lines.append(f"             ... ({len(history) - 8} more)")
                continue
            train_loss = "-" if h.get("train_loss") is None else f"{h['train_loss']:.4f}"
            lines.append(f"             {h['step']:<8} {train_loss:<8} {h['val_loss']:.4f}")
    return "\n".join(lines)


def _learning_rate(summary: dict) -> str:
    """The learning rate the run had at its last evaluation, and the one it started from where
    the schedule has changed it."""
    start = (summary["training"] or {}).get("lr")
    history = summary["history"]
    now = history[-1].get("lr") if history else None
    if now is None or start is None or f"{now:.3g}" == f"{start:.3g}":
        return f"lr {start}"
    return f"lr {now:.3g} now (the schedule's; it started at {start})"


def _songcraft(found: dict | None) -> str:
    """The rhyme, chorus and word figures of the training songs; the rhyme patterns named
    are those of rhyming stanzas (XXXX, a stanza that rhymes nowhere in its first four lines,
    is not one)."""
    if not found:
        return "not measured (written before songgen kept rhyme and chorus)"
    stanzas = max(found["stanzas"], 1)
    rhyming = sorted(((p, n) for p, n in found["patterns"].items() if set(p) != {"X"}),
                     key=lambda kv: -kv[1])[:4]
    top = ", ".join(f"{p} {n / stanzas:.0%}" for p, n in rhyming)
    return (f"in the {found['songs']:,} songs of the training part (the validation songs are "
            f"not measured): {found['rhyming_stanzas']:.0%} of {found['stanzas']:,} stanzas "
            f"rhyme" + (f" ({top})" if top else "") + f"; {found['repeat_songs']:.0%} of the "
            f"songs repeat a line (a chorus, first in stanza {found['chorus_stanza']}, back "
            f"{found['chorus_gap']} later); {found['words_kept']:,} words kept"
            + (f"; {found['scanning_lines']:.0%} of lines scan (stanza 2 on, within 2 "
               "syllables of the first stanza's)" if found.get("scanning_lines") is not None
               else ""))


@contextlib.contextmanager
def measures_told(path):
    """Around the library call: its policy for a checkpoint (`path`) without rhyme, chorus and
    word measures (songgen/writing/request.py, settle_measures) told with the options that
    change it: a note that it writes without them, or the error for a rhyme pattern."""
    from ..writing.request import NoMeasures, WithoutMeasures

    shown = warnings.showwarning

    def show(message, category, *args, **kwargs):
        if not issubclass(category, WithoutMeasures):
            return shown(message, category, *args, **kwargs)
        click.echo(f"note: {path} has no rhyme, chorus or word measures (written before "
                   "songgen kept them): writing without them; give --corpus (the text it was "
                   "trained on) to measure them", err=True)

    warnings.showwarning = show
    try:
        yield
    except NoMeasures as exc:
        raise click.ClickException(
            f"--rhyme {exc.rhyme} needs the training songs' measures, and {path} was written "
            "before songgen kept them; give the text it was trained on with --corpus, or use "
            "--rhyme off") from None
    finally:
        warnings.showwarning = shown


def show_songs(songs, trained, as_json: bool, output: str | None) -> None:
    """Songs (or their JSON lines, songgen/writing/record.py) on stdout or into a new file;
    copy reports on stderr."""
    from ..writing.record import song_record

    for song in songs:
        if song.copy is not None:
            click.echo(f"song {song.number}: longest passage copied from the corpus: "
                       f"{song.copy.length} characters" +
                       (f" ({song.copy.text[:60]!r})" if song.copy.length else ""), err=True)
    if as_json:
        text = "".join(json.dumps(song_record(song, str(trained.path), trained.step),
                                  ensure_ascii=False) + "\n" for song in songs)
    else:
        text = "\n\n\n".join(song.text for song in songs) + "\n" if songs else ""
    if output is None:
        click.echo(text, nl=False)
    else:
        write_new_file(output, text)
        click.echo(f"wrote {len(songs)} song{'' if len(songs) == 1 else 's'} to {output}",
                   err=True)
