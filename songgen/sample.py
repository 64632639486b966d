"""Generation: prime, temperature, top-k/top-p, end-of-song stop, several songs as one batch."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from .checkpoint import Trained, load_checkpoint
from .corpus import EOS, describe_chars
from .errors import ConfigError

MAX_LENGTH = 1_000_000
MAX_SONGS = 10_000


@dataclass
class Song:
    text: str
    title: str | None
    seed: int
    ended: bool             # True when the model ended the song, False when the length cap did
    bits_per_char: float    # the model's own surprise at what it wrote (temperature 1)

    @property
    def chars(self) -> int:
        return len(self.text)


def title_of(text: str) -> str | None:
    first = text.split("\n", 1)[0]
    return first[2:].strip() if first.startswith("# ") else None


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


def _check(trained: Trained, prime: str, num_songs: int, temperature: float, top_k: int,
           top_p: float, length: int) -> None:
    if not 1 <= num_songs <= MAX_SONGS:
        raise ConfigError(f"the number of songs must be between 1 and {MAX_SONGS:,}")
    if not 1 <= length <= MAX_LENGTH:
        raise ConfigError(f"the length must be between 1 and {MAX_LENGTH:,} characters")
    if not (temperature >= 0 and math.isfinite(temperature)):
        raise ConfigError("the temperature must be 0 (greedy) or more")
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
        raise ConfigError(f"the prime ({len(prime)} characters) is as long as the length limit "
                          f"({length}); raise the length")


@torch.inference_mode()
def _steps(trained: Trained, n: int, prime: str, temperature: float, top_k: int, top_p: float,
           length: int, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield, per generated position, the chosen ids (n,) and their log-probabilities (n,).

    The LSTM state is carried: each step feeds one character, never the window again.
    """
    model, device = trained.model, trained.device
    # Start after an end-of-song symbol, as every song in training did, then read the prime.
    ids = [0] + trained.vocab.encode(prime).tolist()
    x = torch.tensor(ids, device=device).expand(n, -1)           # (n, 1 + len(prime))
    logits, state = model(x)
    logits = logits[:, -1].float()                                # (n, vocab)
    for _ in range(length - len(prime)):
        # Sample from the reshaped distribution; score with the model's own one.
        logp = torch.log_softmax(logits, dim=-1)
        if temperature == 0:
            chosen = logits.argmax(dim=-1)
        else:
            shaped = filter_logits(logits / temperature, top_k, top_p)
            probs = torch.softmax(shaped, dim=-1)
            chosen = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        yield chosen, logp.gather(1, chosen[:, None]).squeeze(1)
        logits, state = model(chosen[:, None], state)
        logits = logits[:, -1].float()


def _generator(seed: int | None, device: torch.device) -> tuple[torch.Generator, int]:
    seed = secrets.randbits(31) if seed is None else seed
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen, seed


def generate(checkpoint: str | Path | Trained | None = None, *, num_songs: int = 1,
             temperature: float = 0.8, top_k: int = 0, top_p: float = 1.0, prime: str = "",
             length: int = 3000, seed: int | None = None, device: str = "cpu") -> list[Song]:
    """Write `num_songs` songs at once (one batch of parallel LSTM streams).

    Each song starts with `prime` and ends at the model's end-of-song symbol or at `length`
    characters. The same seed and options give the same songs.
    """
    trained = checkpoint if isinstance(checkpoint, Trained) else load_checkpoint(checkpoint, device)
    _check(trained, prime, num_songs, temperature, top_k, top_p, length)
    gen, seed = _generator(seed, trained.device)
    chars = trained.vocab.chars
    out = [[] for _ in range(num_songs)]
    bits = [0.0] * num_songs
    done = torch.zeros(num_songs, dtype=torch.bool, device=trained.device)
    for chosen, logp in _steps(trained, num_songs, prime, temperature, top_k, top_p, length, gen):
        live = (~done).tolist()
        for i, (token, lp) in enumerate(zip(chosen.tolist(), logp.tolist())):
            if live[i]:
                bits[i] -= lp / math.log(2)
                if token:
                    out[i].append(chars[token])
        done |= chosen == 0
        if bool(done.all()):
            break
    ended = done.tolist()
    songs = []
    for i in range(num_songs):
        text = prime + "".join(out[i])
        scored = len(out[i]) + (1 if ended[i] else 0)
        songs.append(Song(text, title_of(text), seed, ended[i], bits[i] / max(scored, 1)))
    return songs


def stream(checkpoint: str | Path | Trained | None = None, *, temperature: float = 0.8,
           top_k: int = 0, top_p: float = 1.0, prime: str = "", length: int = 3000,
           seed: int | None = None, device: str = "cpu") -> Iterator[str]:
    """One song, yielded a character at a time as it is generated (the prime comes first)."""
    trained = checkpoint if isinstance(checkpoint, Trained) else load_checkpoint(checkpoint, device)
    _check(trained, prime, 1, temperature, top_k, top_p, length)
    gen, _ = _generator(seed, trained.device)
    if prime:
        yield prime
    for chosen, _ in _steps(trained, 1, prime, temperature, top_k, top_p, length, gen):
        token = int(chosen[0])
        if token == 0:
            return
        yield trained.vocab.chars[token]
