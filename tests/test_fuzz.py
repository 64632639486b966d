"""Property tests: the corpus reader and the checkpoint loader either succeed or raise a
SonggenError, whatever bytes they are given; and non-Latin lyrics work end to end."""

from __future__ import annotations

import bisect
import io
import itertools
import json
import os
import struct
import unicodedata
import warnings
import zipfile
from pathlib import Path
from unittest.mock import patch

import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from songgen.run.checkpoint import Checkpoint, load
from songgen.run.trained import Trained, load_checkpoint
from songgen.cli.commands import cli
from songgen.text import lyrics as loading
from songgen.text.lyrics import fingerprint, join_songs, read_songs, title_key
from songgen.text.vocab import EOS, Vocab
from songgen.errors import CheckpointError, SonggenError, SonggenWarning
from songgen.text.corpus import load_corpus
from songgen.writing.sampling import generate

# 150 examples a test keeps this file near 20 s on 2 cores; SONGGEN_FUZZ_EXAMPLES=5000 for a hunt.
FUZZ = settings(max_examples=int(os.environ.get("SONGGEN_FUZZ_EXAMPLES", 150)), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])

TINY = ["--embed-dim", "8", "--hidden-size", "16", "--layers", "1", "--seq-len", "16",
        "--batch-size", "4", "--device", "cpu", "-q"]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# -- the corpus reader ----------------------------------------------------------------------------

SPECIAL = [
    "\n", "\n\n", "\n\n\n", "\r", "\r\n", "\r\r\r", "\x0c", "\t", " ", "\u00a0", "\u2028", "\x85",
    "\ufeff", "e\u0301", "\u00e9", "a\u0308\u0323", "\u212b", "\ufb01", "\u1100\u1161\u11a8",
    "\U0001f3b5", "\U0001f469\u200d\U0001f469\u200d\U0001f467", "\U0001f44d\U0001f3fd",
    "\u05e9\u05dc\u05d5\u05dd", "\u0645\u0631\u062d\u0628\u0627", "\u200f", "\u202e",
    "\u039b\u03cc\u03b3\u03b9\u03b1", "\u6b4c\u8a5e", "# Title\n\n", "la la la ",
]
LONG_LINE = st.builds(lambda c, n: c * n, st.sampled_from(["a", "\u00e9", "\U0001f3b5", "ab "]),
                      st.integers(1000, 20000))
CHARS = st.one_of(st.characters(), st.characters(categories=["Cs"]),
                  st.sampled_from([c for c in "".join(SPECIAL)]))
TEXT = st.one_of(st.text(CHARS, max_size=400),
                 st.lists(st.one_of(st.sampled_from(SPECIAL), st.text(CHARS, max_size=20),
                                    LONG_LINE), max_size=12).map("".join))
ENCODING = st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
BYTE_PIECES = st.lists(st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"\n", b"\n\n\n", b"\r\n", b"\r", b"\x0c", b"\xef\xbb\xbf", b"\xff\xfe",
                     b"\xfe\xff", b"\x00", b"\xc3\xa9", b"e\xcc\x81", b"la la\n", b"\xc3",
                     b"\xf0\x9f\x8e\xb5", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf",
                     b"\x89PNG\r\n\x1a\n"])), max_size=30).map(b"".join)


def reference_split(songs: list[str], val_frac: float) -> tuple[str, str]:
    """The validation cut done the slow, obvious way on whole songs: the last `val_frac`, at
    the song boundary closest to it between different titles, unless that misses by more than
    a quarter of the validation size; else (and for one song) at a line boundary."""
    joined = join_songs(songs)
    total = len(joined)
    target = total * (1 - val_frac)
    ends = [i + 1 for i, c in enumerate(joined) if c == "\n"]
    line_cut = None
    if ends:
        lines = ends + [total]
        k = bisect.bisect_left(lines, target)
        line_cut = lines[min(max(k, 1), len(lines) - 1) - 1]
    if len(songs) == 1:
        if line_cut is None:
            raise SonggenError("single line")
        return joined[:line_cut], joined[line_cut:]
    sizes = list(itertools.accumulate(len(s) + 1 for s in songs))
    cuts = [k for k in range(1, len(songs)) if title_key(songs[k - 1]) != title_key(songs[k])]
    k = min(cuts or range(1, len(songs)), key=lambda c: abs(sizes[c - 1] - target))
    cut = sizes[k - 1]
    if abs(cut - target) > (total - target) / 4 and line_cut is not None:
        cut = min((cut, line_cut), key=lambda c: abs(c - target))
    return joined[:cut], joined[cut:]


def check_corpus_file(path: Path, val_frac: float = 0.1, read_bytes: int = 1 << 22) -> None:
    """Read and load `path`: success (with its invariants) or a SonggenError, nothing else.
    The streaming loader, reading `read_bytes` at a time, must agree with reading whole songs."""
    try:
        songs = read_songs(path)
    except SonggenError:
        return
    assert songs and all(isinstance(s, str) and s.strip() for s in songs)
    for song in songs:
        # NUL is the end-of-song symbol: it must never come out of reading.
        assert EOS not in song and "\r" not in song and "\ufeff" not in song
        assert unicodedata.is_normalized("NFC", song)
    joined = join_songs(songs)
    vocab = Vocab.from_text(joined)
    assert vocab.decode(vocab.encode(joined)) == joined
    assert joined.count(EOS) == len(songs)
    try:
        with patch.object(loading, "READ_BYTES", read_bytes), warnings.catch_warnings():
            warnings.simplefilter("ignore", SonggenWarning)  # long random texts are one song
            corpus = load_corpus(path, val_frac)
    except SonggenError as exc:
        assert len(songs) == 1 and "single line" in str(exc)
        return
    assert corpus.vocab == vocab and corpus.songs == len(songs)
    train, val = reference_split(songs, val_frac)
    assert (corpus.vocab.decode(corpus.train), corpus.vocab.decode(corpus.val)) == (train, val)
    assert corpus.fingerprint == fingerprint(joined)


READ_SIZES = st.sampled_from([1, 2, 3, 7, 64, 1 << 22])


@FUZZ
@given(data=st.one_of(st.binary(max_size=3000), BYTE_PIECES), read_bytes=READ_SIZES)
def test_corpus_reader_on_random_bytes(scratch, data, read_bytes):
    path = scratch / "bytes.txt"
    path.write_bytes(data)
    check_corpus_file(path, read_bytes=read_bytes)


@pytest.mark.slow
@FUZZ
@given(text=TEXT, encoding=ENCODING, val_frac=st.sampled_from([0.01, 0.1, 0.5]),
       read_bytes=READ_SIZES)
def test_corpus_reader_on_random_unicode(scratch, text, encoding, val_frac, read_bytes):
    path = scratch / "unicode.txt"
    path.write_bytes(text.encode(encoding, "surrogatepass"))
    check_corpus_file(path, val_frac, read_bytes)


@pytest.mark.slow
@FUZZ
@given(files=st.lists(st.one_of(TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
                                BYTE_PIECES), min_size=1, max_size=4), read_bytes=READ_SIZES)
def test_corpus_folder_on_random_files(scratch, files, read_bytes):
    folder = scratch / "folder"
    if folder.exists():
        for old in folder.iterdir():
            old.unlink()
    folder.mkdir(exist_ok=True)
    for i, data in enumerate(files):
        (folder / f"{i:02d}.txt").write_bytes(data)
    check_corpus_file(folder, read_bytes=read_bytes)


def test_lone_surrogate_is_an_error_that_names_the_place(scratch):
    path = scratch / "surrogate.txt"
    path.write_bytes("# A\n\nla \ud800 la\n".encode("utf-8", "surrogatepass"))
    with pytest.raises(SonggenError, match="not valid UTF-8 at line 3, byte offset 8"):
        read_songs(path)


def test_nul_in_utf16_text_is_refused(scratch):
    path = scratch / "nul16.txt"
    path.write_bytes("# A\n\nla\x00la\nlo\n".encode("utf-16"))
    with pytest.raises(SonggenError, match="NUL"):
        read_songs(path)


# -- the checkpoint loader ------------------------------------------------------------------------


class Blob(bytes):
    """The bytes of the real checkpoint, with a short repr for hypothesis's failure reports."""

    def __repr__(self) -> str:
        return f"<real checkpoint, {len(self)} bytes>"


@pytest.fixture(scope="module")
def real_checkpoint(tmp_path_factory) -> Blob:
    from songgen.config import TrainConfig
    from songgen.training.loop import train

    from .conftest import make_songs

    folder = tmp_path_factory.mktemp("ckpt")
    (folder / "songs.txt").write_text(make_songs(10), encoding="utf-8")
    config = TrainConfig(seq_len=16, batch_size=4, steps=3, eval_every=3, device="cpu",
                         checkpoint_dir=str(folder / "run"), patience=0, keep_last=0)
    train(folder / "songs.txt", model={"embed_dim": 8, "hidden_size": 8, "layers": 1,
                                       "dropout": 0.0}, config=config, quiet=True)
    return Blob((folder / "run" / "last.pt").read_bytes())


def _regions(raw: bytes) -> list[tuple[int, int]]:
    """Byte ranges worth aiming at: the whole file, the pickle record, the zip directory."""
    regions = [(0, len(raw))]
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        for info in z.infolist():
            if info.filename.endswith("data.pkl"):
                n, m = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
                start = info.header_offset + 30 + n + m
                regions.append((start, start + info.compress_size))
    regions.append((max(0, len(raw) - 2000), len(raw)))
    return regions


MUTATION = st.tuples(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]),
                     st.integers(0, 2), st.integers(0, 2**31), st.binary(min_size=1, max_size=16))


def mutate(raw: bytes, mutations) -> bytes:
    data = bytearray(raw)
    regions = _regions(raw)
    for kind, region, where, payload in mutations:
        if not data:
            break
        lo, hi = regions[region]
        hi = min(hi, len(data))
        lo = min(lo, max(hi - 1, 0))
        pos = lo + where % max(hi - lo, 1)
        if kind == "flip":
            data[pos] ^= payload[0] or 0xFF
        elif kind == "set":
            data[pos:pos + len(payload)] = payload
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = payload
        else:
            del data[pos:pos + len(payload)]
    return bytes(data)


def check_checkpoint_file(path: Path) -> None:
    try:
        state = load(path)
    except CheckpointError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        state = None
    if state is not None:
        assert isinstance(state, Checkpoint)
    try:
        trained = load_checkpoint(path, device="cpu")
    except CheckpointError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(trained, Trained)
    # A checkpoint that loads must also sample.
    try:
        songs = generate(trained, num_songs=2, length=12, seed=0)
    except SonggenError:
        return
    assert all(isinstance(s.text, str) for s in songs)


@FUZZ
@given(mutations=st.lists(MUTATION, min_size=1, max_size=4))
def test_checkpoint_loader_on_mutated_checkpoints(scratch, real_checkpoint, mutations):
    path = scratch / "mutated.pt"
    path.write_bytes(mutate(real_checkpoint, mutations))
    check_checkpoint_file(path)


@FUZZ
@given(cut=st.integers(0, 10**9))
def test_checkpoint_loader_on_truncated_checkpoints(scratch, real_checkpoint, cut):
    path = scratch / "truncated.pt"
    path.write_bytes(real_checkpoint[: cut % len(real_checkpoint)])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


ODD_VALUES = st.sampled_from([None, -1, 0, 2**70, 1.5, float("nan"), float("inf"), True, "x", "",
                               [], {}, ["\x00", "a"], {"step": "x"}, [{"step": 1}],
                               torch.zeros(0), torch.zeros(3, 3), torch.tensor(float("nan"))])
KEYS = ["format", "version", "songgen_version", "model_config", "train_config", "vocab",
        "model_state", "optimizer_state", "step", "epoch", "position", "best_val_loss",
        "history", "fingerprint", "rng", "stream_state"]


@pytest.mark.slow
@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(KEYS), st.one_of(st.none(), st.text(max_size=12)),
                                  ODD_VALUES), min_size=1, max_size=3),
       delete=st.booleans())
def test_checkpoint_loader_on_odd_contents(scratch, real_checkpoint, changes, delete):
    """Well-formed files whose contents are wrong: a key, or a key inside a section, replaced by
    a value of the wrong type, or deleted. Loading, sampling and `info` must cope."""
    state = torch.load(io.BytesIO(real_checkpoint), weights_only=True)
    state.pop("checksum")  # as a checkpoint from before checksums: the contents checks alone
    for key, inner, value in changes:
        target = state
        if inner is not None and isinstance(state.get(key), dict) and state[key]:
            target, key = state[key], sorted(state[key])[len(inner) % len(state[key])]
        if delete:
            target.pop(key, None)
        else:
            target[key] = value
    path = scratch / "odd.pt"
    torch.save(state, path)
    check_checkpoint_file(path)
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert result.exit_code in (0, 1)
    if result.exit_code:
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: ")


def test_unmutated_checkpoint_loads_and_samples(scratch, real_checkpoint):
    path = scratch / "real.pt"
    path.write_bytes(real_checkpoint)
    trained = load_checkpoint(path)
    assert generate(trained, length=12, seed=0)[0].text


def test_non_finite_weights_are_refused(scratch, real_checkpoint):
    state = torch.load(io.BytesIO(real_checkpoint), weights_only=True)
    state.pop("checksum")  # as a checkpoint from before checksums: the contents checks alone
    state["model_state"]["head.bias"][0] = float("nan")
    path = scratch / "nan.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="not finite"):
        load_checkpoint(path)


def test_vocabulary_and_model_size_must_agree(scratch, real_checkpoint):
    state = torch.load(io.BytesIO(real_checkpoint), weights_only=True)
    state.pop("checksum")  # as a checkpoint from before checksums: the contents checks alone
    state["vocab"] = state["vocab"][:-1]
    path = scratch / "short-vocab.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="vocabulary"):
        load_checkpoint(path)


# -- Unicode lyrics end to end --------------------------------------------------------------------


def test_nfc_and_nfd_give_the_same_vocabulary(scratch):
    text = "# Caf\u00e9 \u00c5ngstr\u00f6m\n\nna\u00efve \u1f00\u03b3\u03ac\u03c0\u03b7\n"
    nfd = unicodedata.normalize("NFD", text)
    assert nfd != text
    (scratch / "nfc.txt").write_text(text, encoding="utf-8")
    (scratch / "nfd.txt").write_text(nfd, encoding="utf-8")
    a = Vocab.from_text(join_songs(read_songs(scratch / "nfc.txt")))
    b = Vocab.from_text(join_songs(read_songs(scratch / "nfd.txt")))
    assert a == b and "\u0301" not in a.chars


GREEK = ["\u0391\u03b3\u03ac\u03c0\u03b7 \u03bc\u03bf\u03c5, \u03b8\u03ac\u03bb\u03b1\u03c3\u03c3\u03b1",
         "\u03c4\u03bf \u03c6\u03c9\u03c2 \u03c4\u03b7\u03c2 \u03bd\u03cd\u03c7\u03c4\u03b1\u03c2"]
JAPANESE = ["\u591c\u306e\u96e8\u304c\u964d\u308b", "\u541b\u306e\u6b4c\u3092\u6b4c\u3046"]
EMOJI = ["\U0001f3b5 la la \U0001f3b6", "\u2764\ufe0f \U0001f319 \U0001f469\u200d\U0001f3a4"]


def _unicode_songs() -> str:
    songs = []
    for i in range(12):
        lines = [GREEK[i % 2], JAPANESE[(i + 1) % 2], EMOJI[i % 2], GREEK[(i + 1) % 2]]
        songs.append(f"# \u03a4\u03c1\u03b1\u03b3\u03bf\u03cd\u03b4\u03b9 {i}\n\n" + "\n".join(lines))
    return "\n\n\n".join(songs) + "\n"


def test_greek_japanese_and_emoji_lyrics_train_and_sample(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "world.txt").write_text(_unicode_songs(), encoding="utf-8")
    runner = CliRunner()

    def run(*args):
        return runner.invoke(cli, [str(a) for a in args])

    trained = run("train", "world.txt", *TINY, "--steps", 6, "--eval-every", 3)
    assert trained.exit_code == 0, trained.output
    vocab = set(torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["vocab"])
    assert {"\u03ac", "\u96e8", "\U0001f3b5", "\u200d"} <= vocab

    prime = "\u0391\u03b3\u03ac\u03c0\u03b7 "
    song = run("sample", "--prime", prime, "--length", 60, "--seed", 1)
    assert song.exit_code == 0, song.output
    assert song.stdout.startswith(prime)
    assert song.stderr in ("", "the song was cut at 60 characters; raise --length\n")
    assert set(song.stdout) <= vocab | {"\n"}

    many = run("sample", "--prime", prime, "-n", 3, "--length", 40, "--seed", 2, "--json")
    assert many.exit_code == 0, many.output
    records = [json.loads(line) for line in many.stdout.splitlines()]
    assert len(records) == 3 and all(r["text"].startswith(prime) for r in records)

    title = run("sample", "--title", "\u6b4c", "--length", 30, "--seed", 3)
    assert title.exit_code == 0 and title.stdout.startswith("# \u6b4c\n\n"), title.output

    score = run("eval", "world.txt", "--json")
    assert score.exit_code == 0 and json.loads(score.stdout)["skipped"] == 0, score.output

    # Text in NFD is normalised on the way in, so the model knows its characters.
    (tmp_path / "nfd.txt").write_text(unicodedata.normalize("NFD", _unicode_songs()), "utf-8")
    again = run("eval", "nfd.txt", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["skipped"] == 0, again.output
