"""SIGKILL at any instant, then --resume: the run still ends bit-identical to an uninterrupted one.

A real `songgen train` subprocess is killed with SIGKILL again and again, at planned moments:
between two saves, in the middle of writing last.pt (temp file half written, or fully written
but not yet renamed), in the middle of copying it to step-N.pt, and right after its rename. After each
kill the folder must hold a loadable last.pt (or none at all, before the first save ever
finished) and nothing torn under a name that resume reads. Each next start resumes exactly
where last.pt says, and the final weights equal those of a run that was never killed.

The moments are not left to the scheduler: a small wrapper, installed from outside the product
code, makes the child print a marker and stop dead at the planned point, and only then does the
parent send SIGKILL. So each kill lands where the plan says, and the markers prove it.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from songgen.run import checkpoint as ckpt
from songgen.run.folder import numbered_path
from songgen.errors import CheckpointError

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL") or sys.platform == "win32",
                                reason="needs POSIX signals (SIGKILL)")

TINY = ["--embed-dim", "8", "--hidden-size", "16", "--layers", "1", "--seq-len", "16",
        "--batch-size", "4", "--device", "cpu", "-q"]
STEPS = 100       # the whole run
EVAL_EVERY = 5    # a checkpoint save every 5 steps
WAIT = 90         # seconds: the longest any single wait may take, so the test never hangs

# Runs `songgen train ...` with fault-injection hooks. The plan comes in SONGGEN_KILLTEST (JSON):
#   {"phase": "step",    "at": S}   stop after training step S (between saves when S % 5 != 0)
#   {"phase": "write",   "nth": K}  K-th save of this process: half of the checkpoint's bytes
#                                   are in the temp file, the rest not yet written
#   {"phase": "fsync",   "nth": K}  K-th save: temp file fully written, fsync called, not renamed
#   {"phase": "renamed", "nth": K}  K-th save: temp file renamed over last.pt (its copies, made
#                                   first, are in place)
#   {"phase": "link",    "nth": K}  K-th save: step-N.pt copy made under its temp name, not
#                                   renamed (last.pt is still the previous save's)
#   {"phase": "random",  "sleep": T} no stop; sleep T s after each step; say when step 1 is done
# At a stop it prints "PAUSE <phase> step=<step being saved or trained> <detail>" on stderr and
# sleeps until the parent's SIGKILL arrives.
WRAPPER = r'''
import io, json, os, stat, sys, time
plan = json.loads(os.environ.get("SONGGEN_KILLTEST") or "{}")
import torch
import songgen.files as atomicfile
import songgen.run.folder as rd
import songgen.training.loop as tr
from songgen.cli.commands import cli

# One thread in every run, the reference included: same arithmetic in all of them, and no
# OpenMP spinning against other processes on a busy 2-core machine.
torch.set_num_threads(1)
phase = plan.get("phase")
now = {"saves": 0, "step": None, "fired": False, "linked": 0, "tmp": None}

def say(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()

real_mkstemp = atomicfile.tempfile.mkstemp
def mkstemp(*args, **kwargs):
    fd, path = real_mkstemp(*args, **kwargs)
    now["tmp"] = path  # the temp file checkpoint.save is writing
    return fd, path
atomicfile.tempfile.mkstemp = mkstemp

def pause(name, detail=""):
    now["fired"] = True
    say(f"PAUSE {name} step={now['step']} {detail}".rstrip())
    time.sleep(120)
    os._exit(97)  # the parent should have killed us long before

def armed(name):
    return phase == name and not now["fired"] and now["saves"] == plan.get("nth")

real_run = tr.Run.loop
def run(self):
    say(f"RUN-START step={self.step}")
    return real_run(self)
tr.Run.loop = run

real_step = tr.Run._train_step
def train_step(self):
    loss = real_step(self)
    now["step"] = self.step
    if phase == "random":
        if not now["fired"]:
            now["fired"] = True
            say(f"FIRST-STEP step={self.step}")
        time.sleep(plan["sleep"])
    elif phase == "step" and self.step == plan["at"]:
        pause("step")
    return loss
tr.Run._train_step = train_step

real_folder_save = rd.RunFolder.save
def folder_save(self, checkpoint, best, keep):
    now["saves"] += 1
    now["step"] = checkpoint.step
    now["linked"] = 0
    return real_folder_save(self, checkpoint, best, keep)
rd.RunFolder.save = folder_save

real_torch_save = torch.save
def torch_save(obj, f, *args, **kwargs):
    if armed("write"):
        buf = io.BytesIO()
        real_torch_save(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        pause("write", f"{len(data) // 2}/{len(data)} bytes in {now['tmp']}")
    return real_torch_save(obj, f, *args, **kwargs)
torch.save = torch_save

real_fsync = os.fsync
def fsync(fd):
    result = real_fsync(fd)
    if armed("fsync") and stat.S_ISREG(os.fstat(fd).st_mode):
        pause("fsync", now["tmp"])
    return result
os.fsync = fsync

real_replace = os.replace
def replace(src, dst, *args, **kwargs):
    s = os.fspath(src)
    if s.endswith(".copy"):
        now["linked"] += 1
        if armed("link") and now["linked"] == 1:
            pause("link", f"{s} -> {os.fspath(dst)}")
    result = real_replace(src, dst, *args, **kwargs)
    if s.endswith(".tmp") and armed("renamed"):
        pause("renamed", f"{s} -> {os.fspath(dst)}")
    return result
os.replace = replace

cli(args=sys.argv[1:], prog_name="songgen")
'''


class Child:
    """One `songgen train` subprocess whose stderr is read line by line in a thread."""

    def __init__(self, args: list[str], plan: dict, cwd: Path):
        env = dict(os.environ, SONGGEN_KILLTEST=json.dumps(plan), PYTHONUNBUFFERED="1")
        self.args, self.plan = args, plan
        self.proc = subprocess.Popen([sys.executable, "-c", WRAPPER, *args], cwd=cwd, env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.queue: queue.Queue = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def stderr(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, prefix: str) -> str:
        deadline = time.monotonic() + WAIT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                pytest.fail(f"no {prefix!r} line within {WAIT}s; plan {self.plan}; "
                            f"stderr:\n{self.stderr()}")
            try:
                line = self.queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=WAIT)
                pytest.fail(f"the process ended (exit {self.proc.returncode}) before printing "
                            f"{prefix!r}; plan {self.plan}; stderr:\n{self.stderr()}")
            if line.startswith(prefix):
                return line

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=WAIT)
        self.reader.join(timeout=WAIT)
        self.proc.stdout.close()
        self.proc.stderr.close()

    def finish(self) -> int:
        try:
            self.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"training did not finish within {WAIT}s; stderr:\n{self.stderr()}")
        self.reader.join(timeout=WAIT)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode


@pytest.fixture
def spawn(tmp_path):
    """Start Child processes; any still alive when the test ends (a failed assertion) is killed."""
    children: list[Child] = []

    def start(args: list[str], plan: dict) -> Child:
        children.append(Child(args, plan, tmp_path))
        return children[-1]

    yield start
    for child in children:
        if child.proc.poll() is None:
            child.kill()


def field(line: str, name: str) -> int:
    for word in line.split():
        if word.startswith(name + "="):
            return int(word.split("=", 1)[1])
    raise AssertionError(f"no {name}= in {line!r}")


def last_step(folder: Path) -> int | None:
    """Step of last.pt, loaded the safe way; None when there is no last.pt yet."""
    if not (folder / "last.pt").exists():
        return None
    return ckpt.load(folder / "last.pt").step


def temp_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(".")
                  and (p.name.endswith(".tmp") or p.name.endswith(".copy")))


def assert_nothing_torn(folder: Path) -> None:
    """Every checkpoint a run or resume could read (last, best, step-N) loads safely."""
    for p in sorted(folder.glob("*.pt")):
        ckpt.load(p)  # raises CheckpointError on a torn or foreign file


def assert_equal(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        if not torch.equal(a, b):
            diff = (a.double() - b.double()).abs().max().item() if a.is_floating_point() else "?"
            pytest.fail(f"{where} differs from the uninterrupted run (max |diff| {diff})")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            assert_equal(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.mark.slow
def test_sigkill_at_any_moment_then_resume_is_bit_identical(songs_file, tmp_path, spawn):
    rng = random.Random(20261126)  # fixed: the same kill plan every time

    def args(folder: Path, resume: bool) -> list[str]:
        return ["train", str(songs_file), *TINY, "--steps", str(STEPS), "--eval-every",
                str(EVAL_EVERY), "--checkpoint-dir", str(folder)] + (["--resume"] if resume else [])

    # (1) The reference: one uninterrupted run (same wrapper, no plan).
    straight = tmp_path / "straight"
    child = spawn(args(straight, False), {})
    assert child.finish() == 0, child.stderr()
    assert last_step(straight) == STEPS

    # (2) The same run, killed again and again. Each plan entry is one process; the first
    # three start fresh (no finished save yet, or the first save torn), the rest resume.
    def step_between_saves(after: int) -> int:
        return rng.choice([s for s in range(after + 1, after + 15) if s % EVAL_EVERY])

    plans = [
        lambda L: {"phase": "step", "at": rng.randint(1, EVAL_EVERY - 1)},  # before any save
        lambda L: {"phase": "write", "nth": 1},   # the very first save torn: no last.pt at all
        lambda L: {"phase": "fsync", "nth": rng.randint(2, 3)},
        lambda L: {"phase": "step", "at": step_between_saves(L)},
        lambda L: {"phase": "renamed", "nth": rng.randint(1, 3)},
        lambda L: {"phase": "link", "nth": rng.randint(1, 2)},
        lambda L: {"phase": "fsync", "nth": 1},   # first save after a resume
        lambda L: {"phase": "write", "nth": rng.randint(2, 3)},
        lambda L: {"phase": "random", "sleep": 0.02, "delay": round(rng.uniform(0.05, 0.5), 3)},
        lambda L: {"phase": "step", "at": step_between_saves(L)},
    ]
    killed = tmp_path / "killed"
    kills: list[dict] = []  # what happened at each kill: the evidence for the coverage checks
    resumed_with_temp_files = 0
    for make_plan in plans:
        before = last_step(killed) if killed.exists() else None
        plan = make_plan(before or 0)
        resume = before is not None
        if resume and temp_files(killed):
            resumed_with_temp_files += 1
        child = spawn(args(killed, resume), plan)
        start = child.wait_for("RUN-START")
        # --resume continues exactly from last.pt; a fresh start begins at step 0.
        assert field(start, "step") == (before or 0), (start, before, child.stderr())

        if plan["phase"] == "random":
            child.wait_for("FIRST-STEP")
            time.sleep(plan["delay"])
            assert child.proc.poll() is None, f"finished before the kill:\n{child.stderr()}"
            marker = f"random-time +{plan['delay']}s"
            at = None
        else:
            marker = child.wait_for("PAUSE ")
            at = field(marker, "step")
        child.kill()
        assert child.proc.returncode == -signal.SIGKILL, child.stderr()
        # No resume fell back to an older checkpoint, warned or failed: only our markers.
        assert all(line.startswith(("RUN-START", "FIRST-STEP", "PAUSE")) for line in child.lines), \
            child.stderr()

        after = last_step(killed)  # loads last.pt with weights_only=True (or None: not there)
        assert_nothing_torn(killed)
        base = before or 0
        phase = plan["phase"]
        if phase == "step":
            assert at == plan["at"] and at % EVAL_EVERY
            expected = at // EVAL_EVERY * EVAL_EVERY or None
            assert after == expected, (plan, before, after)
        elif phase in ("write", "fsync", "renamed", "link"):
            # The process stopped inside its nth save, which is for step base + 5 * nth.
            assert at == base + EVAL_EVERY * plan["nth"], (plan, marker)
            temp = Path(marker.split()[-1]) if phase in ("write", "fsync") else None
            if phase in ("write", "fsync"):
                # Mid-write: the new checkpoint is (part of) a temp file; last.pt is the
                # previous one, or there is none when this was the run's first save.
                assert temp.name.startswith(".last.pt.") and temp.name.endswith(".tmp"), marker
                assert temp.exists() and temp.stat().st_size > 0, marker
                assert after == ((at - EVAL_EVERY) or None), (plan, before, after)
                if phase == "write":
                    with pytest.raises(CheckpointError):  # really torn: half of the bytes
                        ckpt.load(temp)
                else:
                    assert ckpt.load(temp).step == at  # complete, just not renamed yet
            elif phase == "link":
                # During the copies, made before last.pt is renamed: last.pt is the previous
                # one, and the step's copy is still under its temp name.
                assert after == ((at - EVAL_EVERY) or None), (plan, before, after)
                assert not numbered_path(killed, at).exists()
                assert list(killed.glob(f".{numbered_path(killed, at).name}.*.copy"))
            else:
                # After the rename of last.pt, the save's final act: its copies are all there.
                assert after == at, (plan, before, after)
                assert ckpt.load(numbered_path(killed, at)).step == at
        else:
            assert after is not None and after >= base and after % EVAL_EVERY == 0
            assert after < STEPS
        kills.append({"phase": phase, "plan": plan, "marker": marker, "last_before": before,
                      "last_after": after})

    summary = "\n".join(f"  {k['phase']:8} {k['marker']!s:60.60} last.pt: {k['last_before']}"
                        f" -> {k['last_after']}" for k in kills)
    # The coverage that makes passing by luck impossible.
    phases = [k["phase"] for k in kills]
    assert len(kills) >= 5, summary
    assert sum(p in ("write", "fsync") for p in phases) >= 2, summary
    assert phases.count("step") >= 2 and "random" in phases, summary
    assert "renamed" in phases and "link" in phases, summary
    assert resumed_with_temp_files >= 2, summary  # stray temp files never bothered a resume
    assert temp_files(killed), summary  # (they may stay; resume ignores them)

    # (3) One last --resume without a kill, to the end.
    before = last_step(killed)
    child = spawn(args(killed, True), {})
    start = child.wait_for("RUN-START")
    assert field(start, "step") == before
    assert child.finish() == 0, child.stderr()
    # -q: nothing but the result line (and the test's own marker).
    assert [line for line in child.lines if not line.startswith("done in ")] == [start], \
        child.stderr()
    assert_nothing_torn(killed)
    print(f"{len(kills)} kills:\n{summary}\nfinal resume from step {before}")

    # (4) Bit-identical to the uninterrupted run.
    a = ckpt.load(straight / "last.pt").to_dict()
    b = ckpt.load(killed / "last.pt").to_dict()
    assert a["step"] == b["step"] == STEPS
    for key in ("model_state", "optimizer_state", "epoch", "position", "stream_state", "rng",
                "best_val_loss", "bad_evals"):
        assert_equal(a[key], b[key], key)
    assert len(a["history"]) == len(b["history"]) == STEPS // EVAL_EVERY
    for x, y in zip(a["history"], b["history"]):
        assert (x["step"], x["train_loss"], x["val_loss"]) == \
               (y["step"], y["train_loss"], y["val_loss"])
    assert_equal(ckpt.load(straight / "best.pt").model_state,
                 ckpt.load(killed / "best.pt").model_state, "best.pt")
