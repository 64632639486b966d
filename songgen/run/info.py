"""What `songgen info` says of a checkpoint or a run: the parts of a checkpoint a person asks
about (`summary`, the `--json` answer), the corpus's rhyme and chorus figures among them, and
for a run folder its latest checkpoint with the best one beside it (`info`)."""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError
from .checkpoint import Checkpoint, load
from .folder import best_then_last


def summary(checkpoint: Checkpoint, path) -> dict:
    """The parts of `checkpoint` (read from `path`) a person asks about (`songgen info --json`)."""
    c = checkpoint
    return {
        "checkpoint": str(path), "songgen_version": c.songgen_version,
        "format_version": c.version, "model": c.model_config.to_dict(),
        "training": None if c.train_config is None else c.train_config.to_dict(),
        "vocab_size": len(c.vocab), "step": c.step, "epoch": c.epoch,
        "best_val_loss": c.best_val_loss, "corpus": c.corpus,
        "corpus_fingerprint": c.fingerprint, "init_from": c.init_from,
        "checksum": c.checksum, "choices": c.choices, "history": c.history,
        "styles": c.styles,
        "songcraft": songcraft_summary(c.songcraft),
    }


def songcraft_summary(record) -> dict | None:
    """The corpus's rhyme and chorus figures for `info` (songgen/songcraft/measures.py); None if
    none."""
    from ..songcraft.measures import Measures

    m = Measures.from_dict(record)
    if m is None:
        return None
    return {"rhyming_stanzas": round(m.rhyme_rate, 4), "stanzas": m.stanzas,
            "patterns": m.patterns, "repeat_songs": round(m.repeat_rate, 4), "songs": m.songs,
            "chorus_stanza": m.chorus_at + 1, "chorus_gap": m.chorus_gap,
            "words_kept": len(m.vocabulary), "scanning_lines": m.scan_rate, "summary": m.summary()}


def info(path: str | Path | None = None) -> dict:
    """What `songgen info` shows. For a file, its summary. For a run folder (default:
    checkpoints/), the run: its latest checkpoint (last.pt), with the best one (best.pt) beside
    it; a file of the run that cannot be used is named in `problems`."""
    path = Path(path or "checkpoints")
    if not path.is_dir():
        return summary(load(path), path)
    found, problems = {}, []
    for name in ("last.pt", "best.pt"):
        if (path / name).exists():
            try:
                found[name] = load(path / name)
            except CheckpointError as exc:
                problems.append(str(exc))
    if not found:
        if problems:
            raise CheckpointError(problems[0])
        best_then_last(path)  # raises: no checkpoint in the folder
    name, latest = next(iter(found.items()))
    answer = summary(latest, path / name)
    answer["run"] = str(path)
    best = found.get("best.pt")
    answer["best_checkpoint"] = None if best is None else {
        "checkpoint": str(path / "best.pt"), "step": best.step, "val_loss": best.best_val_loss}
    answer["problems"] = problems
    return answer
