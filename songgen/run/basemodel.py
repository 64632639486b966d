"""The base model bundled with songgen: a model of public-domain verse, trained by songgen's own
`train` (songgen/base/README.md says on what and how), that `sample` writes with when there is
no run yet and that a small collection's training starts from (songgen.training.plan decides when).

This module finds it (inside the installed package, through importlib.resources), verifies it
(its checksum, as every checkpoint's: a damaged file is named as the base model, not as a
checkpoint of the user's) and describes it in one line. An installation without it works: the
callers then train from scratch, or ask for a run, and say so.

$SONGGEN_BASE_MODEL, where set, names another file to use instead (empty: none at all); the
tests use it to point songgen at a tiny model of their own (docs/development.md).
"""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import CheckpointError, DamagedCheckpoint
from . import checkpoint as ckpt
from .checkpoint import Checkpoint
from .folder import find_default

NAME = "verse"               # what the header, info and the studio call it
FILE = f"{NAME}.pt"          # inside songgen/base/
ENV = "SONGGEN_BASE_MODEL"   # another file to use (tests); empty: no base model


class DamagedBaseModel(CheckpointError):
    """The bundled base model is there but cannot be used (damaged, truncated, not ours)."""


def bundled() -> Path | None:
    """The base model's file, or None where this installation has none."""
    given = os.environ.get(ENV)
    if given is not None:
        return Path(given) if given else None
    # A wheel is always unpacked on install, so the resource is a file with a path.
    resource = importlib.resources.files("songgen") / "base" / FILE
    return Path(str(resource)) if resource.is_file() else None


@dataclass
class BaseModel:
    """The base model, loaded and verified."""

    path: Path
    checkpoint: Checkpoint

    @property
    def name(self) -> str:
        return NAME

    def describe(self) -> str:
        """Its size and dropout, as the training header says them."""
        m = self.checkpoint.model_config
        return (f"{m.layers}x{m.hidden_size} LSTM, embedding {m.embed_dim}, dropout "
                f"{m.dropout:g}, {len(self.checkpoint.vocab)} symbols")


def load() -> BaseModel | None:
    """The bundled base model, verified; None where none is bundled. A file that is there but
    cannot be used raises DamagedBaseModel."""
    path = bundled()
    if path is None:
        return None
    try:
        checkpoint = ckpt.load(path)
        if checkpoint.checksum is None:  # songgen always ships it with one
            raise CheckpointError(f"{path} carries no checksum", what="it carries no checksum")
    except CheckpointError as exc:
        detail = ("its contents do not match its checksum" if isinstance(exc, DamagedCheckpoint)
                  else exc.what.replace(str(path), "the file"))
        what = f"the bundled base model {NAME} ({path}) is damaged: {detail}"
        raise DamagedBaseModel(f"{what}; reinstall songgen, or start a new model from scratch",
                               what=what) from None
    return BaseModel(path, checkpoint)


def has_run(folder: str | Path) -> bool:
    """Whether `folder` holds a run to sample from: what `sample --checkpoint FOLDER` would
    find (songgen.run.folder.find_default says which files those are)."""
    try:
        find_default(folder)
        return True
    except CheckpointError:
        return False


def load_base_model(device: str = "auto"):
    """The base model loaded for sampling (a songgen.run.trained.Trained), or None where none is
    bundled."""
    from ..model.devices import resolve_device
    from .trained import Trained

    base = load()
    return None if base is None else Trained(base.path, base.checkpoint, resolve_device(device))


def pack(source: str | Path, target: str | Path, corpus: str | Path | None = None) -> Path:
    """Write the model of checkpoint `source` (a run's best.pt) to the new file `target` as a
    base model: its weights, vocabulary, song shape and measures, without the optimiser and
    random state a resume needs (a third of the size), with a fresh checksum. With `corpus`
    (the text it was trained on, checked by its fingerprint), the song shape and songcraft
    measures are taken again by this songgen, so that a model trained for hours under an
    earlier version samples with every measure the current one keeps."""
    from ..files import refuse_existing

    target = Path(target)
    refuse_existing(target)
    model = replace(ckpt.load(source), optimizer_state=None, scaler_state=None, rng=None,
                    stream_state=None, checksum=None)
    if corpus is not None:
        from ..songcraft.measures import measure_ids
        from ..text.corpus import load_corpus
        from ..text.vocab import Vocab

        # As training measures them (songgen.training.loop.corpus_songcraft), for a corpus without
        # styles, as the base model's is.
        text = load_corpus(corpus, model.train_config.val_frac, vocab=Vocab(model.vocab),
                           expect_fingerprint=model.fingerprint, styles="none")
        # (the path as given, not the trainer's own: "basecorpus/verse.txt" in the repository)
        model = replace(model, shape=text.shape.to_dict(), corpus=str(corpus),
                        songcraft=measure_ids(text.train, text.vocab.chars).to_dict())
    ckpt.save(model, target)
    return target
