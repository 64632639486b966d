"""A run's folder holds that run: the commands that read a run (eval, sample --corpus, info)
write nothing in it, and one training run at a time uses it, on every OS (filelock)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from songgen.cli.commands import cli
from songgen.training.loop import train


def listing(folder: Path) -> dict:
    """Every file and folder under `folder`, with its size and modification time."""
    found = {}
    for root, dirs, names in os.walk(folder):
        for name in dirs + names:
            path = Path(root) / name
            st = path.stat()
            found[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return found


def test_reading_a_run_writes_nothing_in_its_folder(songs_file, tiny_model, tiny_config,
                                                    tmp_path):
    folder = train(songs_file, model=tiny_model, config=tiny_config(steps=5),
                   quiet=True).checkpoint_dir
    other = tmp_path / "other.txt"
    other.write_text("# Road Home\n\nlove river night\nthe road home\n", encoding="utf-8")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("# Zebra\n\nZoo and Xray\n", encoding="utf-8")
    before = listing(folder)
    ck = ["--checkpoint", str(folder)]
    runner = CliRunner()
    for args, code in [
        (["eval", str(songs_file), *ck, "--device", "cpu"], 0),   # the training text
        (["eval", str(other), *ck, "--device", "cpu"], 0),        # another text
        (["eval", str(empty), *ck, "--device", "cpu"], 1),        # an empty one
        (["eval", str(unknown), *ck, "--device", "cpu"], 1),      # characters it never saw
        (["eval", str(unknown), *ck, "--device", "cpu", "--skip-unknown"], 0),
        (["sample", *ck, "--device", "cpu", "--corpus", str(songs_file), "--seed", "1",
          "--length", "40"], 0),
        (["sample", *ck, "--device", "cpu", "--corpus", str(songs_file), "--max-copy", "5",
          "--seed", "1", "--length", "40"], 0),
        (["info", str(folder)], 0),
        (["info", str(folder / "last.pt"), "--json"], 0),
    ]:
        result = runner.invoke(cli, args)
        assert result.exit_code == code, (args, result.output)
        assert listing(folder) == before, args


HOLD = textwrap.dedent("""
    import sys, time
    sys.modules["fcntl"] = None  # as on Windows: no fcntl to lock with
    from songgen.run.folder import RunFolder
    from songgen.errors import CheckpointError
    try:
        with RunFolder(sys.argv[1]).lock():
            print("held", flush=True)
            time.sleep(float(sys.argv[2]))
    except CheckpointError as exc:
        print(exc, flush=True)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="simulates a platform without fcntl")
def test_two_runs_are_refused_without_fcntl(tmp_path):
    """The run-folder lock is not fcntl's alone: where there is none (Windows), a second
    training run in the same folder is still refused."""
    folder = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), "60"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "held"
        second = subprocess.run([sys.executable, "-c", HOLD, str(folder), "0"],
                                capture_output=True, text=True, timeout=60)
        assert second.stdout.startswith("another training run"), second
        assert f"is using {folder}; wait for it to finish or choose another folder" in \
            second.stdout
    finally:
        first.kill()
        first.wait()
    # Once the first is gone (the OS drops its lock), the folder is free again.
    third = subprocess.run([sys.executable, "-c", HOLD, str(folder), "0"], capture_output=True,
                           text=True, timeout=60)
    assert third.stdout.strip() == "held", third


def test_a_second_training_run_names_the_first(songs_file, tmp_path):
    folder = tmp_path / "run"
    hold = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from songgen.run.folder import RunFolder
        with RunFolder(sys.argv[1]).lock():
            print("held", flush=True)
            time.sleep(60)
    """), str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert hold.stdout.readline().strip() == "held"
        result = CliRunner().invoke(cli, ["train", str(songs_file), "--steps", "1",
                                          "--checkpoint-dir", str(folder), "--device", "cpu"])
        assert result.exit_code == 1
        assert result.stderr.strip() == (f"Error: another training run (pid {hold.pid}) is using "
                                         f"{folder}; wait for it to finish or choose another "
                                         "folder")
        assert (folder / ".lock").read_text() == f"pid {hold.pid}"  # kept for the studio
    finally:
        hold.kill()
        hold.wait()
    # The OS dropped the killed process's lock: a run may start.
    done = CliRunner().invoke(cli, ["train", str(songs_file), "--steps", "2", "--seq-len", "16",
                                    "--batch-size", "4", "--hidden-size", "16",
                                    "--checkpoint-dir", str(folder), "--device", "cpu", "-q"])
    assert done.exit_code == 0, done.output


def test_the_package_asks_for_safe_versions():
    """torch 2.6 is the first whose torch.load(weights_only=True) a crafted file cannot make
    run code (CVE-2025-32434); songgen loads every checkpoint with it. filelock holds the
    run-folder lock on every OS."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    wanted = {d.split(">=")[0]: d.split(">=")[1] for d in project["project"]["dependencies"]}
    assert tuple(int(p) for p in wanted["torch"].split(".")) >= (2, 6)
    assert "filelock" in wanted


# -- a run owns its folder (#38): it writes into a new or its own folder, deletes only its own
# files, and never follows a link or waits on a pipe there ----------------------------------

def _train_cli(songs_file, folder, *more):
    return CliRunner().invoke(cli, ["train", str(songs_file), "--steps", "10", "--seq-len", "16",
                                    "--batch-size", "4", "--hidden-size", "16",
                                    "--eval-every", "5", "--checkpoint-dir", str(folder),
                                    "--device", "cpu", "-q", *more])


def test_a_new_run_refuses_a_folder_holding_someone_else_s_files(songs_file, tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    theirs = {f"step-00000000{i}.pt": f"someone's {i}".encode() for i in (1, 2, 3)}
    theirs["metrics.jsonl"] = b'{"step": 1, "val_loss": 1.0}\n'
    for name, data in theirs.items():
        (folder / name).write_bytes(data)
    result = _train_cli(songs_file, folder, "--keep-last", "2")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: {folder} is not empty (it holds metrics.jsonl, step-000000001.pt, "
        "step-000000002.pt, ...); a new run writes only into a new or empty folder: choose "
        "another checkpoint folder")
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name != ".lock"} == theirs


def test_rotation_deletes_only_the_run_s_own_checkpoints(songs_file, tmp_path):
    from songgen.run import checkpoint as ckpt
    from songgen.run.folder import numbered

    other, folder = tmp_path / "other", tmp_path / "run"
    assert _train_cli(songs_file, other, "--keep-last", "5").exit_code == 0
    assert _train_cli(songs_file, folder, "--keep-last", "2").exit_code == 0
    # Another run's checkpoints, renamed into this run's folder with later step numbers.
    for step in (800, 900):
        (folder / f"step-000000{step}.pt").write_bytes((other / "last.pt").read_bytes())
    foreign = {p.name: p.read_bytes() for p in folder.glob("step-0000008*.pt")}
    foreign.update({p.name: p.read_bytes() for p in folder.glob("step-0000009*.pt")})
    result = _train_cli(songs_file, folder, "--keep-last", "2", "--resume", "--steps", "20")
    assert result.exit_code == 0, result.output
    assert [s for s, _ in numbered(folder)] == [15, 20, 800, 900]
    assert {name: (folder / name).read_bytes() for name in foreign} == foreign
    own = {ckpt.load(p).run_id for s, p in numbered(folder) if s < 800}
    assert len(own) == 1 and own != {ckpt.load(other / "last.pt").run_id}


def test_a_metrics_file_that_is_a_link_is_not_written_through(songs_file, tmp_path):
    folder = tmp_path / "run"
    assert _train_cli(songs_file, folder, "--steps", "5").exit_code == 0
    target = tmp_path / "elsewhere.txt"
    target.write_text("not the run's\n")
    (folder / "metrics.jsonl").unlink()
    (folder / "metrics.jsonl").symlink_to(target)
    result = _train_cli(songs_file, folder, "--resume")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: metrics.jsonl could not be written in {folder}: it is a symbolic link, not a "
        "regular file, last.pt (step 5) is intact; fix the folder, then resume the run")
    assert target.read_text() == "not the run's\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_as_the_lock_file_is_an_error_at_once(songs_file, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    os.mkfifo(folder / ".lock")
    result = subprocess.run([sys.executable, "-m", "songgen", "train", str(songs_file),
                             "--steps", "1", "--checkpoint-dir", str(folder), "--device", "cpu"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: its lock file could not be made in {folder}: it is not a regular file (a named "
        "pipe, a device, a socket or a folder), no checkpoint of this run is saved yet; fix the "
        "folder, then start the run again")
