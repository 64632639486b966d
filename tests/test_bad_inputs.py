"""A catalogue of bad inputs for every command, each checked the same way.

Every case runs through CliRunner in a fresh copy of one prepared folder (a real tiny checkpoint
run, good and bad lyrics files, bad checkpoints) and must:

- exit with 2 (a usage mistake click catches) or 1 (everything else),
- say so on ONE stderr line starting with "Error:" (click usage errors: the last line), with a
  message that names what is wrong,
- print nothing on stdout and no traceback anywhere (no exception escapes the command),
- leave every file of the folder exactly as it was.

Positive neighbours of some cases (UTF-16 text, --skip-unknown) follow the catalogue, and the
safe-loading tests show that a checkpoint carrying a pickle payload is refused by every command.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import torch
from click.testing import CliRunner

from songgen.cli.commands import cli
from songgen.text.lyrics import join_songs, read_songs
from songgen.text.vocab import Vocab

from .conftest import make_songs

TINY = ["--embed-dim", "8", "--hidden-size", "16", "--layers", "1", "--seq-len", "16",
        "--batch-size", "4", "--device", "cpu", "-q"]
# Options for a training run that would otherwise start: a new folder, so that it is the bad
# input, not the existing run in checkpoints/, that stops it.
NEW = [*TINY, "--checkpoint-dir", "new-run", "--steps", "2"]

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
       b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\x00\x01\x00\x00\x05\x00\x01\r\n-\xb4")


def invoke(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


# -- the prepared folder ------------------------------------------------------------------------


class Malicious:
    """Unpickling this runs open(marker, "w"): a stand-in for any code a pickle could run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def proto(tmp_path_factory) -> Path:
    """One real tiny training run plus every bad file the catalogue points at."""
    root = tmp_path_factory.mktemp("proto")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        (root / "songs.txt").write_text(make_songs(), encoding="utf-8")
        result = invoke("train", "songs.txt", *TINY, "--steps", 10, "--eval-every", 5)
        assert result.exit_code == 0, result.output
    finally:
        os.chdir(cwd)
    real = root / "checkpoints" / "last.pt"
    raw = real.read_bytes()
    state = torch.load(real, weights_only=True)
    state.pop("checksum")  # the files made from it test the contents checks, as old files

    # Lyrics that cannot be used.
    (root / "nodata").mkdir()
    (root / "nodata" / "notes.md").write_text("no lyrics here\n")
    (root / "empty.txt").write_bytes(b"")
    (root / "blank.txt").write_text("  \n\n\t\n   \n\n\n")
    (root / "nul.txt").write_bytes(b"# Song\n\nla la\x00la\n")
    (root / "image.txt").write_bytes(PNG)
    (root / "latin1.txt").write_bytes("# Caf\u00e9\n\nna\u00efve love\n".encode("latin-1"))
    (root / "short.txt").write_text("# A\n\nla la la\n\n\n# B\n\nlo lo lo\n")
    (root / "oneline.txt").write_text("just one line of lyrics\n")
    (root / "unknown.txt").write_text("# Sn\u00f8\n\nlove \u00a7 river \u266a\n")
    (root / "utf16-nul.txt").write_bytes("# A\n\nla\x00la\nlo lo\n".encode("utf-16"))
    (root / "mixed").mkdir()
    (root / "mixed" / "a.txt").write_text(make_songs(3))
    (root / "mixed" / "b.txt").write_bytes(b"# B\n\nok\nbad \xc3\x28 here\n")
    (root / "a-file").write_text("not a folder\n")
    (root / "existing-out.txt").write_text("keep me\n")

    # Checkpoints that are not usable checkpoints.
    bad = root / "bad"
    bad.mkdir()
    (bad / "random.pt").write_bytes(bytes(range(256)) * 8)
    (bad / "text.pt").write_text("this is a text file, not a checkpoint\n")
    (bad / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    (bad / "zero.pt").write_bytes(b"")
    torch.save({**state, "version": 99}, bad / "v99.pt")
    torch.save(state["model_state"], bad / "statedict.pt")
    torch.save([1, 2, 3], bad / "list.pt")
    torch.save({k: v for k, v in state.items() if k != "vocab"}, bad / "novocab.pt")
    torch.save({**state, "model_config": {**state["model_config"], "hidden_size": 32}},
               bad / "mismatch.pt")
    torch.save({**state, "vocab": ["\x00", "a", "a"]}, bad / "dupvocab.pt")
    (bad / "folder.pt").mkdir()
    (bad / "folder.pt" / "x").write_text("x")

    # Checkpoint folders for train --resume.
    (root / "empty-run").mkdir()
    (root / "empty-run" / "notes").write_text("nothing to resume here\n")
    (root / "broken-run").mkdir()
    (root / "broken-run" / "last.pt").write_bytes(bytes(range(256)) * 8)
    (root / "locked-run").mkdir()
    shutil.copy(real, root / "locked-run" / "last.pt")
    return root


@pytest.fixture
def case_dir(proto, tmp_path, monkeypatch) -> Path:
    work = tmp_path / "w"
    shutil.copytree(proto, work, symlinks=True)
    monkeypatch.chdir(work)
    yield work
    for folder, _, _ in os.walk(work):  # undo any chmod so that pytest can clean up
        os.chmod(folder, 0o755)


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# -- the catalogue ------------------------------------------------------------------------------


def _read_only(folder: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        path = root / folder
        os.chmod(path, 0o500)
        if os.access(path, os.W_OK):
            pytest.skip("this user can write to a read-only folder (root ignores permissions)")
    return setup


def _skip_if(condition: bool, reason: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        if condition:
            pytest.skip(reason)
    return setup


@dataclass
class Case:
    id: str
    args: list
    code: int
    message: str               # a distinctive part of the error line
    extra: tuple = ()          # more substrings the error line must contain
    setup: Callable[[Path], None] | None = field(default=None)


NO_CUDA = _skip_if(torch.cuda.is_available(), "CUDA is available here")
NO_CUDA7 = _skip_if(torch.cuda.device_count() > 7, "this machine has a cuda:7")
NO_MPS = _skip_if(_mps_available(), "Apple MPS is available here")

CASES = [
    # ---- train: the text ----
    Case("train-missing-path", ["train", "missing.txt"], 2, "Path 'missing.txt' does not exist"),
    Case("train-folder-without-txt", ["train", "nodata", *NEW], 1, "holds no .txt files"),
    Case("train-empty-file", ["train", "empty.txt", *NEW], 1, "holds no lyrics"),
    Case("train-whitespace-file", ["train", "blank.txt", *NEW], 1, "holds no lyrics"),
    Case("train-nul-bytes", ["train", "nul.txt", *NEW], 1, "binary file", ("nul.txt",)),
    Case("train-png", ["train", "image.txt", *NEW], 1, "binary file", ("image.txt",)),
    Case("train-invalid-utf8", ["train", "latin1.txt", *NEW], 1,
         "not valid UTF-8 at line 1, byte offset 5", ("latin1.txt",)),
    Case("train-invalid-utf8-in-folder", ["train", "mixed", *NEW], 1,
         "not valid UTF-8 at line 4, byte offset 12", ("b.txt",)),
    Case("train-utf16-with-nul", ["train", "utf16-nul.txt", *NEW], 1, "NUL"),
    Case("train-shorter-than-a-window", ["train", "short.txt", *NEW], 1,
         "fewer than batch size x sequence length + 1"),
    Case("train-single-line", ["train", "oneline.txt", *NEW], 1, "single line"),
    Case("train-two-texts", ["train", "songs.txt", "short.txt"], 2,
         "unexpected extra argument (short.txt)"),
    # ---- train: numbers ----
    Case("train-steps-0", ["train", "songs.txt", "--steps", 0], 2, "Invalid value for '--steps'",
         ("0 is not in the range x>=1",)),
    Case("train-steps-abc", ["train", "songs.txt", "--steps", "abc"], 2,
         "'abc' is not a valid integer"),
    Case("train-epochs-0", ["train", "songs.txt", "--epochs", 0], 2, "'--epochs'"),
    Case("train-batch-size-negative", ["train", "songs.txt", "--batch-size", -1], 2,
         "Invalid value for '--batch-size'"),
    Case("train-lr-0", ["train", "songs.txt", "--lr", 0], 2, "Invalid value for '--lr'",
         ("0<x<=10",)),
    Case("train-lr-absurd", ["train", "songs.txt", "--lr", "1e9"], 2, "Invalid value for '--lr'"),
    Case("train-lr-nan", ["train", "songs.txt", *NEW, "--lr", "nan"], 1,
         "learning rate must be a positive number"),
    Case("train-seq-len-0", ["train", "songs.txt", "--seq-len", 0], 2, "'--seq-len'"),
    Case("train-hidden-size-0", ["train", "songs.txt", "--hidden-size", 0], 2, "'--hidden-size'"),
    Case("train-embed-dim-0", ["train", "songs.txt", "--embed-dim", 0], 2, "'--embed-dim'"),
    Case("train-layers-0", ["train", "songs.txt", "--layers", 0], 2, "'--layers'"),
    Case("train-dropout-1", ["train", "songs.txt", "--dropout", 1], 2, "'--dropout'",
         ("0<=x<1",)),
    Case("train-val-frac-0", ["train", "songs.txt", "--val-frac", 0], 2, "'--val-frac'"),
    Case("train-val-frac-0.9", ["train", "songs.txt", "--val-frac", 0.9], 2, "'--val-frac'"),
    Case("train-weight-decay-negative", ["train", "songs.txt", "--weight-decay", -1], 2,
         "'--weight-decay'"),
    Case("train-grad-clip-negative", ["train", "songs.txt", "--grad-clip", -1], 2,
         "'--grad-clip'"),
    Case("train-seed-negative", ["train", "songs.txt", "--seed", -1], 2, "'--seed'"),
    Case("train-patience-negative", ["train", "songs.txt", "--patience", -1], 2, "'--patience'"),
    Case("train-keep-last-negative", ["train", "songs.txt", "--keep-last", -1], 2,
         "'--keep-last'"),
    Case("train-time-limit-0", ["train", "songs.txt", "--time-limit", 0], 2,
         "the time limit must be more than zero"),
    Case("train-time-limit-abc", ["train", "songs.txt", "--time-limit", "abc"], 2,
         "'abc' is not a duration"),
    Case("train-eval-every-0", ["train", "songs.txt", "--eval-every", 0], 2, "'--eval-every'"),
    Case("train-precision-unknown", ["train", "songs.txt", "--precision", "fp8"], 2,
         "'--precision'"),
    Case("train-fp16-on-cpu", ["train", "songs.txt", *NEW, "--precision", "fp16"], 1,
         "fp16 training needs a CUDA GPU"),
    Case("train-unknown-option", ["train", "songs.txt", "--stesp", 5], 2,
         "No such option '--stesp'", ("Did you mean", "'--steps'")),
    # ---- train: checkpoints ----
    Case("train-existing-run", ["train", "songs.txt", *TINY, "--steps", 2], 1,
         "checkpoints already holds a training run", ("songs.txt)", "add --resume")),
    Case("train-resume-nothing", ["train", "songs.txt", *TINY, "--resume", "--checkpoint-dir",
                                  "empty-run"], 1, "nothing to resume"),
    Case("train-resume-missing-folder", ["train", "songs.txt", *TINY, "--resume",
                                         "--checkpoint-dir", "no-such-run"], 1,
         "nothing to resume"),
    Case("train-resume-corrupt", ["train", "songs.txt", *TINY, "--resume", "--checkpoint-dir",
                                  "broken-run"], 1, "corrupt", ("last.pt",)),
    Case("train-resume-other-text", ["train", "unknown.txt", *TINY, "--resume"], 1,
         "is not the text the checkpoint was trained on", ("songs.txt (fingerprint",)),
    Case("train-checkpoint-dir-is-a-file", ["train", "songs.txt", *TINY, "--checkpoint-dir",
                                            "a-file"], 1, "a-file is a file"),
    Case("train-checkpoint-dir-read-only", ["train", "songs.txt", *TINY, "--resume",
                                            "--checkpoint-dir", "locked-run", "--steps", 12], 1,
         "is not writable", setup=_read_only("locked-run")),
    Case("train-resume-and-init-from", ["train", "songs.txt", *NEW, "--resume", "--init-from",
                                        "checkpoints/last.pt"], 1, "cannot be combined"),
    Case("train-init-from-missing", ["train", "songs.txt", *NEW, "--init-from", "nope.pt"], 2,
         "'--init-from'", ("does not exist",)),
    Case("train-init-from-random", ["train", "songs.txt", *NEW, "--init-from", "bad/random.pt"], 1,
         "bad/random.pt is corrupt"),
    Case("train-init-from-text", ["train", "songs.txt", *NEW, "--init-from", "bad/text.pt"], 1,
         "bad/text.pt is corrupt"),
    Case("train-init-from-statedict", ["train", "songs.txt", *NEW, "--init-from",
                                       "bad/statedict.pt"], 1, "bare PyTorch state_dict"),
    Case("train-init-from-v99", ["train", "songs.txt", *NEW, "--init-from", "bad/v99.pt"], 1,
         "uses checkpoint format 99"),
    # ---- train: devices ----
    Case("train-device-cuda", ["train", "songs.txt", *NEW, "--device", "cuda"], 1,
         "CUDA is not available", setup=NO_CUDA),
    Case("train-device-cuda7", ["train", "songs.txt", *NEW, "--device", "cuda:7"], 1,
         "device cuda:7", setup=NO_CUDA7),
    Case("train-device-mps", ["train", "songs.txt", *NEW, "--device", "mps"], 1,
         "mps (Apple GPU) is not available", setup=NO_MPS),
    Case("train-device-tpu", ["train", "songs.txt", *NEW, "--device", "tpu"], 1,
         "unknown device 'tpu'"),
    # ---- sample ----
    Case("sample-missing-checkpoint", ["sample", "--checkpoint", "nothing.pt"], 1,
         "no checkpoint at nothing.pt"),
    Case("sample-checkpoint-folder", ["sample", "--checkpoint", "bad/folder.pt"], 1,
         "no checkpoint in bad/folder.pt (no best.pt or last.pt)"),
    Case("sample-random-bytes", ["sample", "--checkpoint", "bad/random.pt"], 1,
         "bad/random.pt is corrupt"),
    Case("sample-text-file", ["sample", "--checkpoint", "bad/text.pt"], 1, "bad/text.pt is corrupt"),
    Case("sample-truncated", ["sample", "--checkpoint", "bad/truncated.pt"], 1,
         "bad/truncated.pt is corrupt"),
    Case("sample-zero-bytes", ["sample", "--checkpoint", "bad/zero.pt"], 1, "is empty (0 bytes)"),
    Case("sample-newer-version", ["sample", "--checkpoint", "bad/v99.pt"], 1,
         "uses checkpoint format 99, newer than this songgen reads (1)"),
    Case("sample-bare-state-dict", ["sample", "--checkpoint", "bad/statedict.pt"], 1,
         "bare PyTorch state_dict"),
    Case("sample-plain-list", ["sample", "--checkpoint", "bad/list.pt"], 1,
         "not a songgen checkpoint (it holds a list)"),
    Case("sample-missing-vocab", ["sample", "--checkpoint", "bad/novocab.pt"], 1,
         "incomplete (missing vocab)"),
    Case("sample-config-mismatch", ["sample", "--checkpoint", "bad/mismatch.pt"], 1,
         "damaged model"),
    Case("sample-duplicate-vocab", ["sample", "--checkpoint", "bad/dupvocab.pt"], 1,
         "damaged"),
    Case("sample-temp-negative", ["sample", "--temp", -0.5], 2, "'--temp' / '--temperature'"),
    Case("sample-temp-nan", ["sample", "--temp", "nan"], 1, "temperature must be 0"),
    Case("sample-top-p-0", ["sample", "--top-p", 0], 2, "Invalid value for '--top-p'"),
    Case("sample-top-p-1.5", ["sample", "--top-p", 1.5], 2, "Invalid value for '--top-p'"),
    Case("sample-top-k-negative", ["sample", "--top-k", -1], 2, "Invalid value for '--top-k'"),
    Case("sample-length-0", ["sample", "--length", 0], 2, "Invalid value for '--length'"),
    Case("sample-length-absurd", ["sample", "--length", 10**9], 2, "Invalid value for '--length'",
         ("1<=x<=1000000",)),
    Case("sample-num-songs-0", ["sample", "--num-songs", 0], 2, "Invalid value for '--num-songs'"),
    Case("sample-num-songs-absurd", ["sample", "-n", 10**9], 2, "'--num-songs' / '-n'"),
    Case("sample-max-lines-0", ["sample", "--max-lines", 0], 2, "'--max-lines'"),
    Case("sample-retries-absurd", ["sample", "--retries", 10**6], 2, "'--retries'"),
    Case("sample-prime-unseen", ["sample", "--prime", "\u00a7\u00e9", "--strict"], 1,
         "the prime has characters the model never saw: '\u00a7', '\u00e9'"),
    Case("sample-prime-invisible", ["sample", "--prime", "a\u0301\u200d", "--strict"], 1,
         "never saw: 'á', U+200D;"),
    Case("sample-prime-longer-than-length", ["sample", "--prime", "love river", "--length", 5], 1,
         "raise the length"),
    Case("sample-prime-file-missing", ["sample", "--prime-file", "nope.txt"], 2,
         "'--prime-file'"),
    Case("sample-max-copy-without-corpus", ["sample", "--max-copy", 20], 2,
         "--max-copy needs --corpus"),
    Case("sample-corpus-other-text", ["sample", "--corpus", "short.txt", "-n", 2], 1,
         "short.txt is not the text"),
    Case("sample-output-exists", ["sample", "--output", "existing-out.txt"], 1,
         "existing-out.txt already exists"),
    Case("sample-output-is-folder", ["sample", "--output", "nodata"], 2, "'--output'",
         ("is a directory",)),
    Case("sample-device-tpu", ["sample", "--device", "tpu"], 1, "unknown device 'tpu'"),
    Case("sample-device-cuda", ["sample", "--device", "cuda"], 1, "CUDA is not available",
         setup=NO_CUDA),
    Case("sample-unknown-option", ["sample", "--temprature", 1], 2, "No such option",
         ("Did you mean", "'--temperature'")),
    # ---- eval ----
    Case("eval-missing-path", ["eval", "missing.txt"], 2, "Path 'missing.txt' does not exist"),
    Case("eval-no-text", ["eval"], 2, "Missing argument 'TEXT'"),
    Case("eval-folder-without-txt", ["eval", "nodata"], 1, "holds no .txt files"),
    Case("eval-empty-file", ["eval", "empty.txt"], 1, "holds no lyrics"),
    Case("eval-binary", ["eval", "image.txt"], 1, "binary file"),
    Case("eval-invalid-utf8", ["eval", "latin1.txt"], 1, "line 1, byte offset 5"),
    Case("eval-unknown-characters", ["eval", "unknown.txt"], 1,
         "characters the model never saw: '\u00a7', '\u00f8', '\u266a'"),
    Case("eval-corrupt-checkpoint", ["eval", "songs.txt", "--checkpoint", "bad/truncated.pt"], 1,
         "corrupt"),
    Case("eval-missing-checkpoint", ["eval", "songs.txt", "--checkpoint", "none.pt"], 1,
         "no checkpoint at none.pt"),
    Case("eval-device-mps", ["eval", "songs.txt", "--device", "mps"], 1, "mps", setup=NO_MPS),
    Case("eval-unknown-option", ["eval", "songs.txt", "--skip-unknwn"], 2,
         "Did you mean '--skip-unknown'?"),
    # ---- info ----
    Case("info-missing", ["info", "nothing.pt"], 1, "no checkpoint at nothing.pt"),
    Case("info-folder", ["info", "bad/folder.pt"], 1,
         "no checkpoint in bad/folder.pt (no best.pt or last.pt)"),
    Case("info-random-bytes", ["info", "bad/random.pt"], 1, "corrupt"),
    Case("info-text-file", ["info", "bad/text.pt"], 1, "corrupt"),
    Case("info-truncated", ["info", "bad/truncated.pt"], 1, "corrupt"),
    Case("info-zero-bytes", ["info", "bad/zero.pt"], 1, "empty (0 bytes)"),
    Case("info-newer-version", ["info", "bad/v99.pt"], 1, "format 99"),
    Case("info-bare-state-dict", ["info", "bad/statedict.pt"], 1, "bare PyTorch state_dict"),
    Case("info-plain-list", ["info", "bad/list.pt"], 1, "holds a list"),
    Case("info-lyrics-file", ["info", "songs.txt"], 1, "songs.txt is a text file, not a checkpoint"),
    Case("info-unknown-option", ["info", "--jsn"], 2, "Did you mean '--json'?"),
    Case("unknown-command", ["trian"], 2, "No such command 'trian'"),
]


def test_the_catalogue_is_large_and_names_are_unique():
    assert len(CASES) >= 45
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.args[0] for c in CASES} >= {"train", "sample", "eval", "info"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, case_dir: Path):
    if case.setup is not None:
        case.setup(case_dir)
    before = snapshot(case_dir)

    result = invoke(*case.args)

    # No exception escaped the command (CliRunner would hide its traceback otherwise).
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n{result.output}")
    assert "Traceback" not in result.output
    assert result.exit_code == case.code, result.output
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if case.code == 2:
        assert lines and lines[-1].startswith("Error:"), result.stderr
    else:
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert lines[0].startswith("Error: "), result.stderr
    for part in (case.message, *case.extra):
        assert part in lines[-1], result.stderr

    after = snapshot(case_dir)
    changed = [name for name in before if after.get(name) != before[name]]
    assert not changed, f"files changed or removed: {changed}"


# -- gaps found by this catalogue, now closed ---------------------------------------------------
# Bad inputs that once ended in a traceback, and good primes that were once refused.

KNOWN = [
    Case("sample-prime-file-not-utf8", ["sample", "--prime-file", "latin1.txt"], 1, "latin1.txt"),
    Case("sample-prime-file-binary", ["sample", "--prime-file", "image.txt"], 1, "image.txt"),
    Case("sample-seed-absurd", ["sample", "--seed", 10**30], 2, "seed"),
    Case("train-seed-absurd", ["train", "songs.txt", *NEW, "--seed", 10**30], 2, "seed"),
    Case("train-hidden-size-absurd", ["train", "songs.txt", *NEW, "--hidden-size", 10**6], 2,
         "hidden"),
    Case("train-embed-dim-absurd", ["train", "songs.txt", *NEW, "--embed-dim", 10**12], 2,
         "embed"),
    Case("train-weight-decay-nan", ["train", "songs.txt", *NEW, "--weight-decay", "nan"], 1,
         "weight decay must be numbers"),
    Case("train-grad-clip-nan", ["train", "songs.txt", *NEW, "--grad-clip", "nan"], 1,
         "gradient clip and weight decay must be numbers"),
]


@pytest.mark.parametrize("case", KNOWN, ids=[c.id for c in KNOWN])
def test_closed_gap(case: Case, case_dir: Path):
    before = snapshot(case_dir)
    result = invoke(*case.args)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{type(result.exception).__name__}: {result.exception}"
    assert result.exit_code in (1, 2) and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: ") and case.message in lines[-1].lower()
    assert all(snapshot(case_dir).get(name) == digest for name, digest in before.items())


def test_a_failed_run_leaves_no_new_folder(case_dir):
    result = invoke("train", "short.txt", *NEW)
    assert result.exit_code == 1
    assert not (case_dir / "new-run").exists()


@pytest.mark.parametrize("prime", ["# Cafe\u0301", "\ufeff# A"])
def test_prime_is_normalised_like_the_corpus(case_dir, prime):
    (case_dir / "cafe.txt").write_text(make_songs(20) + "\n\n\n# Caf\u00e9\n\nla la\n")
    trained = invoke("train", "cafe.txt", *TINY, "--steps", 2, "--checkpoint-dir", "cafe")
    assert trained.exit_code == 0, trained.output
    (case_dir / "prime.txt").write_text(prime, encoding="utf-8", newline="")
    result = invoke("sample", "--checkpoint", "cafe/last.pt", "--prime-file", "prime.txt",
                    "--length", 40, "--seed", 1, "--shape", "free")
    assert result.exit_code == 0, result.output
    # The prime reaches the model as the corpus's characters: the composed é (no combining
    # accent replaced or dropped, no warning) and no byte-order mark.
    expected = unicodedata.normalize("NFC", prime.lstrip("\ufeff"))
    assert result.stdout.startswith(expected), result.stdout
    assert "\ufeff" not in result.stdout and "\u0301" not in result.stdout
    assert "never saw" not in result.stderr, result.stderr


# -- positive neighbours ------------------------------------------------------------------------


def test_utf16_with_bom_is_read_and_trains(case_dir):
    text = make_songs(20)
    (case_dir / "u16.txt").write_bytes(text.encode("utf-16"))  # BOM + UTF-16-LE
    (case_dir / "u16be.txt").write_bytes(b"\xfe\xff" + text.encode("utf-16-be"))
    for name in ("u16.txt", "u16be.txt"):
        result = invoke("train", name, *TINY, "--steps", 3, "--checkpoint-dir", f"run-{name}")
        assert result.exit_code == 0, result.output
        state = torch.load(case_dir / f"run-{name}" / "last.pt", weights_only=True)
        assert state["step"] == 3
        assert "\ufeff" not in state["vocab"]
    (case_dir / "u8.txt").write_text(text, encoding="utf-8")
    expected = Vocab.from_text(join_songs(read_songs(case_dir / "u8.txt"))).chars
    for name in ("u16.txt", "u16be.txt"):
        assert torch.load(case_dir / f"run-{name}" / "last.pt", weights_only=True)["vocab"] == expected


def test_eval_skip_unknown_scores_the_rest(case_dir):
    result = invoke("eval", "unknown.txt", "--skip-unknown", "--json")
    assert result.exit_code == 0, result.output
    score = json.loads(result.stdout)
    assert score["skipped"] == 3 and score["chars"] > 10


# -- safe loading -------------------------------------------------------------------------------


@pytest.fixture
def malicious(tmp_path, monkeypatch):
    """A torch zip checkpoint and a raw pickle, both creating `marker` when unpickled."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "songs.txt").write_text(make_songs(), encoding="utf-8")
    marker = tmp_path / "PWNED"
    payload = {"format": "songgen-checkpoint", "version": 1, "vocab": ["\x00", "a"],
               "model_config": {}, "model_state": {}, "step": 0, "evil": Malicious(marker)}
    zipped = tmp_path / "evil-zip.pt"
    torch.save(payload, zipped)
    raw = tmp_path / "evil-raw.pt"
    raw.write_bytes(pickle.dumps(payload))
    return marker, [zipped, raw]


def test_the_malicious_payload_is_real(malicious):
    # Sanity check of the test itself: an unsafe load does run the payload.
    marker, files = malicious
    for path in files:
        if path.name.endswith("zip.pt"):
            torch.load(path, weights_only=False)
        else:
            pickle.loads(path.read_bytes())
        assert marker.exists()
        marker.unlink()


def _safe_commands(path: Path, tmp_path: Path):
    run = tmp_path / f"run-{path.stem}"
    run.mkdir()
    shutil.copy(path, run / "last.pt")
    return [
        (["sample", "--checkpoint", path], path.name),
        (["eval", "songs.txt", "--checkpoint", path], path.name),
        (["info", path], path.name),
        (["train", "songs.txt", *TINY, "--resume", "--checkpoint-dir", run], "last.pt"),
        (["train", "songs.txt", *TINY, "--init-from", path, "--checkpoint-dir",
          tmp_path / "fresh"], path.name),
    ]


def test_every_command_refuses_a_malicious_checkpoint(malicious, tmp_path):
    marker, files = malicious
    for path in files:
        for args, name in _safe_commands(path, tmp_path):
            result = invoke(*args)
            assert result.exception is None or isinstance(result.exception, SystemExit), \
                result.exception
            assert result.exit_code == 1, (args, result.output)
            assert len(result.stderr.splitlines()) == 1, (args, result.stderr)
            assert result.stderr.startswith("Error: ") and name in result.stderr, result.stderr
            assert "Traceback" not in result.output
            assert not marker.exists(), f"{args} ran the payload"


def test_refusal_is_one_line_in_a_real_process(malicious, tmp_path):
    # CliRunner lets pytest swallow Python warnings; a real process shows any that PyTorch
    # prints while refusing the file (pickle protocol warnings, for one).
    marker, files = malicious
    out = subprocess.run([sys.executable, "-m", "songgen", "info", *map(str, files[1:])],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith(f"Error: {files[1]} ") and out.stderr.count("\n") == 1, out.stderr
    assert not marker.exists()


def test_library_loaders_refuse_a_malicious_checkpoint(malicious):
    from songgen.run.checkpoint import load
    from songgen.run.trained import load_checkpoint
    from songgen.errors import CheckpointError

    marker, files = malicious
    for path in files:
        for loader in (load, load_checkpoint):
            with pytest.raises(CheckpointError, match=path.name):
                loader(path)
        assert not marker.exists()


# -- paths that are not regular files, and files that are not text -----------------------------

def test_a_named_pipe_is_refused_at_once_not_read_forever(case_dir):
    os.mkfifo(case_dir / "pipe.txt")
    result = invoke("train", "pipe.txt", *NEW)
    assert result.exit_code == 1
    assert result.stderr == ("Error: pipe.txt is not a regular file (a named pipe, a device or a "
                             "socket); give a lyrics file or a folder of .txt files\n")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_is_refused_at_once(case_dir):
    for command in (["train", "/dev/zero", *NEW], ["eval", "/dev/zero"],
                    ["sample", "--prime-file", "/dev/zero"]):
        result = invoke(*command)
        assert result.exit_code in (1, 2), command
        assert "/dev/zero is not a regular file" in result.stderr, command


def test_a_socket_is_refused(case_dir):
    import socket

    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind("sock.txt")
        result = invoke("train", "sock.txt", *NEW)
    finally:
        server.close()
    assert result.exit_code == 1 and "sock.txt is not a regular file" in result.stderr


def test_a_folder_finds_txt_files_whatever_the_case_of_the_extension(case_dir):
    folder = case_dir / "mixed-case"
    folder.mkdir()
    (folder / "SONGS.TXT").write_text(make_songs(20), encoding="utf-8")
    (folder / "lyrics.Txt").write_text(make_songs(20, seed=3), encoding="utf-8")
    result = invoke("train", "mixed-case", *NEW)
    assert result.exit_code == 0, result.output
    state = torch.load(case_dir / "new-run" / "last.pt", weights_only=True)
    assert state["corpus"].endswith("mixed-case")


@pytest.mark.parametrize("magic, what", [
    (b"PK\x03\x04\x14\x00\x06\x00", "a word-processor document or other zip archive (.docx, .odt)"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF"),
    (b"{\\rtf1\\ansi\\deff0 ", "a rich-text (RTF) document")])
def test_a_document_renamed_txt_is_named_for_what_it_is(case_dir, magic, what):
    (case_dir / "lyrics.txt").write_bytes(magic + b"\x00\x01binary\n" * 50)
    result = invoke("train", "lyrics.txt", *NEW)
    assert result.exit_code == 1
    assert result.stderr == (f"Error: lyrics.txt looks like {what}, not plain text; export or "
                             "save it as plain text (UTF-8) and give that file\n")
