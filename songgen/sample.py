"""Generation: prime, temperature, top-k/top-p, end-of-song stop, several songs as one batch."""

from __future__ import annotations

import itertools
import math
import secrets
import warnings
from pathlib import Path
from typing import Iterator

import torch

from .checkpoint import Trained, load_checkpoint
from .corpus import EOS, describe_chars, normalise
from .copycheck import CopyIndex
from .errors import ConfigError, SonggenWarning
from .limits import MAX_LENGTH, MAX_SONGS, MAX_TEMPERATURE
from .songbook import Song, SongBatch
from .stepper import StepState

_TINY = torch.finfo(torch.float32).tiny


def make_prime(title: str | None, *texts: str) -> str:
    """A song's opening: the title line in the corpus format, then the given text. A title
    typed with the format's "# " already in front does not get a second one."""
    title = (title or "").strip()
    title = title[2:].strip() if title.startswith("# ") else title
    head = f"# {title}\n\n" if title else ""
    return normalise(head + "".join(texts))


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Keep the `top_k` most likely symbols and the smallest set whose probability reaches
    `top_p`; the rest get -inf. logits: (batch, vocab)."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a symbol when the ones before it already reach top_p (the first always stays).
        drop = probs.cumsum(dim=-1) - probs >= top_p
        drop = torch.zeros_like(drop).scatter(-1, order, drop)
        logits = logits.masked_fill(drop, -math.inf)
    return logits


def draw(scores: torch.Tensor, gen: torch.Generator, temperature: float = 1.0) -> torch.Tensor:
    """One symbol per row of `scores` (n, vocab), drawn from softmax(scores / temperature).

    Exponential race: with E ~ Exp(1), the argmax of p / E is a draw from p, and so is the
    argmax of scores - temperature * log E (the same order, in logs). That is a few cheap
    operations, where torch.multinomial and a softmax cost several times more for one row.
    The clamp keeps log 0 out, so a symbol whose score is -inf can never win.
    """
    race = torch.empty_like(scores).exponential_(generator=gen).clamp_(min=_TINY).log_()
    return torch.add(scores, race, alpha=-temperature).argmax(dim=-1)


def _check(trained: Trained, prime: str, num_songs: int, temperature: float, top_k: int,
           top_p: float, length: int) -> None:
    if not 1 <= num_songs <= MAX_SONGS:
        raise ConfigError(f"the number of songs must be between 1 and {MAX_SONGS:,}")
    if not 1 <= length <= MAX_LENGTH:
        raise ConfigError(f"the length must be between 1 and {MAX_LENGTH:,} characters")
    if not 0 <= temperature <= MAX_TEMPERATURE:  # NaN fails too
        raise ConfigError(f"the temperature must be 0 (greedy) to {MAX_TEMPERATURE:g}")
    if top_k < 0:
        raise ConfigError("top-k must be 0 (off) or more")
    if not 0 < top_p <= 1:
        raise ConfigError("top-p must be above 0 and at most 1")
    unknown = trained.vocab.unknown(prime.replace(EOS, ""))
    if EOS in prime or unknown:
        shown = describe_chars(unknown + ([EOS] if EOS in prime else []))
        raise ConfigError(f"the prime has characters the model never saw: {shown}; "
                          "remove or replace them")
    if len(prime) >= length:
        raise ConfigError(f"the opening text ({len(prime)} characters, any title line included) "
                          f"is as long as the length limit ({length}); raise the length")


@torch.inference_mode()
def _steps(trained: Trained, n: int, prime: str, temperature: float, top_k: int, top_p: float,
           length: int, gen: torch.Generator, precision: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield, per generated position, the chosen ids (n,) and their log-probabilities (n,).

    The LSTM state is carried: each step feeds one character, never the window again.
    """
    model, device = trained.model, trained.device
    # Start after an end-of-song symbol, as every song in training did, then read the prime
    # in one call; after that, step one character at a time on the packed weights.
    ids = [0] + trained.vocab.encode(prime).tolist()
    x = torch.tensor(ids, device=device).expand(n, -1)           # (n, 1 + len(prime))
    state = tuple(t.expand(-1, n, -1).contiguous() for t in trained.start_state)
    logits, state = model(x, state)
    logits = logits[:, -1].float()                                # (n, vocab)
    stepper, layers = trained.stepper(precision), StepState(state)
    for _ in range(length - len(prime)):
        # Sample from the reshaped distribution; score with the model's own one.
        logp = torch.log_softmax(logits, dim=-1)
        if temperature == 0:
            chosen = logits.argmax(dim=-1)
        elif top_k or top_p < 1:
            chosen = draw(filter_logits(logits / temperature, top_k, top_p), gen)
        else:
            chosen = draw(logits, gen, temperature)
        yield chosen, logp.gather(1, chosen[:, None]).squeeze(1)
        logits = stepper.step(chosen, layers)


def _generator(seed: int | None, device: torch.device) -> tuple[torch.Generator, int]:
    seed = secrets.randbits(31) if seed is None else seed
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen, seed


def _write(trained: Trained, batch: SongBatch, prime: str, temperature: float, top_k: int,
           top_p: float, length: int, gen: torch.Generator,
           precision: str) -> Iterator[list[str | None]]:
    """Run the model until every song of `batch` has stopped; yield each step's new characters."""
    if batch.finished:
        return
    n = len(batch.stop)
    for chosen, logp in _steps(trained, n, prime, temperature, top_k, top_p, length, gen,
                               precision):
        yield batch.add(chosen.tolist(), logp.tolist())
        if batch.finished:
            return


def generate(checkpoint: str | Path | Trained | None = None, *, num_songs: int = 1,
             temperature: float = 0.8, top_k: int = 0, top_p: float = 1.0, prime: str = "",
             length: int = 3000, max_lines: int | None = None, seed: int | None = None,
             device: str = "auto", precision: str = "auto", copy_index: CopyIndex | None = None,
             max_copy: int | None = None, retries: int = 5) -> list[Song]:
    """Write `num_songs` songs at once (one batch of parallel LSTM streams).

    Each song starts with `prime` and ends at the model's end-of-song symbol, after `max_lines`
    lines of lyrics, or at `length` characters. The same seed and options give the same songs.
    With `copy_index`, each song reports its longest passage copied from the corpus; with
    `max_copy` too, songs copying more than that many characters are written again, up to
    `retries` times, and left out (with a warning) if they still copy.
    """
    trained = checkpoint if isinstance(checkpoint, Trained) else load_checkpoint(checkpoint, device)
    _check(trained, prime, num_songs, temperature, top_k, top_p, length)
    gen, seed = _generator(seed, trained.device)
    results: list[Song | None] = [None] * num_songs
    pending = list(range(num_songs))
    for attempt in range(retries + 1):
        batch = SongBatch(len(pending), prime, trained.vocab.chars, max_lines)
        for _ in _write(trained, batch, prime, temperature, top_k, top_p, length, gen, precision):
            pass
        rejected = []
        for index, song in zip(pending, batch.songs(seed)):
            if copy_index is not None:
                song.copy = copy_index.longest_copy(song.text)
                if max_copy is not None and song.copy.length > max_copy:
                    rejected.append(index)
                    warnings.warn(f"song {index + 1} copied {song.copy.length} characters from "
                                  f"the corpus; writing it again (try {attempt + 2} of "
                                  f"{retries + 1})" if attempt < retries else
                                  f"song {index + 1} still copied {song.copy.length} characters "
                                  f"after {retries + 1} {'try' if retries == 0 else 'tries'}; it "
                                  "is left out", SonggenWarning)
                    continue
            song.number = index + 1
            results[index] = song
        pending = rejected
        if not pending:
            break
    return [song for song in results if song is not None]


def stream(checkpoint: str | Path | Trained | None = None, *, temperature: float = 0.8,
           top_k: int = 0, top_p: float = 1.0, prime: str = "", length: int = 3000,
           max_lines: int | None = None, seed: int | None = None, device: str = "auto",
           precision: str = "auto") -> Iterator[str]:
    """One song, yielded a character at a time as it is generated (the prime comes first).

    Gives the same song as `generate` with the same seed and options."""
    trained = checkpoint if isinstance(checkpoint, Trained) else load_checkpoint(checkpoint, device)
    _check(trained, prime, 1, temperature, top_k, top_p, length)
    gen, _ = _generator(seed, trained.device)
    batch = SongBatch(1, prime, trained.vocab.chars, max_lines)
    written = (new[0] for new in _write(trained, batch, prime, temperature, top_k, top_p,
                                        length, gen, precision) if new[0] is not None)
    # Line ends are held back until more text follows: a song cut after its last allowed line
    # ends without them, as in `generate`.
    held = ""
    for piece in itertools.chain([prime], written):
        body = piece.rstrip("\n")
        if body:
            yield held + body
            held = piece[len(body):]
        else:
            held += piece
    if held and batch.stop[0] != "max-lines":
        yield held


# --- Live writing (songgen studio) ------------------------------------------------------------
# Songs written side by side and shown as they are written: the same procedure as `generate`,
# yielding every step's new characters instead of only the finished songs.

def write_live(checkpoint: str | Path | Trained | None = None, *, num_songs: int = 1,
               temperature: float = 0.8, top_k: int = 0, top_p: float = 1.0, prime: str = "",
               length: int = 3000, max_lines: int | None = None, more_lines: int | None = None,
               seed: int | None = None, device: str = "auto", precision: str = "auto",
               copy_index: CopyIndex | None = None, max_copy: int | None = None,
               retries: int = 5) -> Iterator[tuple]:
    """Write `num_songs` songs at once, as `generate` does, and tell each step as it happens.

    Yields tagged tuples, in this order:
      ("prime", text)            the opening every song starts with, once
      ("chars", [c or None])     per step: the new character of each of the `num_songs` songs
                                 (None for a song that has stopped or is not being written)
      ("retry", number, copy)    with `max_copy`: song `number` (from 1) copied `copy.length`
                                 characters and is written again from the prime
      ("song", Song)             a finished song, as `generate` returns it
      ("dropped", number, copy)  with `max_copy`: song `number` still copied after `retries`
    `more_lines` stops each song after that many lines of lyrics beyond those of the prime
    (e.g. 1: one new line). The same seed and options give the songs `generate` gives. Closing
    the generator stops the writing at once.
    """
    trained = checkpoint if isinstance(checkpoint, Trained) else load_checkpoint(checkpoint, device)
    _check(trained, prime, num_songs, temperature, top_k, top_p, length)
    if more_lines is not None:
        counted = SongBatch(1, prime, trained.vocab.chars, None).lines[0]
        max_lines = counted + more_lines if max_lines is None else min(max_lines,
                                                                        counted + more_lines)
    gen, seed = _generator(seed, trained.device)
    yield ("prime", prime)
    pending = list(range(num_songs))
    for attempt in range(retries + 1):
        batch = SongBatch(len(pending), prime, trained.vocab.chars, max_lines)
        for new in _write(trained, batch, prime, temperature, top_k, top_p, length, gen,
                          precision):
            shown: list[str | None] = [None] * num_songs
            for index, c in zip(pending, new):
                shown[index] = c
            yield ("chars", shown)
        rejected = []
        for index, song in zip(pending, batch.songs(seed)):
            song.number = index + 1
            if copy_index is not None:
                song.copy = copy_index.longest_copy(song.text)
                if max_copy is not None and song.copy.length > max_copy:
                    rejected.append(index)
                    yield ("retry" if attempt < retries else "dropped", index + 1, song.copy)
                    continue
            yield ("song", song)
        pending = rejected
        if not pending:
            break
