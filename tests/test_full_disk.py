"""A full disk, whatever call runs out of space: one line that says so and where, nothing lost,
and a resume after freeing space that ends where the uninterrupted run ends. On a real small
file system (tmpfs; skipped where it cannot be mounted) and with ENOSPC simulated in each
writer: torch.save's zip writer, fsync, the corpus cache, metrics.jsonl, the lock file."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from songgen.run import checkpoint as ckpt
from songgen.run.folder import RunFolder
from songgen import files
from songgen.text import cache as corpuscache
from songgen.cli.commands import cli
from songgen.errors import DiskFull, SonggenWarning
from songgen.training.loop import train

TINY = ["--embed-dim", "8", "--hidden-size", "16", "--layers", "2", "--seq-len", "16",
        "--batch-size", "4", "--device", "cpu", "--threads", "1", "--eval-every", "5", "-q"]
STEPS = 40


def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def records(folder: Path) -> list[tuple]:
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in map(json.loads, lines)]


def assert_same_run(a: Path, b: Path) -> None:
    """Two run folders that end alike: last.pt's training state, best.pt, and the metrics."""
    x, y = ckpt.load(a / "last.pt").to_dict(), ckpt.load(b / "last.pt").to_dict()
    assert x["step"] == y["step"]
    for key in ("model_state", "optimizer_state", "stream_state", "rng", "best_val_loss"):
        assert _equal(x[key], y[key]), key
    assert [(h["step"], h["val_loss"]) for h in x["history"]] == \
        [(h["step"], h["val_loss"]) for h in y["history"]]
    assert ckpt.load(a / "best.pt").step == ckpt.load(b / "best.pt").step
    assert records(a) == records(b)


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(u, v) for u, v in zip(a, b))
    return a == b


@pytest.fixture
def straight(songs_file, tmp_path):
    """The uninterrupted run, through the CLI."""
    folder = tmp_path / "straight"
    result = CliRunner().invoke(cli, ["train", str(songs_file), *TINY, "--steps", str(STEPS),
                                      "--checkpoint-dir", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


# -- a real small disk --------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """mount(size): a tmpfs of that size (e.g. "300k"); skipped where none can be mounted."""
    mounted = []

    def mount(size: str) -> Path:
        where = tmp_path / f"disk-{size}"
        where.mkdir()
        if sys.platform != "linux" or not shutil.which("mount"):
            pytest.skip("needs Linux and mount")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.mark.parametrize("size", ["100k", "200k", "350k", "500k"])
def test_training_on_a_small_disk_says_so_in_one_line_and_resumes_exactly(
        size, small_disk, songs_file, straight):
    disk = small_disk(size)
    folder = disk / "run"
    command = ["train", str(songs_file), *TINY, "--steps", str(STEPS), "--checkpoint-dir",
               str(folder)]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 1, result.output
    # One line: the disk is full, and where; never a traceback.
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith(f"Error: the disk holding {folder} is full: step "), \
        result.stderr
    # (a run that saved nothing takes its new folder back)
    assert not [p for p in folder.glob("*") if p.name.endswith((".tmp", ".copy"))]
    if (folder / "last.pt").exists():
        kept = ckpt.load(folder / "last.pt").step  # nothing torn
        assert f"last.pt (step {kept}) is intact; free some space, then run the same " \
               "command with --resume" in result.stderr
        for path in folder.glob("*.pt"):
            ckpt.load(path)
        again = command + ["--resume"]
    else:
        assert "no checkpoint of this run is saved yet; free some space, then run it again" \
            in result.stderr
        again = command
    # Space freed: the run goes on, and ends where the uninterrupted one did.
    subprocess.run(["mount", "-o", "remount,size=4m", str(disk)], check=True)
    resumed = CliRunner().invoke(cli, again)
    assert resumed.exit_code == 0, resumed.output
    assert_same_run(folder, straight)


# -- ENOSPC in each writer ------------------------------------------------------------------------

@pytest.fixture
def five_steps(songs_file, tiny_model, tiny_config):
    """A run saved at step 5 (last.pt, best.pt, step-5), and the bytes of what it saved."""
    folder = train(songs_file, model=tiny_model, config=tiny_config(steps=5),
                   quiet=True).checkpoint_dir
    return folder, {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def resume_to(songs_file, tiny_model, tiny_config, steps: int):
    return train(songs_file, model=tiny_model, config=tiny_config(steps=steps), resume=True,
                 quiet=True)


def assert_untouched(folder: Path, before: dict) -> None:
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before


def test_the_zip_writer_running_out_of_space_is_a_full_disk(five_steps, songs_file, tiny_model,
                                                             tiny_config, monkeypatch):
    folder, before = five_steps
    real, budget = os.write, [3000]  # bytes the "disk" still takes

    def write(fd, data):
        if budget[0] < len(data):
            raise OSError(errno.ENOSPC, "No space left on device")
        budget[0] -= len(data)
        return real(fd, data)

    monkeypatch.setattr(files.os, "write", write)
    # torch.save meets the error inside its zip writer, which hides it ("unexpected pos").
    with pytest.raises(DiskFull, match=rf"^the disk holding {folder} is full: step 10 could not "
                                       r"be saved, last.pt \(step 5\) is intact; free some space, "
                                       "then resume the run$"):
        resume_to(songs_file, tiny_model, tiny_config, 10)
    monkeypatch.undo()
    before["metrics.jsonl"] = (folder / "metrics.jsonl").read_bytes()  # step 10's record
    assert_untouched(folder, before)


@pytest.mark.parametrize("which", [1, 2])  # last.pt's temp file, step-10.pt's
def test_fsync_running_out_of_space_keeps_the_previous_checkpoint(which, five_steps, songs_file,
                                                                  tiny_model, tiny_config,
                                                                  monkeypatch, tmp_path):
    folder, before = five_steps
    real, calls = os.fsync, []

    def fsync(fd):
        if stat.S_ISREG(os.fstat(fd).st_mode):
            calls.append(fd)
            if len(calls) == which:
                full()
        return real(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    with pytest.raises(DiskFull, match=r"step 10 could not be saved, last.pt \(step 5\) is "
                                       "intact"):
        resume_to(songs_file, tiny_model, tiny_config, 10)
    monkeypatch.undo()
    assert ckpt.load(folder / "last.pt").step == 5
    assert not [p for p in folder.iterdir() if p.name.endswith((".tmp", ".copy"))]
    # The resume after it ends where an uninterrupted run ends.
    resume_to(songs_file, tiny_model, tiny_config, 15)
    straight = tmp_path / "straight"
    train(songs_file, model=tiny_model, config=tiny_config(steps=15, checkpoint_dir=str(straight)),
          quiet=True)
    assert_same_run(folder, straight)


def test_metrics_running_out_of_space(five_steps, songs_file, tiny_model, tiny_config,
                                      monkeypatch, tmp_path):
    folder, before = five_steps
    monkeypatch.setattr(ckpt.files, "append_line", full)
    with pytest.raises(DiskFull, match=rf"^the disk holding {folder} is full: metrics.jsonl could "
                                       r"not be written, last.pt \(step 5\) is intact"):
        resume_to(songs_file, tiny_model, tiny_config, 10)
    monkeypatch.undo()
    assert_untouched(folder, before)
    resume_to(songs_file, tiny_model, tiny_config, 15)
    straight = tmp_path / "straight"
    train(songs_file, model=tiny_model, config=tiny_config(steps=15, checkpoint_dir=str(straight)),
          quiet=True)
    assert_same_run(folder, straight)


def test_an_append_cut_short_leaves_no_half_line(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 5}\n')
    real = os.write

    def half_then_full(fd, data):
        if len(data) > 4:
            return real(fd, bytes(data)[:4])  # the disk takes 4 bytes, then no more
        full()

    monkeypatch.setattr(files.os, "write", half_then_full)
    with pytest.raises(OSError):
        files.append_line(path, '{"step": 10}')
    monkeypatch.undo()
    assert path.read_text() == '{"step": 5}\n'


def test_a_save_that_failed_after_its_metrics_leaves_no_duplicate_record(
        five_steps, songs_file, tiny_model, tiny_config, monkeypatch, tmp_path):
    folder, _ = five_steps
    monkeypatch.setattr(files.os, "fsync", full)  # step 10's record is written, its save not
    with pytest.raises(DiskFull):
        resume_to(songs_file, tiny_model, tiny_config, 10)
    monkeypatch.undo()
    assert [r[0] for r in records(folder)] == [5, 10]
    resume_to(songs_file, tiny_model, tiny_config, 15)
    assert [r[0] for r in records(folder)] == [5, 10, 15]
    straight = tmp_path / "straight"
    train(songs_file, model=tiny_model, config=tiny_config(steps=15, checkpoint_dir=str(straight)),
          quiet=True)
    assert_same_run(folder, straight)


def test_a_torn_last_record_is_dropped_by_the_next_run(five_steps, songs_file, tiny_model,
                                                       tiny_config):
    folder, _ = five_steps
    with open(folder / "metrics.jsonl", "a") as f:
        f.write('{"step": 10, "train_lo')  # a crash in the middle of an append
    resume_to(songs_file, tiny_model, tiny_config, 10)
    assert [r[0] for r in records(folder)] == [5, 10]


def test_the_lock_file_on_a_full_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "exclusive", full)
    with pytest.raises(DiskFull, match=rf"^the disk holding {tmp_path / 'run'} is full: its lock "
                                       "file could not be made, no checkpoint of this run is "
                                       "saved yet; free some space, then start the run again$"):
        with RunFolder(tmp_path / "run").lock():
            pass
    assert not (tmp_path / "run").exists()  # the folder it made is gone again


def test_a_full_disk_skips_the_corpus_cache_with_a_warning(songs_file, tiny_model, tiny_config,
                                                          monkeypatch):
    monkeypatch.setattr(corpuscache, "_write", full)
    with pytest.warns(SonggenWarning, match=r"cannot write the corpus cache .* \(its disk is "
                                            r"full\); the text is used as read"):
        result = train(songs_file, model=tiny_model, config=tiny_config(steps=5), quiet=True)
    assert ckpt.load(result.checkpoint_dir / "last.pt").step == 5
    assert not list((result.checkpoint_dir / "corpus-cache").glob("*.corpus"))


def test_a_cache_that_would_crowd_the_disk_is_not_written(songs_file, tiny_model, tiny_config,
                                                          monkeypatch):
    usage = shutil.disk_usage("/")
    monkeypatch.setattr(corpuscache.shutil, "disk_usage",
                        lambda path: usage._replace(free=20_000))
    with pytest.warns(SonggenWarning, match="not writing the corpus cache .* more than half"):
        result = train(songs_file, model=tiny_model, config=tiny_config(steps=5), quiet=True)
    assert not list((result.checkpoint_dir / "corpus-cache").glob("*.corpus"))
