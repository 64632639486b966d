"""A written song as JSON: the one record that `songgen sample --json` prints and the studio
sends with each finished song, so that a script reads the same fields from both."""

from __future__ import annotations


def song_record(song, checkpoint: str, step: int) -> dict:
    """`song` (a Song from the sampler, which keeps the options it was written with) as a JSON
    object; `checkpoint` names the model as its face knows it (a path for the command line,
    the model's name for the studio), `step` its training step."""
    opts, copy = song.options, song.copy
    return {
        "number": song.number, "text": song.text, "title": song.title, "chars": song.chars,
        "stop": song.stop, "bits_per_char": round(song.bits_per_char, 4), "seed": song.seed,
        "temperature": opts.temperature, "top_k": opts.top_k, "top_p": opts.top_p,
        "checkpoint": checkpoint, "step": step,
        # The longest passage copied from the corpus, where it was checked: as two figures
        # (the command line's first form) and as one object with where it starts in the song.
        "longest_copy": None if copy is None else copy.length,
        "longest_copy_text": None if copy is None else copy.text,
        "copy": None if copy is None else {
            "length": copy.length, "text": copy.text,
            "start": song.text.find(copy.text) if copy.length else -1},
        "shape": {"mode": song.shape, "guided_end": song.guided_end, **song.form},
        "craft": {"rhyme": opts.rhyme, "chorus": opts.chorus, "words": opts.words,
                  "chorus_planned": bool(song.craft and song.craft["chorus"]),
                  "scan": bool(song.craft and song.craft.get("scan")),
                  **song.analysis},
        "style": opts.style,
    }
