"""Styles' labels: which song of a collection is in which style (artist or genre), the table
of a model's style names, the text cut for validation per style, and a style or blend asked for
by name. One model writes like each style and blends them; applying a style to a model is
songgen.model.style_input's, to a loaded checkpoint `Trained.with_style`'s (songgen.run.trained).

Where a song's style comes from (`--styles auto`, the default):

    lyrics/cowboy/*.txt, lyrics/burns/*.txt   a subfolder of the corpus folder names the style
                                              of every song in it (files at the top: no style)
    {style: cowboy}                           a line of its own at the start of a song sets the
                                              style of that song and of the songs after it in
                                              the same file (at the top of a file: the file's);
                                              it overrides the folder, and is not lyrics

Each style gets an id from 1 (0 is "no style", the mix); the table of names keeps the order in
which they first appear, and a fine-tuned model keeps its base's ids and adds new ones after
them. The model adds a learnt vector per style to every character's embedding (see
`model.CharLSTM`); a share of the training songs (NEUTRAL_SHARE, chosen from the seed, so a
resume reads the same labels) is shown with id 0, so that the model also learns to write with
no style asked. A blend mixes the style vectors. Because the vector is added to the embedding,
a model with a style chosen is an ordinary model whose embedding table has the vector folded
in (songgen.model.style_input.unstyled): sampling, the fast stepper and scoring run it at
exactly the unstyled speed.

Validation is cut per style: the last share of each style's songs, so that every style with
two songs or more is measured on its own (`Styles.val_parts`).
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, CorpusError, SonggenWarning
from ..model.style_input import NEUTRAL

NEUTRAL_SHARE = 0.1      # share of the training songs shown with it
MAX_STYLES = 1000        # more is a folder layout that is not a set of styles
MAX_NAME = 100           # characters in a style name
UNSTYLED = "(no style)"  # what the songs without a style are called in reports
MODES = ("auto", "none")

# `{style: NAME}` alone on the first line of a song (ChordPro's directive form).
_MARK = re.compile(r"[ \t]*\{[ \t]*style[ \t]*:([^{}\n]*)\}[ \t]*(?:\n|$)", re.IGNORECASE)


def for_resume(saved) -> tuple[str, list[str] | None]:
    """The styles setting and known names a resume reads its text with: the run's own (none
    for a model trained without styles, whatever its options say)."""
    names = style_names(saved)
    if not names:
        return "none", None
    return getattr(saved.train_config, "styles", "auto"), names


def check_same(found: "Styles | None", saved) -> None:
    """A resume must read each song with the style it was trained with."""
    table = StyleTable.from_dict(saved.styles) if saved.styles else None
    if table is None or found is None:
        return
    if found.table.names != table.names or found.table.digest != table.digest:
        raise CorpusError("the text's styles have changed since the run was trained (songs "
                          "moved between style folders, or style marks edited); resume with "
                          "the text as it was, or fine-tune from the run in a new folder")


def keep_base_shapes(found: "Styles | None", base) -> None:
    """A fine-tuned model keeps the song shapes (and rhyme, chorus and word measures) its base
    measured of the styles the new text does not have."""
    table = StyleTable.from_dict(base.styles) if base.styles else None
    if found is not None and table is not None:
        found.table.shapes = {**table.shapes, **found.table.shapes}
        found.table.songcraft = {**table.songcraft, **found.table.songcraft}


def measure_each(found: "Styles", train: torch.Tensor, chars: list[str]) -> None:
    """Each style's rhyme, chorus and word measures (songgen.songcraft.measures), from its training
    songs, into the style table."""
    from ..songcraft.measures import measure_ids

    sizes = found.train_sizes
    starts = np.cumsum(sizes) - sizes
    ids = train.numpy()
    for style, name in enumerate(found.table.names, start=1):
        songs = np.flatnonzero(found.train_labels == style)
        if len(songs):
            own = np.concatenate([ids[starts[s]:starts[s] + sizes[s]] for s in songs])
            found.table.songcraft[name] = measure_ids(torch.from_numpy(own), chars).to_dict()


def count(corpus) -> int:
    return 0 if corpus.styles is None else len(corpus.styles.table.names)


class StyleError(ConfigError):
    """A style asked for that the model does not know (or a blend that cannot be read);
    `known` lists the model's styles."""

    def __init__(self, message: str, known: list[str] | None = None):
        self.known = list(known or [])
        super().__init__(message)


# -- names -------------------------------------------------------------------------------------

def check_name(name: str, where: str) -> str:
    """A style name as used: NFC, without surrounding spaces; refused when empty, too long, or
    holding ',' or '=' (they write blends)."""
    clean = unicodedata.normalize("NFC", name).strip()
    if not clean:
        raise CorpusError(f"{where}: a style name is empty; give the style a name")
    if len(clean) > MAX_NAME:
        raise CorpusError(f"{where}: the style name {clean[:30]!r}... is longer than {MAX_NAME} "
                          "characters; give a shorter one")
    if any(c in clean for c in ",=") or not clean.isprintable():
        raise CorpusError(f"{where}: the style name {clean!r} holds ',' '=' or a control "
                          "character, which cannot be asked for; rename it")
    return clean


def folder_style(root: Path, file: Path) -> str | None:
    """The style the folder layout gives a file: the first subfolder of `root` it is in."""
    if not root.is_dir():
        return None
    parts = file.relative_to(root).parts
    return check_name(parts[0], str(root / parts[0])) if len(parts) > 1 else None


def take_marks(songs: list[str], current: str | None, path) -> tuple[list[str], list, str | None]:
    """Songs without their `{style: NAME}` lines, the style each song's marks give it (None:
    none so far in the file), and the style a mark leaves for the next songs of the file. A
    song that is only a mark is no song: it sets the style of those after it."""
    kept, labels = [], []
    for song in songs:
        match = _MARK.match(song)
        if match is not None:
            current = check_name(match.group(1), f"{path}, the style mark {match.group(0).strip()!r}")
            song = song[match.end():].lstrip("\n")
            if not song.strip():
                continue
        kept.append(song)
        labels.append(current)
    return kept, labels, current


def empty_style_folders(root: Path) -> list[str]:
    """Subfolders of a corpus folder that hold no .txt file: styles with no lyrics."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and not any(f.suffix.lower() == ".txt" and f.is_file() for f in p.rglob("*")))


# -- a corpus's styles -----------------------------------------------------------------------------

@dataclass
class StyleTable:
    """The styles a model knows: names (id = index + 1), with the songs and characters of each
    in the corpus it was trained on, and a digest of which song has which style (a resume must
    read the same labels)."""

    names: list[str]
    songs: list[int]
    chars: list[int]
    digest: str = ""
    shapes: dict = field(default_factory=dict)  # name -> its songs' shape (SongShape.to_dict)
    songcraft: dict = field(default_factory=dict)  # name -> its rhyme, chorus, word measures

    def to_dict(self) -> dict:
        return {"names": list(self.names), "songs": list(self.songs), "chars": list(self.chars),
                "digest": self.digest, "shapes": dict(self.shapes),
                "songcraft": dict(self.songcraft)}

    @classmethod
    def from_dict(cls, data) -> "StyleTable | None":
        try:
            names = [str(n) for n in data["names"]]
            songs = [int(n) for n in data.get("songs") or [0] * len(names)]
            chars = [int(n) for n in data.get("chars") or [0] * len(names)]
            shapes, craft = data.get("shapes") or {}, data.get("songcraft") or {}
            return cls(names, songs, chars, str(data.get("digest", "")),
                       dict(shapes) if isinstance(shapes, dict) else {},
                       dict(craft) if isinstance(craft, dict) else {})
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    def lines(self) -> list[str]:
        return [f"  {name}: {songs:,} song{'' if songs == 1 else 's'}, {chars:,} characters"
                for name, songs, chars in zip(self.names, self.songs, self.chars)]


@dataclass
class Styles:
    """A training corpus's styles: the table, each training song's style id and size (in the
    order of the training text), and where each style's validation text lies in the corpus's
    validation text."""

    table: StyleTable
    train_labels: np.ndarray      # style id of each training song (0: none)
    train_sizes: np.ndarray       # its characters, its end-of-song symbol included
    val_parts: list[tuple[int, int, int]] = field(default_factory=list)  # (id, start, end)
    notes: list[str] = field(default_factory=list)  # lines for the training header

    def name(self, style_id: int) -> str:
        return UNSTYLED if style_id == NEUTRAL else self.table.names[style_id - 1]

    def positions(self, seed: int, chars: int) -> torch.Tensor:
        """The style id of every position of the training text (`chars` long): each song's
        own, but NEUTRAL for a share of the songs drawn from `seed` (the same every time)."""
        labels = self.train_labels.copy()
        draw = np.random.default_rng([seed, 0x57]).random(len(labels))
        labels[draw < NEUTRAL_SHARE] = NEUTRAL
        dtype = np.int16 if len(self.table.names) < 2 ** 15 else np.int32
        ids = np.repeat(labels.astype(dtype), self.train_sizes)[:chars]
        return torch.from_numpy(np.ascontiguousarray(ids))

    def summary(self) -> str:
        lines = [f"styles: {len(self.table.names)}"] + self.table.lines() + self.notes
        return "\n".join(lines)


def song_labels(runs, mode: str, known: list[str] | None = None, grow: bool = False,
                default: str | None = None) -> tuple[list[str], np.ndarray] | None:
    """The style table's names and each song's style id, from the encoded corpus's runs of
    (name or None, songs). None when the corpus has no styles (or `mode` is none) and the
    model has none either. `known`: the names a checkpoint knows, kept first with their ids;
    a name they lack is refused unless `grow` (fine-tuning adds it). A text without styles
    given to a model with styles is one style, named `default` (the text's name)."""
    if mode not in MODES:
        raise ConfigError("styles is auto (from the folder layout and style marks) or none")
    runs = [] if runs is None else [(None if mode == "none" else name, int(n)) for name, n in runs]
    names = list(known or [])
    if not any(name is not None for name, _ in runs):
        if not names:
            return None
        if mode == "auto" and default:
            runs = [(check_name(default, "the text's name"), sum(n for _, n in runs))]
    index = {name: i + 1 for i, name in enumerate(names)}
    labels = np.empty(sum(n for _, n in runs), dtype=np.int32)
    at = 0
    for name, n in runs:
        if name is not None and name not in index:
            if known is not None and not grow:
                raise CorpusError(f"the text has the style {name!r}, which the run was not "
                                  f"trained with (it knows {', '.join(known) or 'none'})")
            names.append(name)
            index[name] = len(names)
        labels[at:at + n] = NEUTRAL if name is None else index[name]
        at += n
    if len(names) > MAX_STYLES:
        raise CorpusError(f"the text has {len(names):,} styles, more than {MAX_STYLES:,}: its "
                          "subfolders or style marks are not a set of styles; group them into "
                          "fewer, or train without styles")
    return names, labels


def split(data: torch.Tensor, sizes: np.ndarray, new_title: np.ndarray, names: list[str],
          labels: np.ndarray, val_frac: float, whole_cut) -> tuple[torch.Tensor, torch.Tensor, Styles]:
    """Train and validation text cut per style: the last `val_frac` of each style's songs (at
    a song boundary, preferring one between different titles) is its validation text. A style
    of a single song has none and trains whole; when no style has two songs, the text is cut
    as an unstyled one (`whole_cut()` gives where)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    val_song = np.zeros(len(sizes), dtype=bool)
    single = []
    for style in np.unique(labels):
        members = np.flatnonzero(labels == style)
        if len(members) < 2:
            single.append(int(style))
            continue
        keep = _song_cut(sizes[members], new_title[members], val_frac)
        val_song[members[keep:]] = True
    notes = []
    counts = np.bincount(labels, minlength=len(names) + 1)
    chars = np.bincount(labels, weights=sizes, minlength=len(names) + 1).astype(np.int64)
    digest = hashlib.sha256(np.ascontiguousarray(labels, dtype="<i4").tobytes()).hexdigest()[:16]
    table = StyleTable(names, [int(n) for n in counts[1:]], [int(n) for n in chars[1:]], digest)
    if not val_song.any():
        cut = whole_cut()
        ends = np.cumsum(sizes)
        inside = int(np.searchsorted(ends, cut, side="left")) + 1  # songs touching the train text
        styles = Styles(table, labels[:inside].copy(), sizes[:inside].copy(), notes=notes)
        styles.notes.append("validation: not cut per style (no style has two songs)")
        return data[:cut], data[cut:], styles
    tiny = [s for s in single if s != NEUTRAL and counts[s] > 0]
    if tiny:
        shown = ", ".join(names[s - 1] for s in tiny[:5]) + (
            f" and {len(tiny) - 5} more" if len(tiny) > 5 else "")
        notes.append(f"{len(tiny)} style{'' if len(tiny) == 1 else 's'} of a single song, "
                     f"trained but not validated on their own: {shown}")
    # Training text: the songs not held out, in corpus order (one pass, vectorised).
    ids = data.numpy()
    keep_chars = np.repeat(~val_song, sizes)
    train = torch.from_numpy(ids[keep_chars])
    # Validation text: grouped by style, so that each style is one stretch of it.
    starts = np.cumsum(sizes) - sizes
    order = np.flatnonzero(val_song)
    order = order[np.argsort(labels[order], kind="stable")]
    pieces, parts, at = [], [], 0
    for style in np.unique(labels[order]):
        members = order[labels[order] == style]
        begin = at
        for song in members:
            pieces.append(ids[starts[song]:starts[song] + sizes[song]])
            at += int(sizes[song])
        parts.append((int(style), begin, at))
    val = torch.from_numpy(np.concatenate(pieces))
    styles = Styles(table, labels[~val_song].copy(), sizes[~val_song].copy(), parts, notes)
    return train, val, styles


def _song_cut(sizes: np.ndarray, new_title: np.ndarray, val_frac: float) -> int:
    """How many of a style's songs (at least 1, at most all but one) train: the song boundary
    nearest the last `val_frac` of its characters, preferring one where the title changes."""
    ends = np.cumsum(sizes)
    target = ends[-1] * (1 - val_frac)
    cuts = np.flatnonzero(new_title[1:]) + 1
    if len(cuts) == 0:
        cuts = np.arange(1, len(sizes))
    return int(cuts[np.argmin(np.abs(ends[cuts - 1] - target))])


def own_characters(data: torch.Tensor, sizes: np.ndarray, labels: np.ndarray, names: list[str],
                   chars: list[str]) -> list[tuple[str, list[str]]]:
    """The styles that use characters no other style does, with those characters (told, not
    refused: the shared vocabulary holds them, and asked for another style the model rarely
    writes them)."""
    if len(names) < 2:
        return []
    width = len(chars)
    seen = np.zeros((len(names) + 1, width), dtype=bool)
    ends = np.cumsum(sizes)
    ids, step = data.numpy(), 1 << 22
    for start in range(0, len(ids), step):
        part = ids[start:start + step]
        song = np.searchsorted(ends, np.arange(start, start + len(part)), side="right")
        key = labels[song].astype(np.int64) * width + part
        seen |= np.bincount(key, minlength=seen.size).astype(bool).reshape(seen.shape)
    lines = []
    used_by = seen[1:].sum(axis=0)
    for s in range(1, len(names) + 1):
        only = [chars[c] for c in np.flatnonzero(seen[s] & (used_by == 1) & ~seen[0]) if c]
        if only:
            lines.append((names[s - 1], only))
    return lines[:10]


# -- asking for a style --------------------------------------------------------------------------

def parse(spec: str | dict | None, names: list[str]) -> dict[int, float] | None:
    """A style asked for, as {style id: weight} with the weights summing to 1: a name
    ("cowboy"), a blend ("cowboy=0.7,burns=0.3", or a dict of name -> weight); None or ""
    for no style (the mix)."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return None
    if not names:
        raise StyleError("this model was trained without styles; train it on a folder with a "
                         "subfolder per style (or {style: NAME} marks) to ask for one")
    if isinstance(spec, dict):
        items = [(str(k), v) for k, v in spec.items()]
    else:
        items = []
        for part in spec.split(","):
            name, eq, weight = part.partition("=")
            items.append((name, weight if eq else 1.0))
    index = {unicodedata.normalize("NFC", n): i + 1 for i, n in enumerate(names)}
    known = ", ".join(names)
    blend: dict[int, float] = {}
    for name, weight in items:
        key = unicodedata.normalize("NFC", name).strip()
        if not key:
            raise StyleError(f"a style in {spec!r} has no name; write a name, or a blend such "
                             f"as {names[0]}=0.7,{names[-1]}=0.3 (known: {known})", names)
        if key not in index:
            raise StyleError(f"unknown style {key!r}; the model knows: {known}", names)
        try:
            value = float(weight)
        except (TypeError, ValueError):
            raise StyleError(f"the weight of style {key!r} is not a number ({weight!r}); write "
                             "e.g. cowboy=0.7,burns=0.3", names) from None
        if not (math.isfinite(value) and value >= 0):
            raise StyleError(f"the weight of style {key!r} must be a number of 0 or more", names)
        blend[index[key]] = blend.get(index[key], 0.0) + value
    total = sum(blend.values())
    if total <= 0:
        raise StyleError("a blend's weights add up to 0; give at least one a positive weight",
                         names)
    return {k: v / total for k, v in blend.items() if v > 0}


def describe(blend: dict[int, float] | None, names: list[str]) -> str:
    if not blend:
        return UNSTYLED
    return ",".join(f"{names[i - 1]}={w:.3g}" if len(blend) > 1 else names[i - 1]
                    for i, w in blend.items())


def style_names(checkpoint) -> list[str]:
    """The names of a checkpoint's styles (empty for a model without)."""
    table = StyleTable.from_dict(checkpoint.styles) if getattr(checkpoint, "styles", None) else None
    if table is None or checkpoint.model_config.styles != len(table.names):
        return []
    return table.names


def warn_empty_folders(root: Path) -> None:
    empty = empty_style_folders(root)
    if empty:
        shown = ", ".join(empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
        warnings.warn(f"style folder{'' if len(empty) == 1 else 's'} with no .txt lyrics, "
                      f"skipped: {shown}", SonggenWarning)
