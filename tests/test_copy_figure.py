"""The longest copied passage that sample reports is the song's real one (#32): with
--max-copy 12 the index looks for copies of 12 characters or more, and a song whose longest
copy was 11 characters was reported as copying 0."""

import json

from click.testing import CliRunner

from songgen.cli.commands import cli
from songgen.writing.copycheck import CopyIndex
from songgen.text.lyrics import join_songs, read_songs


def longest_in(corpus: str, song: str) -> int:
    best = 0
    for i in range(len(song)):
        j = i + best + 1
        while j <= len(song) and song[i:j] in corpus:
            best, j = j - i, j + 1
    return best


def test_a_copy_shorter_than_the_window_is_reported_as_it_is():
    corpus = join_songs(["# One\n\nthe river runs down to the sea tonight"])
    found = CopyIndex(corpus, 12).longest_copy("a river runs dry")
    assert (found.length, found.text) == (13, " river runs d")
    found = CopyIndex(corpus, 12).longest_copy("my sea tonigh, oh")
    assert (found.length, found.text) == (11, " sea tonigh")  # was 0


def test_sample_reports_each_songs_real_longest_copy(songs_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    trained = runner.invoke(cli, ["train", str(songs_file), "--embed-dim", "8", "--hidden-size",
                                  "16", "--layers", "1", "--seq-len", "16", "--batch-size", "4",
                                  "--steps", "30", "--device", "cpu", "--threads", "1", "-q",
                                  "--checkpoint-dir", "ck"])
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(cli, ["sample", "ck", "--corpus", str(songs_file), "--max-copy", "12",
                                 "-n", "3", "--seed", "8", "--max-lines", "4", "--json"])
    assert result.exit_code == 0, result.output
    corpus = join_songs(read_songs(songs_file))
    records = [json.loads(line) for line in result.stdout.splitlines()]
    real = [longest_in(corpus, r["text"]) for r in records]
    assert [r["longest_copy"] for r in records] == real
    assert any(0 < n < 12 for n in real)  # what was reported as 0
    said = [line for line in result.stderr.splitlines() if "longest passage" in line]
    assert said == [f"song {r['number']}: longest passage copied from the corpus: "
                    f"{r['longest_copy']} characters ({r['longest_copy_text'][:60]!r})"
                    for r in records]
