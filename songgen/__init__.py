"""songgen: learn to write song lyrics one character at a time with an LSTM.

    import songgen
    songgen.train("lyrics.txt", config=songgen.TrainConfig(steps=2000))
    options = songgen.SampleOptions(num_songs=3, temperature=0.8, rhyme="AABB")
    for song in songgen.generate("checkpoints/best.pt", options):
        print(song.text, song.analysis["rhymes"])

Names are imported lazily so that `songgen --help` starts without loading PyTorch.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "train": "training.loop", "TrainResult": "training.loop", "TrainConfig": "config",
    "ModelConfig": "config", "CharLSTM": "model.lstm",
    "generate": "writing.sampling", "stream": "writing.sampling", "write_live": "writing.sampling", "Song": "writing.sampling",
    "SampleOptions": "writing.sampling", "measure_songcraft": "text.lyrics",
    "load_checkpoint": "run.trained", "Checkpoint": "run.checkpoint",
    "evaluate_text": "training.evaluation", "Score": "training.evaluation",
    "load_corpus": "text.lyrics", "Vocab": "text.lyrics",
    "SonggenError": "errors", "SonggenWarning": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'songgen' has no attribute {name!r}")
