"""Issue #36, the first hour, third pass: eval's lines and checkpoint, info's learning rate,
rhyme patterns, songs and file, the fine-tuning and schedule header lines, the plot's time
ticks, the install command and the test tier's time (what is not lyrics: test_not_lyrics.py;
the studio's HTTP API: test_studio_docs.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from songgen.run import checkpoint as ckpt
from songgen.cli.commands import cli

from .conftest import make_songs

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--embed-dim", "8", "--hidden-size", "16", "--layers", "1", "--device", "cpu",
        "--seq-len", "16", "--batch-size", "4", "-q"]


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return lambda *args: CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def trained(run, tmp_path):
    (tmp_path / "songs.txt").write_text(make_songs(), encoding="utf-8")
    result = run("train", "songs.txt", *TINY, "--steps", 10, "--eval-every", 5,
                 "--dropout", 0, "--lr", 0.006)
    assert result.exit_code == 0, result.output
    return tmp_path / "checkpoints"


# -- 3. eval: what each line is, and which checkpoint ---------------------------------------

def test_eval_says_which_checkpoint_and_takes_it_as_an_argument(run, trained):
    result = run("eval", "songs.txt", "checkpoints", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"\d\.\d{4} nats/char  \d\.\d{4} bits/char  \([\d,]+ characters; "
                        r"checkpoint checkpoints/best\.pt, step 10\)\n", result.stdout), \
        result.stdout
    assert run("eval", "songs.txt", "--checkpoint", "checkpoints", "--device", "cpu").stdout \
        == result.stdout
    two = run("eval", "songs.txt", "checkpoints", "--checkpoint", "other")
    assert two.exit_code == 2
    assert two.stderr.splitlines()[-1] == ("Error: two checkpoints given: checkpoints and "
                                           "--checkpoint other; give one")


def test_eval_of_a_styled_folder_labels_the_mix_and_each_style(run, tmp_path):
    for i, name in enumerate(("cowboy", "burns")):
        (tmp_path / "lyrics" / name).mkdir(parents=True)
        (tmp_path / "lyrics" / name / "songs.txt").write_text(make_songs(20, seed=i))
    assert run("train", "lyrics", *TINY, "--steps", 10, "--eval-every", 5).exit_code == 0
    lines = run("eval", "lyrics", "--device", "cpu").stdout.splitlines()
    assert re.fullmatch(r"\d\.\d{4} nats/char  \d\.\d{4} bits/char  \([\d,]+ characters, every "
                        r"song read with no style: the mix of all; checkpoint "
                        r"checkpoints/best\.pt, step 10\)", lines[0]), lines[0]
    assert [re.sub(r"^\d\.\d{4} nats/char  \d\.\d{4} bits/char  ", "", line)
            for line in lines[1:]] == ["style burns (its songs, read in that style)",
                                       "style cowboy (its songs, read in that style)"]


# -- 4. info: the learning rate now, rhyming patterns, the songs, the file -------------------

def test_info_shows_the_learning_rate_the_schedule_left_and_the_start(run, trained):
    saved = ckpt.load(trained / "best.pt")
    saved.history[-1]["lr"] = 0.00075  # where the schedule had lowered it
    ckpt.save(saved, trained / "best.pt")
    shown = run("info", "checkpoints").stdout
    assert "lr 0.00075 now (the schedule's; it started at 0.006)" in shown
    plain = run("info", "checkpoints/last.pt").stdout
    assert re.search(r"batch 4 x seq 16, lr 0.006\n", plain), plain


def test_info_names_only_rhyming_patterns_and_the_training_songs(run, trained, tmp_path):
    saved = ckpt.load(trained / "best.pt")
    saved.songcraft["patterns"] = {"XXXX": 50, "AABB": 30, "XX": 10, "ABAB": 10}
    ckpt.save(saved, trained / "best.pt")
    line = next(l for l in run("info", "checkpoints").stdout.splitlines()
                if l.startswith("songcraft"))
    songs = saved.songcraft["songs"]
    stanzas = saved.songcraft["stanzas"]
    assert line.startswith(f"songcraft    in the {songs:,} songs of the training part (the "
                           f"validation songs are not measured): ")
    assert f"of {stanzas:,} stanzas rhyme (AABB {30 / stanzas:.0%}, ABAB {10 / stanzas:.0%});" \
        in line and "XX" not in line
    header = run("train", "songs.txt", "--checkpoint-dir", "again", *TINY[:-1], "--steps", 1)
    split = re.search(r"validation [\d,]+ characters \(([\d,]+) / ([\d,]+) songs\)",
                      header.stderr)
    assert int(split.group(1)) == songs and int(split.group(1)) + int(split.group(2)) == 40


def test_info_of_a_run_details_the_checkpoint_sample_uses(run, trained):
    shutil.copy(trained / "step-000000005.pt", trained / "best.pt")  # best at step 5
    lines = run("info", "checkpoints").stdout.splitlines()
    assert lines[0].startswith("run          checkpoints: latest step 10, best at step 5 (")
    assert lines[1] == ("checkpoint   checkpoints/best.pt (the one sample and eval use for "
                        "the run; below, what it holds)")
    assert re.search(r"^training     step 5,", "\n".join(lines), re.M)


# -- 5, 6. the header's fine-tuning and schedule lines --------------------------------------

def test_fine_tuning_says_the_size_and_dropout_it_keeps(run, trained):
    result = run("train", "songs.txt", "--init-from", "checkpoints", "--checkpoint-dir", "ft",
                 "--device", "cpu", "--seq-len", 16, "--batch-size", 4, "--steps", 1)
    assert result.exit_code == 0, result.output
    assert (f"fine-tuning from {Path('checkpoints', 'best.pt')} (step 10), keeping its size "
            "(1x16 LSTM, embedding 8) and dropout 0.0; 0 new characters added to its "
            "vocabulary\n") in result.stderr


def test_the_schedule_line_names_a_step_limit(run, tmp_path):
    (tmp_path / "songs.txt").write_text(make_songs(), encoding="utf-8")
    result = run("train", "songs.txt", *TINY[:-1], "--steps", 3)
    assert ("learning-rate schedule plateau: no time limit (auto falls only over a time limit, "
            "not over the 3-step limit, which a resume often raises; the budget schedule falls "
            "over steps too): halved after 2 evaluations without improvement, down to 1/8; "
            "stopping after 5 evaluations without improvement at the lowest\n") in result.stderr


# -- 8. the plot's time axis ------------------------------------------------------------------

@pytest.mark.parametrize("longest, ticks", [
    (100, ["0s", "20s", "40s", "60s", "80s", "100s"]),
    (200, ["0m", "1m", "2m", "3m", "4m"]),
    (1000, ["0m", "5m", "10m", "15m", "20m"]),
    (9000, ["0h", "0.5h", "1h", "1.5h", "2h", "2.5h"])])
def test_time_ticks_are_round_in_their_unit(longest, ticks):
    from songgen.run.curves import _fmt_time, time_ticks

    found, unit, mark = time_ticks(longest)
    assert [_fmt_time(t, unit, mark) for t in found] == ticks


def test_the_plot_of_a_few_minutes_has_round_minute_ticks():
    from songgen.run.curves import curves_svg

    records = [{"step": s, "elapsed": s * 20.0, "val_loss": 2.0, "train_loss": 2.1}
               for s in (5, 10)]
    svg = curves_svg([("run", records)])
    assert ">1m</text>" in svg and ">3m</text>" in svg and "1.66667m" not in svg


# -- 2, 11. the install command, the everyday tier's time ------------------------------------

def _choice(path: str) -> str:
    """What the README's first command adds to `pip install torch==2.13.0` with this PATH."""
    line = next(l for l in (ROOT / "README.md").read_text().splitlines()
                if l.startswith("python3 -m venv"))
    choice = re.search(r" && pip install torch==2\.13\.0 (\$\(.*\)) && pip install -e \. ",
                       line).group(1)
    return subprocess.run([shutil.which("bash"), "-c", f"echo {choice}"],
                          env={"PATH": path}, capture_output=True, text=True).stdout.strip()


@pytest.mark.skipif(shutil.which("uname") is None or subprocess.run(
    ["uname"], capture_output=True, text=True).stdout.strip() != "Linux", reason="Linux only")
def test_the_first_command_takes_the_cpu_build_without_an_nvidia_gpu(tmp_path):
    bins = tmp_path / "bin"
    bins.mkdir()
    (bins / "uname").symlink_to(shutil.which("uname"))
    assert _choice(str(bins)) == "--index-url https://download.pytorch.org/whl/cpu"
    (bins / "nvidia-smi").write_text("#!/bin/sh\n")
    (bins / "nvidia-smi").chmod(0o755)
    assert _choice(str(bins)) == ""  # PyPI's own build: CUDA on Linux
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pip install --quiet torch==2.13.0\n" in ci  # CI has no PyTorch index


def test_the_everyday_tier_takes_the_same_time_everywhere():
    said = "about two minutes on 2 CPU cores"
    assert said in (ROOT / "README.md").read_text()
    assert said in " ".join(l.lstrip("# ") for l in
                            (ROOT / "pyproject.toml").read_text().splitlines())
