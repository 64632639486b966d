"""Training with torchrun on two CPU processes (gloo), as a user launches it."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from .torchrun_support import (TINY, assert_same_weights, load, needs_gloo, single, torchrun,
                               two_and_one)

pytestmark = [pytest.mark.slow, needs_gloo]  # torchrun processes


def test_two_processes_train_like_one_process_with_the_same_batch(songs_file, tmp_path):
    options = [str(songs_file), *TINY, "--batch-size", "8", "--dropout", "0", "--steps", "12"]
    two, one = two_and_one(options, tmp_path)
    assert two["step"] == one["step"] == 12 and two["position"] == one["position"]
    assert_same_weights(two, one)
    # The carried LSTM state of all 8 rows is gathered into the one checkpoint.
    for a, b in zip(two["stream_state"], one["stream_state"]):
        assert a.shape == b.shape == (2, 8, 16)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert two["best_val_loss"] == pytest.approx(one["best_val_loss"], rel=1e-5)
    # Only process 0 writes: one metrics line per evaluation, not two.
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 3


def test_distributed_resume_is_bit_identical(songs_file, tmp_path):
    options = [str(songs_file), *TINY, "--batch-size", "8", "--dropout", "0.2"]
    straight = torchrun(*options, "--steps", "17", "--checkpoint-dir", str(tmp_path / "a"))
    assert straight.returncode == 0, straight.stderr
    for stop, resume in ((7, []), (17, ["--resume"])):
        run = torchrun(*options, "--steps", str(stop), "--checkpoint-dir", str(tmp_path / "b"),
                       *resume)
        assert run.returncode == 0, run.stderr
    a, b = load(tmp_path / "a"), load(tmp_path / "b")
    assert a["step"] == b["step"] == 17
    # Both processes, the resumed ones too, took the text from one corpus cache file.
    cache = sorted(p.suffix for p in (tmp_path / "b" / "corpus-cache").iterdir())
    assert cache == [".corpus", ".lock"]
    for name, value in a["model_state"].items():
        assert torch.equal(b["model_state"][name], value), name


def test_a_bad_option_is_reported_once_by_process_0(songs_file, tmp_path):
    run = torchrun(str(songs_file), *TINY, "--batch-size", "7", "--steps", "3",
                   "--checkpoint-dir", str(tmp_path / "c"))
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: batch size 7 does not split evenly over 2 processes; "
                      "use a multiple of 2"]
    assert "[rank" not in run.stderr  # no worker traceback
    assert not (tmp_path / "c").exists()


def test_ctrl_c_saves_once_and_says_how_to_resume(songs_file, tmp_path):
    folder = tmp_path / "d"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", "-m", "songgen", "train", str(songs_file), *TINY,
               "--batch-size", "8", "--steps", "1000000", "--checkpoint-dir", str(folder)]
    # A terminal's Ctrl-C reaches the whole process group: torchrun and both workers.
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    while not (folder / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    lines = stderr.splitlines()
    assert sum("SIGINT received: training stopped at step" in line for line in lines) == 1
    resume = [line for line in lines if line.startswith("To continue: ")]
    assert len(resume) == 1 and "torchrun --standalone --nproc-per-node 2 -m songgen" in resume[0]
    assert resume[0].endswith("--resume")
    saved = load(folder)
    assert saved["step"] > 0 and len(saved["rng"]["ranks"]) == 2


@pytest.mark.slow
def test_two_processes_in_auto_precision_train_as_well_as_one(songs_file, tmp_path):
    """In bf16 each process's partial gradient is rounded before the sum, so bit equality is
    not the promise there: a run that trains as well is. The run resumed on one process, on a
    CPU that stands in for one whose bf16 probe may answer otherwise, keeps the precision."""
    options = [str(songs_file), *TINY, "--precision", "auto", "--batch-size", "8",
               "--dropout", "0", "--steps", "40", "--eval-every", "20"]
    two = torchrun(*options, "--checkpoint-dir", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    a = load(tmp_path / "two")
    # On a CPU whose bf16 probe is a timing (AVX-512 BF16 without AMX) two runs may choose
    # differently; the one process trains in what the team chose, to compare like with like.
    chosen = a["choices"]["precision"]["value"]
    single_options = [*options[:options.index("auto")], chosen, *options[options.index("auto") + 1:]]
    one = single(*single_options, "--checkpoint-dir", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    b = load(tmp_path / "one")
    assert chosen in ("bf16", "fp32") and b["train_config"]["precision"] == chosen
    assert a["history"][-1]["val_loss"] == pytest.approx(b["history"][-1]["val_loss"], rel=0.01)
    resumed = subprocess.run(
        [sys.executable, "-m", "songgen", "train", "--resume", "--steps", "45", "-q",
         "--checkpoint-dir", str(tmp_path / "two")], capture_output=True, text=True,
        timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1",
                          "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"})
    assert resumed.returncode == 0, resumed.stderr
    assert load(tmp_path / "two")["choices"]["precision"] == a["choices"]["precision"]


@pytest.mark.parametrize("device, library, command_line", [
    ("mps", "train on the device cpu, or run a single process",
     "use --device cpu, or run a single process"),
    ("cuda:1", "train on the device cuda or auto, not cuda:1",
     "use --device cuda or auto, not cuda:1"),
])
def test_device_advice_names_the_option_only_on_the_command_line(device, library, command_line):
    from songgen.cli.exits import _with_flags
    from songgen.training.team import Team
    from songgen.errors import DeviceError

    with pytest.raises(DeviceError) as caught:
        Team._own_device(torch.device(device), 0)
    message = str(caught.value)
    assert message.endswith(library) and "--" not in message
    assert _with_flags(caught.value).endswith(command_line)
