"""Songwriting controls: titles, line limits, the plagiarism guard, fine-tuning."""

import json

import torch
from click.testing import CliRunner

from songgen.cli.commands import cli
from songgen.writing.copycheck import CopyIndex
from songgen.text.lyrics import join_songs
from songgen.text.vocab import EOS
from songgen.writing.sampling import generate, make_prime
from songgen.writing.sampling import SongBatch
from songgen.training.loop import train

from .test_sample import make_trained


def test_title_becomes_the_first_line():
    assert make_prime("Rain Song", "Oh ") == "# Rain Song\n\nOh "
    assert make_prime(None, "x") == "x"


def test_max_lines_counts_lyric_lines_only():
    chars = [EOS] + list("#ab \n")
    batch = SongBatch(1, "# ab\n\n", chars, max_lines=2)
    ids = {c: i for i, c in enumerate(chars)}
    for c in "ab\n\nab\n":
        batch.add([ids[c]], [0.0])
    assert batch.stop == ["max-lines"]
    assert "".join(batch.parts[0]) == "# ab\n\nab\n\nab\n"


def test_max_lines_in_generate_stops_songs(tmp_path):
    trained = make_trained(tmp_path, text="# ab\n\nab\nba\n", eos_bias=-50.0)
    songs = generate(trained, num_songs=3, max_lines=2, seed=0, length=2000)
    for song in songs:
        lines = [l for l in song.text.split("\n") if l.strip() and not l.startswith("# ")]
        assert song.stop == "max-lines" and len(lines) <= 2


def test_copy_index_finds_the_longest_verbatim_passage():
    corpus = join_songs(["# One\n\nthe river runs down to the sea tonight",
                         "# Two\n\nmy heart is a stone in the rain"])
    index = CopyIndex(corpus, k=6)
    found = index.longest_copy("oh the river runs down to my heart is a stone")
    assert found.text == "the river runs down to " and found.length == 23
    assert index.longest_copy("so my heart is a stone").text == "my heart is a stone"
    assert index.longest_copy("zzzzzzzzzzzz").length == 0
    # Two copied pieces stitched together are not one copy.
    assert index.longest_copy("the sea tonightmy heart").length == len("the sea tonight")


def test_copy_guard_rewrites_and_drops_copying_songs(tmp_path, recwarn):
    trained = make_trained(tmp_path, text="# ab\n\nab ba\n", eos_bias=-50.0)
    index = CopyIndex(join_songs(["ab ba ab"]), k=3)
    songs = generate(trained, num_songs=2, length=30, seed=0, copy_index=index, max_copy=2,
                     retries=2)
    assert all(s.copy.length <= 2 for s in songs)
    messages = [str(w.message) for w in recwarn]
    assert any("writing it again (try 2 of 3)" in m for m in messages)
    assert len(songs) == 2 or any("it is left out" in m for m in messages)
    # Each kept song keeps its number, so the warnings and the songs agree.
    left_out = {int(m.split()[1]) for m in messages if "it is left out" in m}
    assert [s.number for s in songs] == [n for n in (1, 2) if n not in left_out]


def test_fine_tuning_beats_training_from_scratch(songs_file, tiny_model, tiny_config, tmp_path):
    base = train(songs_file, model=tiny_model, config=tiny_config(
        steps=150, lr=1e-2, checkpoint_dir=str(tmp_path / "base")), quiet=True)
    new = tmp_path / "new.txt"
    # A new writer with a character the base never saw.
    new.write_text(songs_file.read_text().replace("river", "rivér").replace("stone", "stones"))
    steps = dict(steps=20, lr=1e-2)
    tuned = train(new, model=tiny_model, init_from=base.checkpoint_dir / "best.pt",
                  config=tiny_config(**steps, checkpoint_dir=str(tmp_path / "tuned")), quiet=True)
    scratch = train(new, model=tiny_model,
                    config=tiny_config(**steps, checkpoint_dir=str(tmp_path / "scratch")),
                    quiet=True)
    assert tuned.best_val_loss < scratch.best_val_loss
    state = torch.load(tmp_path / "tuned" / "last.pt", weights_only=True)
    assert "é" in state["vocab"] and state["step"] == 20


def test_cli_json_output_file_and_copy_report(songs_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    trained = runner.invoke(cli, ["train", str(songs_file), "--embed-dim", "8", "--hidden-size",
                                  "16", "--layers", "1", "--seq-len", "16", "--batch-size", "4",
                                  "--steps", "10", "--device", "cpu", "-q"])
    assert trained.exit_code == 0, trained.output
    out = tmp_path / "songs.jsonl"
    result = runner.invoke(cli, ["sample", "-n", "2", "--json", "--seed", "1", "--length", "60",
                                 "--corpus", str(songs_file), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2 and all(isinstance(r["longest_copy"], int) for r in records)
    assert "longest passage copied from the corpus" in result.stderr
    again = runner.invoke(cli, ["sample", "--output", str(out)])
    assert again.exit_code == 1 and "already exists" in again.stderr
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("# X\n\nsomething else entirely\n")
    bad = runner.invoke(cli, ["sample", "--corpus", str(wrong)])
    assert bad.exit_code == 1 and "is not the text" in bad.stderr


def test_copy_index_agrees_with_brute_force():
    import random

    def brute(corpus, song, k):
        best = 0
        for i in range(len(song)):
            j = i + best + 1
            while j <= len(song) and song[i:j] in corpus:
                best, j = j - i, j + 1
        return best  # shorter than k too (#32)

    rng = random.Random(1)
    for _ in range(300):
        corpus = "".join(rng.choice("ab c\n") for _ in range(rng.randint(1, 300)))
        song = "".join(rng.choice("ab c\n") for _ in range(rng.randint(0, 80)))
        k = rng.randint(2, 6)
        found = CopyIndex(corpus, k).longest_copy(song)
        assert found.length == brute(corpus, song, k), (corpus, song, k)
        assert found.length == 0 or found.text in corpus
