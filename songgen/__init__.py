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
    "train": "training", "TrainResult": "training", "TrainConfig": "config",
    "ModelConfig": "config", "CharLSTM": "model",
    "generate": "sampling", "stream": "sampling", "write_live": "sampling", "Song": "sampling",
    "SampleOptions": "sampling", "measure_songcraft": "songcraft",
    "load_checkpoint": "trained", "Checkpoint": "checkpoint",
    "evaluate_text": "evaluation", "Score": "evaluation",
    "load_corpus": "lyrics", "Vocab": "lyrics",
    "SonggenError": "errors", "SonggenWarning": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'songgen' has no attribute {name!r}")
