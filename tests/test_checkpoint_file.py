"""The checkpoint file format: files written by earlier releases still load, and the schema
round-trips through the file unchanged."""

import json
from pathlib import Path

import torch

from songgen import checkpoint as ckpt
from songgen.generate import generate

FIXTURES = Path(__file__).parent / "fixtures"
OLD = FIXTURES / "checkpoint-v1-0.1.0.pt"  # written by songgen 0.1.0 before the restructuring


def test_a_checkpoint_written_by_songgen_0_1_0_loads_with_its_contents():
    expected = json.loads((FIXTURES / "checkpoint-v1-0.1.0.json").read_text())
    loaded = ckpt.load(OLD)
    assert loaded.step == expected["step"]
    assert loaded.vocab == expected["vocab"]
    assert loaded.best_val_loss == expected["best_val_loss"]
    assert loaded.fingerprint == expected["fingerprint"]
    assert loaded.model_config.to_dict() == expected["model_config"]
    sums = {k: float(v.double().sum()) for k, v in loaded.model_state.items()}
    assert sums == expected["weight_sums"]
    songs = generate(ckpt.load_checkpoint(OLD, device="cpu"), num_songs=4, length=40, seed=1)
    assert len(songs) == 4 and all(song.stop in ("end", "length") for song in songs)


def test_the_schema_writes_the_same_keys_and_values_it_reads(tmp_path):
    raw = torch.load(OLD, weights_only=True)
    path = tmp_path / "again.pt"
    ckpt.save(ckpt.load(OLD), path)
    again = torch.load(path, weights_only=True)
    assert set(again) >= set(raw)
    for key, value in raw.items():
        if isinstance(value, dict) and key.endswith("_state"):
            assert again[key].keys() == value.keys(), key
        elif key == "train_config":  # fields added since (with their defaults) may follow
            assert repr({k: again[key][k] for k in value}) == repr(value), key
        elif key != "optimizer_state":
            assert repr(again[key]) == repr(value), key
