"""The thread count changes no bit of a run (#32): where this CPU's step computes the same bits
at every count, the count follows the free cores; where it does not, the run keeps one count,
recorded in the checkpoint for its resumes.

Stand-ins for CPUs whose kernels split sums by thread count, run in a fresh process (both are
read when the library first runs): ONEDNN_MAX_CPU_ISA=AVX2 (oneDNN's LSTM as on AMD CPUs
before Zen 4, on any CPU with AVX2) and MKL_CBWR=COMPATIBLE (MKL outside its reproducible
mode). On this test's shapes (a 32-unit LSTM, a batch of 32 x 64) each made a step at 2
threads differ from one at 1 in every weight tensor, on AMD Zen 5 CPUs that compute the same
bits at both counts without them.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from songgen.model import devices

from songgen.training import loop as training
from songgen.config import TrainConfig
from songgen.training.threadcount import decide_threads
from songgen.training.loop import train

MODEL = {"embed_dim": 8, "hidden_size": 32, "layers": 2, "dropout": 0.1}
KEPT = "kept for the whole run: on this CPU its step computes other bits at 1 thread than at 2"
BUSY = ("threads: 2, " + KEPT + "; other programs keep 1 of 2 cores busy now, so steps may be "
        "much slower (--threads 1 is faster but computes differently from here on)")
TUNED = {"value": "tuned", "reason": "the cores free, changed while training: on this CPU the "
                                     "run's step computes the same bits at 1 to 2 threads"}


def scenario(songs: str, folder: str) -> dict:
    """On a machine of 2 cores: a run alone; the same run stopped at step 2 and resumed
    beside a busy process (1 core free); the same run with the thread count changed at every
    step where the run lets it change; and the run on 1 thread. What each computed, and what
    the resume said about threads."""
    import contextlib
    import io

    cores = {"free": 2}

    def flip(self, seconds):
        torch.set_num_threads(1 if torch.get_num_threads() > 1 else 2)

    def run(name, steps, threads=None, resume=False):
        config = TrainConfig(steps=steps, batch_size=32, seq_len=64, threads=threads,
                             precision="fp32", device="cpu", eval_every=3, patience=0,
                             checkpoint_dir=str(Path(folder) / name))
        said = io.StringIO()
        with contextlib.redirect_stderr(said):
            train(songs, model=MODEL, config=config, resume=resume)
        state = torch.load(Path(folder) / name / "last.pt", weights_only=True)
        return state, [line for line in said.getvalue().splitlines()
                       if line.startswith("threads")]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "cpu_cores", lambda: 2)
        patch.setattr(training, "free_cores", lambda: cores["free"])
        alone, _ = run("alone", 6)
        run("busy", 2)
        cores["free"] = 1
        busy, busy_said = run("busy", 6, resume=True)
        cores["free"] = 2
        one, _ = run("one", 6, threads=1)
        patch.setattr(devices.ThreadTuner, "step_took", flip)
        flipped, _ = run("flipped", 6)

    def same(a, b):
        return all(torch.equal(b["model_state"][k], v) for k, v in a["model_state"].items())

    return {"busy equals alone": same(alone, busy), "flipped equals alone": same(alone, flipped),
            "one thread equals alone": same(alone, one),
            "choice": alone["choices"].get("threads"),
            "busy choice": busy["choices"].get("threads"),
            "flipped threads": sorted({h["threads"] for h in flipped["history"]}),
            "busy said": busy_said}


def check(found: dict) -> None:
    """What every CPU must give: the run alone, resumed beside a busy process, and with its
    thread count changed where it may change, compute the same bits; the count is kept where
    it matters and tuned only where it does not."""
    assert found["busy equals alone"]
    assert found["flipped equals alone"]
    if found["choice"] == TUNED:  # the probe found no bit changed: the count did change
        assert found["flipped threads"] == [1, 2]
        assert found["one thread equals alone"]
        assert found["busy said"] == [
            "threads: 1 (1 of 2 cores free; fewer if another process takes one while training)"]
    else:
        assert found["choice"] == found["busy choice"] == {"value": 2, "reason": KEPT,
                                                           "kept": True}
        assert found["flipped threads"] == [2]
        assert not found["one thread equals alone"]  # the probe was right to keep it
        assert found["busy said"] == [BUSY]


def test_thread_changes_in_the_middle_of_a_run_change_no_bit(songs_file, tmp_path):
    """On this CPU as it is: whichever way its kernels go."""
    check(scenario(str(songs_file), str(tmp_path)))


def _in_a_fresh_process(songs_file, tmp_path, **env) -> dict:
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import test_threads; "
            "print(json.dumps(test_threads.scenario(sys.argv[2], sys.argv[3])))")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent),
                          str(songs_file), str(tmp_path)], capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("env", [{"ONEDNN_MAX_CPU_ISA": "AVX2"}, {"MKL_CBWR": "COMPATIBLE"}],
                         ids=["onednn-avx2", "mkl-compatible"])
def test_a_cpu_whose_step_depends_on_the_thread_count_keeps_one_count(songs_file, tmp_path, env):
    """Before #32 the runs differed here: the thread tuner changed the count, and a resume
    beside a busy process started on fewer threads."""
    check(_in_a_fresh_process(songs_file, tmp_path, **env))


# -- the decision, alone ---------------------------------------------------------------------

def never(counts):
    raise AssertionError("the probe was not expected to run")


def test_a_count_asked_for_is_used_and_not_probed():
    threads = decide_threads(3, None, 0, 8, 8, never)
    assert (threads.count, threads.tune, threads.record, threads.line) == (
        3, False, {"value": 3, "reason": "as asked"}, "threads: 3, as asked")


def test_a_kept_count_changed_on_resume_says_so():
    kept = {"value": 4, "reason": KEPT, "kept": True}
    threads = decide_threads(2, kept, 1200, 8, 8, never)
    assert threads.count == 2 and not threads.tune
    assert threads.record == {"value": 2, "reason": "as asked on resuming at step 1,200 (was 4)",
                              "kept": True}
    assert threads.line == ("threads changed on resume: 4 -> 2, as asked; on this CPU the "
                            "thread count changes the numbers, so the run computes "
                            "differently from here on")
    # and the next resume keeps the new count
    again = decide_threads(None, threads.record, 1300, 8, 8, never)
    assert (again.count, again.tune) == (2, False)


def test_a_count_asked_for_earlier_is_the_one_kept_where_the_count_matters():
    asked = {"value": 3, "reason": "as asked"}
    probed = []
    threads = decide_threads(None, asked, 50, 8, 6,
                             lambda counts: probed.append(counts) or (1, 3))
    assert probed == [[1, 3, 6, 8]]
    assert (threads.count, threads.tune) == (3, False)
    assert threads.line == ("threads: 3 (6 of 8 cores free), kept for the whole run: on this "
                            "CPU its step computes other bits at 1 thread than at 3")


def test_one_core_needs_no_probe():
    threads = decide_threads(None, None, 0, 1, 1, never)
    assert (threads.count, threads.tune, threads.line) == (
        1, False, "threads: 1 (the one core this process may use)")


def test_threads_help_says_what_each_command_does():
    """sample and explain said that "a training run then keeps the count that runs fastest",
    and train did not say that a run may keep one count for its resumes."""
    from songgen.cli.commands import cli

    def help_of(command):
        option = next(p for p in cli.commands[command].params if p.name == "threads")
        return option.help

    assert help_of("sample") == help_of("explain") == (
        "CPU threads [default: the cores free at the start].")
    assert help_of("train") == (
        "CPU threads [default: the cores free at the start, then those free while training; on "
        "a CPU where the count changes the run's numbers, the count it started with, for its "
        "resumes too].")
