"""Generation: prime, temperature, top-k/top-p, end-of-song stop, several songs written side by
side as one batch (their text so far, why each stopped, its line count and score)."""

from __future__ import annotations

import itertools
import math
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from .trained import Trained, load_checkpoint
from .config import MAX_LENGTH, MAX_SONGS, MAX_TEMPERATURE
from .copycheck import Copy, CopyIndex
from .errors import ConfigError, SonggenWarning
from .lyrics import EOS, describe_chars, is_title_line, normalise, title_line, title_of
from .shape import ShapeGuide, resolve as resolve_shape
from .stepper import StepState
from .styles import with_style

_TINY = torch.finfo(torch.float32).tiny


@dataclass
class Song:
    text: str
    title: str | None
    seed: int
    stop: str               # "end" (the model ended it), "max-lines" or "length"
    bits_per_char: float    # the model's own surprise at what it wrote (temperature 1)
    copy: Copy | None = None  # longest passage copied from the corpus, when checked
    number: int = 1           # its place among the songs asked for (a left-out one leaves a gap)
    shape: str = "free"       # "song": steered by the corpus's shape; "free": not
    guided_end: bool = False  # the end came where the shape steered it

    @property
    def chars(self) -> int:
        return len(self.text)

    @property
    def ended(self) -> bool:
        return self.stop == "end"

    @property
    def form(self) -> dict:
        """Title line, blank line after it, stanzas and lyric lines."""
        from .shape import song_form

        return song_form(self.text)


class SongBatch:
    """Bookkeeping of songs written side by side: text so far, stop reasons, line counts."""

    def __init__(self, n: int, prime: str, chars: list[str], max_lines: int | None):
        self.chars, self.max_lines = chars, max_lines
        self.parts = [[prime] for _ in range(n)]
        self.stop: list[str | None] = [None] * n
        self.nats = [0.0] * n
        self.scored = [0] * n
        self.lines = [0] * n             # lyric lines finished so far
        self.seen = [0] * n              # all lines finished so far
        self.current = [""] * n          # the line being written
        self.shape = "free"              # set by the sampler, with:
        self.guided = [False] * n        # whether each song ended where the shape steered it
        for i in range(n):
            for c in prime:
                self._count_line(i, c)
            if max_lines is not None and self.lines[i] >= max_lines:
                self.stop[i] = "max-lines"

    def _count_line(self, i: int, c: str) -> None:
        if c != "\n":
            self.current[i] += c
            return
        line, self.current[i] = self.current[i], ""
        # A lyric line is not blank and not the title line the corpus format starts songs with.
        is_title = is_title_line(line, self.seen[i])
        self.seen[i] += 1
        if line.strip() and not is_title:
            self.lines[i] += 1

    def add(self, tokens: list[int], logps: list[float]) -> list[str | None]:
        """Take one generated symbol per song; return the new character of each live song."""
        new: list[str | None] = []
        for i, (token, lp) in enumerate(zip(tokens, logps)):
            if self.stop[i] is not None:
                new.append(None)
                continue
            self.nats[i] -= lp
            self.scored[i] += 1
            if token == 0:
                self.stop[i] = "end"
                new.append(None)
                continue
            c = self.chars[token]
            self.parts[i].append(c)
            self._count_line(i, c)
            if self.max_lines is not None and self.lines[i] >= self.max_lines:
                self.stop[i] = "max-lines"
            new.append(c)
        return new

    @property
    def finished(self) -> bool:
        return all(s is not None for s in self.stop)

    def songs(self, seed: int) -> list[Song]:
        out = []
        for i, parts in enumerate(self.parts):
            # A song cut after its last allowed line keeps no trailing line break, so songs
            # stay separated by exactly two blank lines.
            text = "".join(parts)
            if self.stop[i] == "max-lines":
                text = text.rstrip("\n")
            bpc = self.nats[i] / math.log(2) / max(self.scored[i], 1)
            out.append(Song(text, title_of(text), seed, self.stop[i] or "length", bpc,
                            number=i + 1, shape=self.shape,
                            guided_end=self.stop[i] == "end" and self.guided[i]))
        return out


def make_prime(title: str | None, *texts: str) -> str:
    """A song's opening: the title line in the corpus format, then the given text."""
    return normalise(title_line(title) + "".join(texts))


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
           length: int, gen: torch.Generator, precision: str,
           guide: ShapeGuide | None = None) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Yield, per generated position, the chosen ids (a list of n) and their log-probabilities (n,).

    The LSTM state is carried: each step feeds one character, never the window again. With a
    `guide`, the song's shape steers the choice (the log-probabilities stay the model's own).
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
        scores = logits if guide is None else guide.steer(logits)
        if temperature == 0:
            chosen = scores.argmax(dim=-1)
        elif top_k or top_p < 1:
            chosen = draw(filter_logits(scores / temperature, top_k, top_p), gen)
        else:
            chosen = draw(scores, gen, temperature)
        ids = chosen.tolist()  # the host needs them: to write the songs, and for the guide
        if guide is not None:
            guide.update(ids)
        yield ids, logp.gather(1, chosen[:, None]).squeeze(1)
        logits = stepper.step(chosen, layers)


def _generator(seed: int | None, device: torch.device) -> tuple[torch.Generator, int]:
    seed = secrets.randbits(31) if seed is None else seed
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen, seed


def _write(trained: Trained, batch: SongBatch, prime: str, temperature: float, top_k: int,
           top_p: float, length: int, gen: torch.Generator, precision: str,
           shape: str = "auto") -> Iterator[list[str | None]]:
    """Run the model until every song of `batch` has stopped; yield each step's new characters."""
    if batch.finished:
        return
    n = len(batch.stop)
    # The checkpoint's song shape steers sampling unless shape="free".
    guide = _guide(trained, shape, n, length, prime)
    batch.shape = "free" if guide is None else "song"
    for chosen, logp in _steps(trained, n, prime, temperature, top_k, top_p, length, gen,
                               precision, guide):
        yield batch.add(chosen, logp.tolist())
        if batch.finished:
            break
    if guide is not None:
        batch.guided = guide.guided


def _guide(trained: Trained, shape: str, n: int, length: int, prime: str) -> ShapeGuide | None:
    """The shape guide for `n` songs, having read `prime`; None to sample freely (asked for,
    or a checkpoint without a recorded shape or without line breaks)."""
    song_shape = resolve_shape(shape, trained.checkpoint.shape)
    if song_shape is None or "\n" not in trained.vocab.index:
        return None
    guide = ShapeGuide(song_shape, trained.vocab.chars, n, trained.device, length)
    guide.feed(trained.vocab.encode(prime).tolist())
    return guide


def generate(checkpoint: str | Path | Trained | None = None, *, num_songs: int = 1,
             temperature: float = 0.8, top_k: int = 0, top_p: float = 1.0, prime: str = "",
             length: int = 3000, max_lines: int | None = None, seed: int | None = None,
             device: str = "auto", precision: str = "auto", copy_index: CopyIndex | None = None,
             max_copy: int | None = None, retries: int = 5, shape: str = "auto",
             style: str | dict | None = None) -> list[Song]:
    """Write `num_songs` songs at once (one batch of parallel LSTM streams).

    Each song starts with `prime` and ends at the model's end-of-song symbol, after `max_lines`
    lines of lyrics, or at `length` characters. The same seed and options give the same songs.
    With `copy_index`, each song reports its longest passage copied from the corpus; with
    `max_copy` too, songs copying more than that many characters are written again, up to
    `retries` times, and left out (with a warning) if they still copy. `shape`: "auto" (or
    "song") keeps each song shaped like the corpus's songs (a title, stanzas, an ending in the
    corpus's range of lengths; see songgen/shape.py) where the checkpoint recorded their shape;
    "free" samples without it. `style`: one of a model's styles ("cowboy"), a blend
    ("cowboy=0.7,burns=0.3" or {"cowboy": 0.7, "burns": 0.3}), or None for none (the mix).
    """
    songs = []
    for event in write_live(checkpoint, num_songs=num_songs, temperature=temperature,
                            top_k=top_k, top_p=top_p, prime=prime, length=length,
                            max_lines=max_lines, seed=seed, device=device, precision=precision,
                            copy_index=copy_index, max_copy=max_copy, retries=retries,
                            shape=shape, style=style):
        if event[0] == "song":
            songs.append(event[1])
        elif event[0] == "retry":
            _, number, copy, next_try = event
            warnings.warn(f"song {number} copied {copy.length} characters from the corpus; "
                          f"writing it again (try {next_try} of {retries + 1})",
                          SonggenWarning)
        elif event[0] == "dropped":
            _, number, copy, _ = event
            warnings.warn(f"song {number} still copied {copy.length} characters after "
                          f"{retries + 1} {'try' if retries == 0 else 'tries'}; it is left out",
                          SonggenWarning)
    return sorted(songs, key=lambda song: song.number)


def stream(checkpoint: str | Path | Trained | None = None, *, temperature: float = 0.8,
           top_k: int = 0, top_p: float = 1.0, prime: str = "", length: int = 3000,
           max_lines: int | None = None, seed: int | None = None, device: str = "auto",
           precision: str = "auto", shape: str = "auto",
           style: str | dict | None = None) -> Iterator[str]:
    """One song, yielded a character at a time as it is generated (the prime comes first).

    Gives the same song as `generate` with the same seed and options."""
    trained = checkpoint if isinstance(checkpoint, Trained) else load_checkpoint(checkpoint, device)
    trained = with_style(trained, style)
    _check(trained, prime, 1, temperature, top_k, top_p, length)
    resolve_shape(shape, None)
    gen, _ = _generator(seed, trained.device)
    batch = SongBatch(1, prime, trained.vocab.chars, max_lines)
    written = (new[0] for new in _write(trained, batch, prime, temperature, top_k, top_p,
                                        length, gen, precision, shape) if new[0] is not None)
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


def write_live(checkpoint: str | Path | Trained | None = None, *, num_songs: int = 1,
               temperature: float = 0.8, top_k: int = 0, top_p: float = 1.0, prime: str = "",
               length: int = 3000, max_lines: int | None = None, more_lines: int | None = None,
               seed: int | None = None, device: str = "auto", precision: str = "auto",
               copy_index: CopyIndex | None = None, max_copy: int | None = None,
               retries: int = 5, shape: str = "auto",
               style: str | dict | None = None) -> Iterator[tuple]:
    """Write `num_songs` songs at once, as `generate` does, and tell each step as it happens.

    Yields tagged tuples, in this order:
      ("prime", text)            the opening every song starts with, once
      ("chars", [c or None])     per step: the new character of each of the `num_songs` songs
                                 (None for a song that has stopped or is not being written)
      ("retry", number, copy, try)   with `max_copy`: song `number` (from 1) copied
                                 `copy.length` characters and is written again from the prime
                                 (`try`: the number of the next try, from 2)
      ("song", Song)             a finished song, as `generate` returns it
      ("dropped", number, copy, try) with `max_copy`: song `number` still copied after
                                 `retries` more tries
    `more_lines` stops each song after that many lines of lyrics beyond those of the prime
    (e.g. 1: one new line). The same seed and options give the songs `generate` gives. Closing
    the generator stops the writing at once. `style`: as for `generate`.
    """
    trained = checkpoint if isinstance(checkpoint, Trained) else load_checkpoint(checkpoint, device)
    trained = with_style(trained, style)
    _check(trained, prime, num_songs, temperature, top_k, top_p, length)
    resolve_shape(shape, None)  # an unknown shape is refused before any work
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
                          precision, shape):
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
                    yield ("retry" if attempt < retries else "dropped", index + 1, song.copy,
                           attempt + 2)
                    continue
            yield ("song", song)
        pending = rejected
        if not pending:
            break
