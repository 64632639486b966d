"""Generation: one options value (SampleOptions), prime, end-of-song stop, several songs written
side by side as one batch (their text so far, why each stopped, its line count and score), in
one loop. The steering steps (songgen/writing/steering/: shape, words, chorus, rhyme, scansion,
temperature, top-k/top-p) reshape the draws; the scores kept stay the model's own."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from ..errors import ConfigError, SonggenWarning
from ..run.trained import Trained, load_checkpoint, with_style
from ..songcraft.measures import Measures, analyse
from ..text.lyrics import is_title_line, title_line, title_of
from ..text.reading import describe_chars, normalise
from ..text.vocab import EOS
from .copycheck import Copy, CopyIndex
from .request import SampleOptions, _options, settle_measures  # noqa: F401 (SampleOptions: the API)
from .steering.build import steps_for
from .steering.lines import Lines
from .steering.rows import Rows
from .steering.shape import ShapeGuide
from .steering.step import Step
from .trace import Trace


@dataclass
class Song:
    text: str
    title: str | None
    seed: int
    stop: str               # "end" (the model ended it), "shape" (the shape guide steered it
                            # to end there), "max-lines" or "length"
    bits_per_char: float    # the model's own surprise at what it wrote (temperature 1)
    copy: Copy | None = None  # longest passage copied from the corpus, when checked
    number: int = 1           # its place among the songs asked for (a left-out one leaves a gap)
    shape: str = "free"       # "song": steered by the corpus's shape; "free": not
    guided_end: bool = False  # the end came where the shape steered it
    craft: dict | None = None  # rhyme and chorus as planned ("rhyme", "chorus", lines asked)
    options: SampleOptions | None = None  # the options it was written with (an old
                                          # checkpoint's turned off: request.settle_measures)
    trace: list | None = None  # with `trace`: each character written, traced (trace.CharTrace)

    @property
    def chars(self) -> int:
        return len(self.text)

    @property
    def ended(self) -> bool:
        """Whether the song came to an end (the model's or the shape's), not cut."""
        return self.stop in ("end", "shape")

    @property
    def form(self) -> dict:
        """Title line, blank line after it, stanzas and lyric lines."""
        from ..songcraft.shape import song_form

        return song_form(self.text)

    @property
    def analysis(self) -> dict:
        """Which lyric lines rhyme with which, stanza patterns, where lines repeat (a chorus)."""
        return analyse(self.text)


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
        self.craft: list[dict | None] = [None] * n  # set by the crafted sampler
        self.size = [len(prime)] * n     # characters so far
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
        return [self._take(i, token, lp) for i, (token, lp) in enumerate(zip(tokens, logps))]

    def add_pieces(self, pieces: list[list], length: int) -> list[str | None]:
        """Take any number of symbols per song ([(token, logp)] each); stop a song at `length`
        characters. The new text of each song, or None."""
        new: list[str | None] = []
        for i, piece in enumerate(pieces):
            text = ""
            for token, lp in piece:
                c = self._take(i, token, lp)
                text += c or ""
                if self.stop[i] is None and self.size[i] >= length:
                    self.stop[i] = "length"
            new.append(text or None)
        return new

    def _take(self, i: int, token: int, lp: float) -> str | None:
        if self.stop[i] is not None:
            return None
        self.nats[i] -= lp
        self.scored[i] += 1
        if token == 0:
            self.stop[i] = "end"
            return None
        c = self.chars[token]
        self.parts[i].append(c)
        self.size[i] += 1
        self._count_line(i, c)
        if self.max_lines is not None and self.lines[i] >= self.max_lines:
            self.stop[i] = "max-lines"
        return c

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
            guided = self.stop[i] == "end" and self.guided[i]
            # "end" only where the model ended the song: an end the shape steered it to says so.
            stop = "shape" if guided else self.stop[i] or "length"
            out.append(Song(text, title_of(text), seed, stop, bpc,
                            number=i + 1, shape=self.shape, guided_end=guided,
                            craft=self.craft[i]))
        return out


def make_prime(title: str | None, *texts: str) -> str:
    """A song's opening: the title line in the corpus format, then the given text."""
    return normalise(title_line(title) + "".join(texts))


def _check(trained: Trained, opts: SampleOptions) -> None:
    """What the options ask of this model: a prime in its vocabulary, shorter than the length."""
    prime = opts.prime
    unknown = trained.vocab.unknown(prime.replace(EOS, ""))
    if EOS in prime or unknown:
        shown = describe_chars(unknown + ([EOS] if EOS in prime else []))
        raise ConfigError(f"the prime has characters the model never saw: {shown}; "
                          "remove or replace them")
    if len(prime) >= opts.length:
        raise ConfigError(f"the opening text ({len(prime)} characters, any title line included) "
                          f"is as long as the length limit ({opts.length}); raise the length")


def _generator(seed: int, device: torch.device) -> torch.Generator:
    """The draws' random numbers: the checked request's seed (drawn there when none was given:
    request.draw_seed)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def _write(trained: Trained, batch: SongBatch, opts: SampleOptions, gen: torch.Generator,
           precision: str, measures: Measures | None, seed: int, attempt: int = 0,
           trace: Trace | None = None) -> Iterator[list[str | None]]:
    """Run the model until every song of `batch` has stopped; yield each step's new text."""
    if batch.finished:
        return
    n = len(batch.stop)
    steps = steps_for(trained, opts, measures, n, f"{seed}:{attempt}")
    guide = next((step for step in steps if isinstance(step, ShapeGuide)), None)
    lanes = next((step for step in steps if isinstance(step, Lines)), None)
    batch.shape = "free" if guide is None else "song"
    # A song waits while its lanes write a rhyming line: allow for it, within reason.
    for count, kept in enumerate(_steps(trained, batch, steps, opts, gen, precision, trace)):
        yield batch.add_pieces(kept, opts.length)
        if batch.finished or count >= 4 * opts.length:
            break
    if lanes is not None:
        for i in range(n):
            batch.craft[i] = {"rhyme": opts.rhyme, "chorus": False, "scan": False,
                              "rhyme_lines_asked": 0, "rhyme_lines_rhymed": 0,
                              "scan_lines_asked": 0, "scan_lines_scanning": 0, "chorus_back": 0}
            for step in steps:
                batch.craft[i].update(step.report(i))
    if guide is not None:
        batch.guided = guide.guided[:n]  # lane 0 of each song: the first n rows


@torch.inference_mode()
def _steps(trained: Trained, batch: SongBatch, steps: list[Step], opts: SampleOptions,
           gen: torch.Generator, precision: str, trace: Trace | None = None
           ) -> Iterator[list[list]]:
    """The one loop: per step, what each song of `batch` keeps, [(token, logp)] (one symbol;
    nothing while its lanes write a candidate line; a whole line when one is chosen).

    The steps (songgen/writing/steering/) reshape the model's scores before each draw and
    take in what was drawn after it; the log-probabilities kept are the model's own. The LSTM
    state is carried: each step feeds one character, never the window again. With a `trace`
    (trace.py), it runs the steps, keeping what each did, and traces what each song kept."""
    rows = Rows(trained, len(batch.stop), steps, opts.prime, precision, batch.stop)
    if trace is not None:
        trace.begin(rows, steps)
    while True:
        scores = own = rows.scores()               # (rows drawn, vocab); the model's own
        if trace is None:
            for step in steps:
                scores = step.steer(scores)
        else:
            scores = trace.steer(scores)
        # Greedy at temperature 0; else one draw from the steered scores per row read.
        ids = rows.draw(scores, gen, opts.temperature == 0)
        kept = rows.advance(ids, own)
        if trace is not None:
            trace.after(ids, kept)
        yield kept


def _load(checkpoint, device: str) -> Trained:
    return checkpoint if isinstance(checkpoint, Trained) else load_checkpoint(checkpoint, device)


def generate(checkpoint: str | Path | Trained | None = None, options: SampleOptions | None = None,
             *, device: str = "auto", copy_index: CopyIndex | None = None,
             **keywords) -> list[Song]:
    """Write `options.num_songs` songs at once (one batch of parallel LSTM streams).

    `options` (a SampleOptions) says how; keywords of the same names may be given instead of,
    or over, it: generate(ck, num_songs=3, temperature=0.8). Each song starts with the prime
    and ends at the model's end-of-song symbol, after `max_lines` lines of lyrics, or at
    `length` characters. The same seed and options give the same songs. With `copy_index`,
    each song reports its longest passage copied from the corpus; with `max_copy` too, songs
    copying more than that many characters are written again, up to `retries` times, and left
    out (with a warning) if they still copy. `shape`, `rhyme`, `chorus`, `words`: see
    SampleOptions. With `trace`, each song's `trace` holds one trace.CharTrace per character
    after the prime: the model's choices there and what the steps did to them.
    """
    opts = _options(options, keywords)
    songs, traces = [], [[] for _ in range(opts.num_songs)]
    for event in write_live(checkpoint, opts, device=device, copy_index=copy_index):
        if event[0] == "chars" and opts.trace:
            for so_far, found in zip(traces, event[2]):
                so_far += found or []
        elif event[0] == "song":
            songs.append(event[1])
            event[1].trace = traces[event[1].number - 1] if opts.trace else None
        elif event[0] == "retry":
            _, number, copy, next_try = event
            traces[number - 1] = []
            warnings.warn(f"song {number} copied {copy.length} characters from the corpus; "
                          f"writing it again (try {next_try} of {opts.retries + 1})",
                          SonggenWarning)
        elif event[0] == "dropped":
            _, number, copy, _ = event
            warnings.warn(f"song {number} still copied {copy.length} characters after "
                          f"{opts.retries + 1} {'try' if opts.retries == 0 else 'tries'}; "
                          "it is left out", SonggenWarning)
    return sorted(songs, key=lambda song: song.number)


def stream(checkpoint: str | Path | Trained | None = None, options: SampleOptions | None = None,
           *, device: str = "auto", **keywords) -> Iterator[str]:
    """One song, yielded a piece at a time as it is generated (the prime comes first; a
    rhyming line comes whole, once it is chosen).

    Gives the same song as `generate` with the same seed and options."""
    opts = _options(options, {**keywords, "num_songs": 1})
    yield from _pieces(write_live(checkpoint, opts, device=device), [])


def _pieces(events: Iterator[tuple], found: list) -> Iterator[str]:
    """The text of one song's `write_live` events as it comes; the song goes into `found`.

    Line ends are held back until more text follows: a song cut after its last allowed line
    ends without them, as in `generate`."""
    held = ""
    for event in events:
        if event[0] == "song":
            found.append(event[1])
            continue
        piece = event[1] if event[0] == "prime" else event[1][0] if event[0] == "chars" else None
        if not piece:
            continue
        body = piece.rstrip("\n")
        if body:
            yield held + body
            held = piece[len(body):]
        else:
            held += piece
    if held and found and found[0].stop != "max-lines":
        yield held


def write(checkpoint: str | Path | Trained | None = None, options: SampleOptions | None = None,
          *, device: str = "auto", copy_index: CopyIndex | None = None,
          stream_to=None, **keywords) -> list[Song]:
    """What `songgen sample` does: the songs `generate` writes; with `stream_to` (a function of
    a piece of text) and one song with no copy check, that song is handed to it piece by piece
    as it is written (the same song)."""
    opts = _options(options, keywords)
    if stream_to is not None and opts.num_songs == 1 and copy_index is None:
        found: list[Song] = []
        for piece in _pieces(write_live(checkpoint, opts, device=device), found):
            stream_to(piece)
        return found
    return generate(checkpoint, opts, device=device, copy_index=copy_index)


def write_live(checkpoint: str | Path | Trained | None = None,
               options: SampleOptions | None = None, *, device: str = "auto",
               copy_index: CopyIndex | None = None, **keywords) -> Iterator[tuple]:
    """Write `num_songs` songs at once, as `generate` does, and tell each step as it happens.

    Yields tagged tuples, in this order:
      ("prime", text)            the opening every song starts with, once
      ("chars", [text or None])  per step: the new text of each of the `num_songs` songs (a
                                 character; a whole line where a rhyming line was chosen;
                                 None for a song that has stopped or is waiting); with
                                 `trace`, a third item: per song None or one trace.CharTrace
                                 per character of its new text
      ("retry", number, copy, try)   with `max_copy`: song `number` (from 1) copied
                                 `copy.length` characters and is written again from the prime
                                 (`try`: the number of the next try, from 2)
      ("song", Song)             a finished song, as `generate` returns it
      ("dropped", number, copy, try) with `max_copy`: song `number` still copied after
                                 `retries` more tries
    `more_lines` stops each song after that many lines of lyrics beyond those of the prime
    (e.g. 1: one new line). With `trace`, each step's traces come with its text (and go:
    `generate` keeps them, in each Song's `trace`). The same seed and options give the songs
    `generate` gives. Closing the generator stops the writing at once.
    """
    opts = _options(options, keywords)
    trained = with_style(_load(checkpoint, device), opts.style)
    _check(trained, opts)
    opts, measures = settle_measures(trained, opts)
    max_lines = opts.max_lines
    if opts.more_lines is not None:
        counted = SongBatch(1, opts.prime, trained.vocab.chars, None).lines[0]
        more = counted + opts.more_lines
        max_lines = more if max_lines is None else min(max_lines, more)
    seed = opts.seed  # drawn by checked() where none was given
    gen = _generator(seed, trained.device)
    yield ("prime", opts.prime)
    trace = Trace(trained.vocab.chars, opts.temperature == 0) if opts.trace else None
    pending = list(range(opts.num_songs))
    for attempt in range(opts.retries + 1):
        batch = SongBatch(len(pending), opts.prime, trained.vocab.chars, max_lines)
        for new in _write(trained, batch, opts, gen, opts.precision, measures, seed, attempt,
                          trace):
            shown: list[str | None] = [None] * opts.num_songs
            for index, c in zip(pending, new):
                shown[index] = c
            if trace is None:
                yield ("chars", shown)
                continue
            found: list[list | None] = [None] * opts.num_songs
            for k, (index, c) in enumerate(zip(pending, new)):
                if c:  # (the end of a song is no character; nothing after a song stopped)
                    found[index] = [t for t in trace.last[k] if t.token != 0][:len(c)]
            yield ("chars", shown, found)
        rejected = []
        for index, song in zip(pending, batch.songs(seed)):
            song.number, song.options = index + 1, opts
            if copy_index is not None:
                song.copy = copy_index.longest_copy(song.text)
                if opts.max_copy is not None and song.copy.length > opts.max_copy:
                    rejected.append(index)
                    yield ("retry" if attempt < opts.retries else "dropped", index + 1,
                           song.copy, attempt + 2)
                    continue
            yield ("song", song)
        pending = rejected
        if not pending:
            break
