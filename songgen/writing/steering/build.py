"""The steering steps a request asks for, in the order the loop runs them (`steps_for`): the
song's shape, the line and word steps, then temperature, top-k and top-p."""

from __future__ import annotations

from ...songcraft.measures import Measures
from ...songcraft.shape import SongShape
from ...songcraft.shape import resolve as resolve_shape
from ..stanzas import scan_wanted
from .chorus import Chorus, Repeats
from .lines import LANES, Lines
from .rhyme import Rhyme
from .scansion import Scan
from .shape import ShapeGuide
from .step import Step
from .tempered import tempered
from .words import Words


def steps_for(trained, opts, measures: Measures | None, n: int, seed: str) -> list[Step]:
    """The steps for `n` songs as `opts` (a SampleOptions) asks; `seed` names their draws."""
    crafted = craft_steps(trained, opts, measures, n, seed)
    width = max([step.lanes for step in crafted], default=1)
    guide = shape_guide(trained, opts.shape, n * width, opts.length, measures, seed, n)
    return ([guide] if guide is not None else []) + crafted + tempered(
        opts.temperature, opts.top_k, opts.top_p)


def shape_guide(trained, shape: str, rows: int, length: int, measures: Measures | None = None,
                seed: str | None = None, songs: int | None = None) -> ShapeGuide | None:
    """The shape guide for `rows` rows (writing `songs` songs); None to sample freely (asked
    for, or a checkpoint without a recorded shape or without line breaks). How songs and
    titles end comes from `measures`, else the checkpoint's."""
    song_shape = resolve_shape(shape, trained.checkpoint.shape)
    if song_shape is None or "\n" not in trained.vocab.index:
        return None
    if measures is None:
        measures = Measures.from_dict(trained.checkpoint.songcraft)
    ends = None if measures is None else (measures.ending_shares("song"),
                                          measures.endings("title"))
    return ShapeGuide(song_shape, trained.vocab.chars, rows, length, ends, seed, songs)


def craft_steps(trained, opts, measures: Measures | None, n: int, seed: str) -> list[Step]:
    """Words, chorus, rhyme, scansion and repeats for `n` songs, and the lines they write
    (Lines, with their lanes); none where there is nothing to steer."""
    if not opts.crafted or (measures is None and opts.words >= 1 and opts.rhyme == "auto"
                            and opts.chorus == "auto"):
        return []
    if measures is None and opts.rhyme in ("auto", "off") and opts.chorus in ("auto", "off"):
        return []
    if (opts.rhyme == opts.chorus == "off" and opts.words >= 1
            and not scan_wanted(measures, opts.scan)):
        return []
    chars = trained.vocab.chars
    breaks = "\n" in trained.vocab.index
    scan = scan_wanted(measures, opts.scan) and breaks
    rhyme = opts.rhyme if breaks else "off"
    lines = Lines(chars, n, LANES if rhyme != "off" or scan else 1, seed)
    words = Words(lines, measures, chars, opts.words)
    shape = SongShape.from_dict(trained.checkpoint.shape)
    line95 = (shape.q("line_chars", 0.95) if shape is not None else None) or 40
    # A song holds its end for its chorus to come back at most to the corpus's longer songs.
    hold = min(int(opts.length * 0.8), (shape.q("song_chars", 0.75) or opts.length)
               if shape is not None and shape.has_song_lengths else opts.length)
    chorus = Chorus(lines, measures, hold) if opts.chorus != "off" and breaks else None
    line_steps = [step for step in (
        chorus, Rhyme(lines, words, measures, rhyme),
        Scan(lines, words, int(line95 * 1.5)) if scan else None, Repeats(lines))
        if step is not None]
    lines.line_steps = line_steps
    return [words, *line_steps, lines]
