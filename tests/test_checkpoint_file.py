"""The checkpoint file format: files written by earlier releases still load, and the schema
round-trips through the file unchanged."""

import json
from pathlib import Path

import torch

from songgen.run import checkpoint as ckpt
from songgen.run.trained import load_checkpoint
from songgen.writing.sampling import generate

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
    songs = generate(load_checkpoint(OLD, device="cpu"), num_songs=4, length=40, seed=1)
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


# -- checksums: a damaged checkpoint is detected, never silently used ---------------------------

import io  # noqa: E402

import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from songgen.cli.commands import cli  # noqa: E402
from songgen.errors import CheckpointError  # noqa: E402


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A real run's folder: last.pt, best.pt and numbered checkpoints."""
    from songgen.config import TrainConfig
    from songgen.training.loop import train
    from tests.conftest import make_songs

    root = tmp_path_factory.mktemp("run")
    text = root / "songs.txt"
    text.write_text(make_songs(12), encoding="utf-8")
    train(text, model={"hidden_size": 16, "embed_dim": 8, "layers": 1},
          config=TrainConfig(steps=6, eval_every=2, batch_size=4, seq_len=16, keep_last=3,
                             patience=0, device="cpu", checkpoint_dir=str(root / "ck")),
          quiet=True)
    return root


def _contents(path):
    """The checksum of what a file loads as, or None when it does not load."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    return ckpt.content_checksum(state) if isinstance(state, dict) else None


def test_every_single_byte_change_is_detected_or_harmless(saved_run, tmp_path):
    """Byte changes all over a real checkpoint (the zip headers, the pickled metadata, the
    tensor data): each one either fails to load with a one-line error naming the file, or
    loads contents identical to the original's."""
    original_path = saved_run / "ck" / "last.pt"
    original = original_path.read_bytes()
    expected = ckpt.content_checksum(torch.load(original_path, weights_only=True))
    size = len(original)
    # The zip's local headers and pickle at the front, its central directory at the back,
    # and the tensor data in between.
    positions = sorted(set(range(0, min(size, 256))) | set(range(max(0, size - 256), size)) |
                       set(range(0, size, max(1, size // 256))))
    damaged = tmp_path / "damaged.pt"
    detected = harmless = 0
    for pos in positions:
        data = bytearray(original)
        data[pos] ^= 0x5A
        damaged.write_bytes(bytes(data))
        try:
            loaded = ckpt.load(damaged)
        except CheckpointError as exc:
            assert "\n" not in str(exc) and str(damaged) in str(exc)
            detected += 1
            continue
        assert ckpt.content_checksum(loaded.to_dict() | {"checksum": loaded.checksum}) == expected \
            or _contents(damaged) == expected, f"byte {pos} changed what loads, undetected"
        harmless += 1
    assert detected > len(positions) / 2  # most bytes matter


def test_a_changed_weight_is_named_as_damage(saved_run, tmp_path):
    state = torch.load(saved_run / "ck" / "last.pt", weights_only=True)
    state["model_state"]["head.bias"][3] += 1e-3  # a plausible, finite, wrong weight
    path = tmp_path / "last.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as caught:
        ckpt.load(path)
    assert str(caught.value) == (
        f"{path} is damaged: its contents do not match the checksum saved with it (a disk, "
        "memory or copy error); use another checkpoint (a run's folder also keeps best.pt and "
        "step-N.pt)")
    result = CliRunner().invoke(cli, ["sample", "--checkpoint", str(path)])
    assert result.exit_code == 1 and result.stderr.startswith(f"Error: {path} is damaged")


def test_truncated_and_padded_files(saved_run, tmp_path):
    original = (saved_run / "ck" / "last.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(original[: len(original) // 2])
    with pytest.raises(CheckpointError, match="corrupt, truncated or not a PyTorch file"):
        ckpt.load(truncated)
    padded = tmp_path / "padded.pt"
    padded.write_bytes(original + b"garbage\x00" * 100)
    try:  # the zip reader may find its directory before the garbage: then nothing changed
        assert ckpt.load(padded).step == ckpt.load(saved_run / "ck" / "last.pt").step
    except CheckpointError as exc:
        assert str(padded) in str(exc)


def test_resume_falls_back_to_the_newest_intact_checkpoint_and_says_so(saved_run, tmp_path):
    import shutil

    from songgen.config import TrainConfig
    from songgen.training.loop import train

    folder = tmp_path / "ck"
    shutil.copytree(saved_run / "ck", folder)
    state = torch.load(folder / "last.pt", weights_only=True)
    state["model_state"]["head.bias"][0] += 1.0
    torch.save(state, folder / "last.pt")  # damaged in place: the checksum no longer matches
    with pytest.warns(UserWarning, match=r"last.pt is unusable \(.*last.pt is damaged \(checksum "
                                         r"mismatch\)\); resuming from step-000000006.pt at step 6"):
        result = train(saved_run / "songs.txt", model={"hidden_size": 16, "embed_dim": 8,
                                                       "layers": 1},
                       config=TrainConfig(steps=8, eval_every=2, batch_size=4, seq_len=16,
                                          patience=0, device="cpu", checkpoint_dir=str(folder)),
                       resume=True, quiet=True)
    assert result.step == 8


def test_a_checkpoint_from_another_run_renamed_into_the_folder(saved_run, tmp_path):
    """It is intact (its checksum is its own); a resume checks the text it was trained on."""
    import shutil

    from songgen.config import TrainConfig
    from songgen.text.lyrics import CorpusChanged
    from songgen.training.loop import train
    from tests.conftest import make_songs

    other_text = tmp_path / "other.txt"
    other_text.write_text(make_songs(12, seed=9), encoding="utf-8")
    options = dict(model={"hidden_size": 16, "embed_dim": 8, "layers": 1}, quiet=True)
    train(other_text, config=TrainConfig(steps=2, eval_every=2, batch_size=4, seq_len=16,
                                         device="cpu", checkpoint_dir=str(tmp_path / "other")),
          **options)
    folder = tmp_path / "ck"
    shutil.copytree(saved_run / "ck", folder)
    shutil.copy(tmp_path / "other" / "last.pt", folder / "last.pt")
    assert ckpt.load(folder / "last.pt").checksum
    with pytest.raises(CorpusChanged, match="is not the text the checkpoint was trained on"):
        train(saved_run / "songs.txt", resume=True, config=TrainConfig(
            steps=8, batch_size=4, seq_len=16, device="cpu", checkpoint_dir=str(folder)),
              **options)


def test_info_says_whether_a_file_is_intact(saved_run, tmp_path):
    result = CliRunner().invoke(cli, ["info", str(saved_run / "ck")])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"run          {saved_run / 'ck'}: latest step 6, best at step ")
    assert "integrity    intact (its checksum matches its contents)" in lines
    old = CliRunner().invoke(cli, ["info", str(OLD)])
    assert "integrity    not checked: written before checkpoints carried a checksum" in \
        old.stdout.splitlines()
    assert old.stderr == ""  # an old file loads with no warning
    state = torch.load(saved_run / "ck" / "best.pt", weights_only=True)
    state["vocab"][-1] = "Q"
    torch.save(state, tmp_path / "best.pt")
    damaged = CliRunner().invoke(cli, ["info", str(tmp_path / "best.pt")])
    assert damaged.exit_code == 1 and "is damaged" in damaged.stderr


def test_the_fixtures_text_still_reads_to_its_fingerprint(tmp_path):
    """The corpus fingerprint is what a resume checks: a change to how text is read or hashed
    would strand every existing run. This is the text the 0.1.0 fixture was trained on."""
    from songgen.text.corpus import load_corpus

    text = tmp_path / "songs.txt"
    text.write_text("# Rain\n\nthe rain is on the roof\nand i am home\n\n\n# Sun\n\nthe sun is out "
                    "today\nand so am i\n\n\n# Wind\n\nthe wind blows low\nover the hill\n",
                    encoding="utf-8")
    expected = json.loads((FIXTURES / "checkpoint-v1-0.1.0.json").read_text())
    corpus = load_corpus(text, 0.3)
    assert corpus.fingerprint == expected["fingerprint"]
    assert corpus.vocab.chars == expected["vocab"]


def test_a_lyrics_file_given_as_a_checkpoint_is_named_a_text_file(tmp_path):
    """`songgen info lyrics.txt` (a text where a checkpoint was asked for) says it is a text,
    not that a checkpoint is corrupt; a damaged binary file is still called damaged."""
    lyrics = tmp_path / "lyrics.txt"
    lyrics.write_text("# Song\n\nA line of a song,\nanother line.\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["info", str(lyrics)])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: {lyrics} is a text file, not a checkpoint; give a .pt file that songgen train "
        "wrote (to score a text with a model, use songgen eval)")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(bytes(range(256)) * 4)
    result = CliRunner().invoke(cli, ["info", str(junk)])
    assert result.exit_code == 1 and "text file" not in result.output
    assert "corrupt" in result.output
