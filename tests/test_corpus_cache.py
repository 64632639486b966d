"""The corpus cache: encoded once, mapped read-only, reused while the text is unchanged, rebuilt
(never trusted) when the text or the file changed."""

import errno
import os
import subprocess
import sys
import threading
import time

import pytest
import torch

from songgen.text import cache as corpuscache
from songgen.text import corpus as lyrics_corpus
from songgen.text.cache import CorpusCache
from songgen.errors import SonggenWarning
from songgen.text.corpus import load_corpus
from songgen.text.vocab import UnknownCharacters, Vocab

from .conftest import make_songs


def same_corpus(a, b):
    assert a.vocab == b.vocab and a.fingerprint == b.fingerprint and a.songs == b.songs
    assert torch.equal(a.train, b.train) and torch.equal(a.val, b.val)
    assert a.shape == b.shape


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


@pytest.fixture
def encodes(monkeypatch):
    """How many times the text was read and encoded."""
    calls = []
    real = corpuscache.encode_corpus

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(corpuscache, "encode_corpus", counting)
    return calls


def the_file(cache):
    files = list(cache.glob("*.corpus"))
    assert len(files) == 1, files
    return files[0]


def test_the_cache_is_reused_while_the_text_is_unchanged(songs_file, cache, monkeypatch):
    plain = load_corpus(songs_file)
    first = load_corpus(songs_file, cache=CorpusCache(cache))
    assert first.cache_file and not first.cached
    same_corpus(first, plain)
    # Nothing is read or encoded now: the ids are mapped from the file.
    monkeypatch.setattr(lyrics_corpus, "_Encoder", None)
    again = load_corpus(songs_file, cache=CorpusCache(cache))
    assert again.cached and again.cache_file == first.cache_file
    same_corpus(again, plain)
    # The validation cut depends on the fraction, not the cache.
    monkeypatch.undo()
    for frac in (0.05, 0.3, 0.5):
        same_corpus(load_corpus(songs_file, frac, cache=CorpusCache(cache)), load_corpus(songs_file, frac))


def test_a_changed_file_is_read_again(songs_file, cache, encodes):
    load_corpus(songs_file, cache=CorpusCache(cache))
    load_corpus(songs_file, cache=CorpusCache(cache))
    assert len(encodes) == 1
    # Longer.
    songs_file.write_text(make_songs(41), encoding="utf-8")
    grown = load_corpus(songs_file, cache=CorpusCache(cache))
    assert len(encodes) == 2 and grown.songs == 41 and not grown.cached
    # Only touched: read again, and the same text.
    stat = songs_file.stat()
    os.utime(songs_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = load_corpus(songs_file, cache=CorpusCache(cache))
    assert len(encodes) == 3
    same_corpus(touched, grown)
    # Other words of the same size with the old modification time put back: the change time
    # tells (no program can set it back).
    stat = songs_file.stat()
    text = songs_file.read_text(encoding="utf-8")
    changed = text.replace("love", "LOVE")
    assert changed != text and len(changed) == len(text)
    time.sleep(0.05)  # past the file system's clock tick
    songs_file.write_text(changed, encoding="utf-8")
    os.utime(songs_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (songs_file.stat().st_size, songs_file.stat().st_mtime_ns) == \
        (stat.st_size, stat.st_mtime_ns)
    fresh = load_corpus(songs_file, cache=CorpusCache(cache))
    assert len(encodes) == 4 and "L" in fresh.vocab.chars
    same_corpus(fresh, load_corpus(songs_file))
    assert len(list(cache.glob("*.corpus"))) == 1  # replaced, not added to


def test_a_folder_with_a_file_more_is_read_again(tmp_path, cache, encodes):
    folder = tmp_path / "songs"
    folder.mkdir()
    (folder / "a.txt").write_text(make_songs(5, seed=1), encoding="utf-8")
    (folder / "b.txt").write_text(make_songs(5, seed=2), encoding="utf-8")
    load_corpus(folder, cache=CorpusCache(cache))
    (folder / "c.txt").write_text(make_songs(5, seed=3), encoding="utf-8")
    assert load_corpus(folder, cache=CorpusCache(cache)).songs == 15 and len(encodes) == 2
    (folder / "a.txt").unlink()
    assert load_corpus(folder, cache=CorpusCache(cache)).songs == 10 and len(encodes) == 3


@pytest.mark.parametrize("damage, why", [
    ("truncate", "cut short"),
    ("flip", "its data does not match its checksums"),
    ("header", "its header does not match its checksum"),
    ("garbage", "it is not a corpus cache file"),
    ("empty", "it is cut short"),
    ("longer", "bytes long where its header says"),
])
def test_a_damaged_cache_is_rebuilt_not_trusted(songs_file, cache, encodes, damage, why):
    plain = load_corpus(songs_file)
    load_corpus(songs_file, cache=CorpusCache(cache))
    path = the_file(cache)
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[:-100]
    elif damage == "flip":
        raw[-50] ^= 0x01  # one bit of one id
    elif damage == "header":
        raw[40] ^= 0x20
    elif damage == "garbage":
        raw = bytearray(os.urandom(len(raw)))
    elif damage == "empty":
        raw = bytearray()
    else:
        raw += b"\0" * 10
    path.write_bytes(bytes(raw))
    with pytest.warns(SonggenWarning, match=f"the corpus cache {path} is damaged \\(.*{why}"):
        rebuilt = load_corpus(songs_file, cache=CorpusCache(cache))
    assert len(encodes) == 2 and not rebuilt.cached
    same_corpus(rebuilt, plain)
    assert load_corpus(songs_file, cache=CorpusCache(cache)).cached  # and the new file is good


def test_a_cache_of_another_format_version_is_rebuilt_quietly(songs_file, cache, encodes,
                                                               recwarn):
    load_corpus(songs_file, cache=CorpusCache(cache))
    path = the_file(cache)
    raw = bytearray(path.read_bytes())
    raw[15] = 0  # the version byte
    path.write_bytes(bytes(raw))
    assert not load_corpus(songs_file, cache=CorpusCache(cache)).cached
    assert len(encodes) == 2 and not recwarn.list


BUILD = """
import sys
from songgen.text.cache import CorpusCache
from songgen.text.corpus import load_corpus
corpus = load_corpus(sys.argv[1], cache=CorpusCache(sys.argv[2]))
print("cache" if corpus.cached else "built", corpus.fingerprint, len(corpus.train))
"""


def test_two_builders_at_once_build_once_and_both_get_the_text(tmp_path, cache):
    path = tmp_path / "big.txt"
    path.write_text(make_songs(3000), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", BUILD, str(path), str(cache)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    lines = sorted(out.split() for out, _ in results)
    assert [line[0] for line in lines] == ["built", "cache"]
    assert lines[0][1:] == lines[1][1:]
    assert load_corpus(path, cache=CorpusCache(cache)).cached
    assert sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) == \
        [the_file(cache).name]  # no temporary file left


def test_builders_without_locks_each_write_a_whole_file(songs_file, cache, monkeypatch):
    def no_lock(*args, **kwargs):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(corpuscache.files, "exclusive", no_lock)
    results, errors = [], []

    def build():
        try:
            results.append(load_corpus(songs_file, cache=CorpusCache(cache)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 3
    plain = load_corpus(songs_file)
    for corpus in results:
        same_corpus(corpus, plain)
    assert load_corpus(songs_file, cache=CorpusCache(cache)).cached
    assert [p.name for p in cache.iterdir()] == [the_file(cache).name]


def test_the_cache_serves_other_vocabularies_as_encoding_would(songs_file, cache):
    # Built for a fine-tuning base with characters the text never uses.
    base = Vocab(Vocab.from_text("zq\u00e9 ").chars)
    tuned = load_corpus(songs_file, vocab=base, extend=True, cache=CorpusCache(cache))
    same_corpus(tuned, load_corpus(songs_file, vocab=base, extend=True))
    # A fresh run, the same base, and a vocabulary lacking characters, from the same file.
    same_corpus(load_corpus(songs_file, cache=CorpusCache(cache)), load_corpus(songs_file))
    same_corpus(load_corpus(songs_file, vocab=tuned.vocab, cache=CorpusCache(cache)),
                load_corpus(songs_file, vocab=tuned.vocab))
    small = Vocab(Vocab.from_text("love river\n#").chars)
    with pytest.raises(UnknownCharacters) as cached:
        load_corpus(songs_file, vocab=small, cache=CorpusCache(cache))
    with pytest.raises(UnknownCharacters) as read:
        load_corpus(songs_file, vocab=small)
    assert cached.value.chars == read.value.chars
    assert the_file(cache)  # still the one file


def test_a_cache_that_cannot_be_written_is_skipped_with_a_warning(songs_file, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.warns(SonggenWarning, match="cannot write the corpus cache .*; the text is "
                                            "used as read, without it"):
        corpus = load_corpus(songs_file, cache=CorpusCache(blocker / "cache"))
    same_corpus(corpus, load_corpus(songs_file))
    assert not corpus.cache_file


def test_the_mapped_ids_cannot_change_the_file(songs_file, cache):
    corpus = load_corpus(songs_file, cache=CorpusCache(cache))
    before = the_file(cache).read_bytes()
    corpus.train[:10] = 0  # a bug writing into the corpus changes this process's copy only
    assert the_file(cache).read_bytes() == before
    assert load_corpus(songs_file, cache=CorpusCache(cache)).cached


def test_training_and_resume_use_the_cache(songs_file, tiny_model, tiny_config, tmp_path,
                                           monkeypatch, capsys):
    from songgen.training.loop import train

    train(songs_file, model=tiny_model, config=tiny_config(steps=5))
    assert "corpus encoded into" in capsys.readouterr().err
    folder = tmp_path / "ckpt" / "corpus-cache"
    assert the_file(folder)
    monkeypatch.setattr(lyrics_corpus, "_Encoder", None)  # a resume must not read the text again
    train(songs_file, model=tiny_model, config=tiny_config(steps=10), resume=True)
    assert f"corpus mapped from {the_file(folder)}" in capsys.readouterr().err


def test_no_cache_when_asked(songs_file, tiny_model, tiny_config, tmp_path):
    from songgen.training.loop import train

    train(songs_file, model=tiny_model, config=tiny_config(steps=5, corpus_cache="none"),
          quiet=True)
    assert not (tmp_path / "ckpt" / "corpus-cache").exists()
    other = tmp_path / "elsewhere"
    train(songs_file, model=tiny_model, config=tiny_config(
        steps=5, corpus_cache=str(other), checkpoint_dir=str(tmp_path / "ck2")), quiet=True)
    assert the_file(other) and not (tmp_path / "ck2" / "corpus-cache").exists()


def test_eval_uses_the_runs_cache(songs_file, tiny_model, tiny_config, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from songgen.cli.commands import cli
    from songgen.training.evaluation import evaluate_text
    from songgen.training.loop import train

    train(songs_file, model=tiny_model, config=tiny_config(steps=5), quiet=True)
    ckpt = tmp_path / "ckpt"
    read = evaluate_text(songs_file, ckpt, device="cpu", cache="none")
    with monkeypatch.context() as patch:
        patch.setattr(lyrics_corpus, "_Encoder", None)  # the training text is not read again
        mapped = evaluate_text(songs_file, ckpt, device="cpu")
    assert (mapped.loss, mapped.chars, mapped.skipped) == (read.loss, read.chars, read.skipped)
    # Another text, with characters the model never saw, skipped alike either way; the CLI's
    # --corpus-cache none writes nothing; the cache of the other text is kept in the user's
    # cache folder, never in the run's.
    other = tmp_path / "other.txt"
    other.write_text("# Zebra\n\nZoo and Xray\nlove river\n\n\n# Q\n\nQuiet night\n")
    user = tmp_path / "user-cache"  # $SONGGEN_CACHE_DIR, set for every test
    runner = CliRunner()
    plain = runner.invoke(cli, ["eval", str(other), "--checkpoint", str(ckpt), "--device", "cpu",
                                "--skip-unknown", "--json", "--corpus-cache", "none"])
    assert plain.exit_code == 0, plain.output
    assert len(list((ckpt / "corpus-cache").glob("*.corpus"))) == 1 and not user.exists()
    for _ in range(2):  # written, then mapped (not read again)
        with monkeypatch.context() as patch:
            if user.exists():
                patch.setattr(lyrics_corpus, "_Encoder", None)
            cached = runner.invoke(cli, ["eval", str(other), "--checkpoint", str(ckpt),
                                         "--device", "cpu", "--skip-unknown", "--json"])
        assert cached.exit_code == 0, cached.output
        assert cached.stdout == plain.stdout
    assert len(list((ckpt / "corpus-cache").glob("*.corpus"))) == 1
    assert the_file(user).name.startswith("other.txt-")
    refused = runner.invoke(cli, ["eval", str(other), "--checkpoint", str(ckpt), "--device",
                                  "cpu"])
    assert refused.exit_code == 1 and "characters the model never saw: 'Q', 'X', 'Z'" in \
        refused.stderr
