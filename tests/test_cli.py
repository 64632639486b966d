import json
import re
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from songgen.cli.commands import cli

TINY = ["--embed-dim", "8", "--hidden-size", "16", "--layers", "1", "--seq-len", "16",
        "--batch-size", "4", "--device", "cpu", "-q"]


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, [str(a) for a in args])

    return invoke


def without_cut(stderr: str) -> str:
    """stderr without the lines that tell a song was cut at --length (a tiny model's songs
    often are)."""
    return "".join(line for line in stderr.splitlines(keepends=True)
                   if not re.fullmatch(r"(the song|song \d+) was cut at [\d,]+ characters; "
                                       r"raise --length\n", line))


@pytest.fixture
def trained(run, songs_file):
    result = run("train", songs_file, *TINY, "--steps", 20, "--eval-every", 10)
    assert result.exit_code == 0, result.output
    return songs_file


@pytest.mark.parametrize("command", [[], ["train"], ["sample"], ["eval"], ["info"], ["check"],
                                     ["explain"], ["plot"], ["serve"]])
def test_every_command_has_help(run, command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: ")


def test_the_command_list_names_every_command_in_one_column(run):
    """The top help's list left out plot, and explain's line pushed its words out of line."""
    lines = [line for line in run("--help").stdout.splitlines()
             if line.startswith("  songgen ") and not line.startswith("  songgen [")]
    assert sorted({line.split()[1] for line in lines}) == sorted(cli.commands)
    columns = {re.match(r"  songgen(?: \S+)+ {2,}", line).end() for line in lines}
    assert len(columns) == 1, lines  # each line's words start in one column


def test_help_does_not_import_torch():
    code = ("import sys; from click.testing import CliRunner; from songgen.cli.commands import cli; "
            "CliRunner().invoke(cli, ['train', '--help']); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_train_sample_info_eval(run, trained, tmp_path):
    assert (tmp_path / "checkpoints" / "best.pt").exists()
    song = run("sample", "--seed", 3, "--length", 80, "--prime", "# ")
    assert song.exit_code == 0, song.output
    assert song.stdout.startswith("# ") and without_cut(song.stderr) == ""
    assert song.stdout == run("sample", "--seed", 3, "--length", 80, "--prime", "# ").stdout
    many = run("sample", "-n", 3, "--seed", 3, "--length", 80, "--json")
    records = [json.loads(line) for line in many.stdout.splitlines()]
    assert len(records) == 3 and all(r["step"] == 20 and r["seed"] == 3 for r in records)
    from_folder = run("sample", "--checkpoint", "checkpoints", "--seed", 3, "--length", 80,
                      "--prime", "# ")
    assert from_folder.stdout == song.stdout
    info = run("info", "--json")
    assert json.loads(info.stdout)["step"] == 20
    assert "1x16 LSTM" in run("info").stdout
    score = run("eval", trained, "--json")
    assert score.exit_code == 0 and json.loads(score.stdout)["chars"] > 1000


@pytest.mark.parametrize("songs", [1, 3])
def test_without_a_seed_the_seed_used_is_shown_and_writes_the_same_songs(run, trained, songs):
    first = run("sample", "-n", songs, "--length", 80)
    assert first.exit_code == 0, first.output
    match = re.fullmatch(r"seed (\d+) \(--seed \1 with the same options writes this again\)\n",
                         without_cut(first.stderr))
    assert match, first.stderr
    again = run("sample", "-n", songs, "--length", 80, "--seed", match[1])
    assert again.stdout == first.stdout and without_cut(again.stderr) == ""


def test_several_songs_are_separated_by_two_blank_lines(run, trained):
    out = run("sample", "-n", 2, "--seed", 1, "--length", 40, "--prime", "# A").stdout
    assert out.count("\n\n\n# A") == 1 and out.startswith("# A")


def test_train_without_text_uses_the_demo_corpus(run):
    result = run("train", *TINY[:-1], "--steps", 2, "--eval-every", 2)
    assert result.exit_code == 0, result.output
    assert "90 songs" in result.stderr


def test_resume_continues_to_the_step_count(run, trained, tmp_path):
    result = run("train", trained, *TINY, "--steps", 30, "--resume")
    assert result.exit_code == 0, result.output
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 30


def test_conflicting_option_on_resume_warns(run, trained):
    result = run("train", trained, *TINY, "--hidden-size", 64, "--steps", 25, "--resume")
    assert result.exit_code == 0
    assert ("Warning: model option hidden size = 64 differs from the checkpoint's 16; keeping "
            "the checkpoint's value") in result.stderr


@pytest.mark.parametrize("args, code, message", [
    (["sample"], 1, "Error: no run in checkpoints (no best.pt or last.pt) and no base model is "
                    "bundled with this installation of songgen; train a model first (songgen "
                    "train TEXT) or give a checkpoint path"),
    (["sample", "--temp", "-1"], 2, "Invalid value for '--temp' / '--temperature'"),
    (["sample", "--top-p", "0"], 2, "Invalid value for '--top-p'"),
    (["sample", "--temperatur", "1"], 2, "No such option '--temperatur'. (Did you mean one of"),
    (["train", "missing.txt"], 2, "Path 'missing.txt' does not exist"),
    (["train", "--steps", "0"], 2, "Invalid value for '--steps'"),
    (["train", "--time-limit", "soon"], 2, "'soon' is not a duration"),
    (["info", "nothing.pt"], 1, "Error: no checkpoint at nothing.pt"),
])
def test_errors_are_one_line_with_exit_codes(run, args, code, message):
    result = run(*args)
    assert result.exit_code == code
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_prime_with_unseen_characters(run, trained):
    result = run("sample", "--prime", "§", "--strict")
    assert result.exit_code == 1
    assert result.stderr == ("Error: the prime has characters the model never saw: '§'; "
                             "remove or replace them\n")


def test_title_with_unseen_characters_names_the_title(run, trained):
    result = run("sample", "--title", "Love é§", "--strict")
    assert result.exit_code == 1
    assert result.stderr == ("Error: --title has characters the model never saw: '§', "
                             "'é'; remove or replace them\n")


def test_info_names_the_corpus(run, trained):
    result = run("info")
    assert result.exit_code == 0
    assert f"corpus       {trained} (fingerprint " in result.stdout


@pytest.mark.slow
def test_into_a_log_file_progress_is_plain_lines_that_name_the_epoch(run, songs_file,
                                                                     monkeypatch):
    import songgen.training.progress

    monkeypatch.setattr(songgen.training.progress, "LOG_SECONDS", 0)  # a line at every loss reading
    args = [a for a in TINY if a != "-q"]
    # Long enough for a second epoch on a slow or busy machine (an epoch is ~130 steps).
    result = run("train", songs_file, *args, "--time-limit", "8", "--eval-every", 10)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    status = [line for line in lines if line.startswith("step ") and "loss=" in line]
    assert any("(epoch 1, " in line for line in status)
    assert any("(epoch 2, " in line for line in status)
    assert not any("|" in line for line in lines)  # no bar drawn into the file


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_where_there_is_none(run, songs_file):
    result = run("train", songs_file, "--device", "cuda")
    assert result.exit_code == 1
    assert "Error: device cuda asked for, but CUDA is not available here" in result.stderr


@pytest.mark.parametrize("sig, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_signal_saves_and_tells_how_to_resume(songs_file, tmp_path, sig, code):
    import signal
    import time

    folder = tmp_path / "ck"
    proc = subprocess.Popen(
        [sys.executable, "-m", "songgen", "train", str(songs_file), *TINY[:-1], "--eval-every",
         "5", "--checkpoint-dir", str(folder)],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (folder / "metrics.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(getattr(signal, sig))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"{sig} received: training stopped at step" in err
    assert "To continue: songgen train" in err and err.rstrip().endswith("--resume")
    assert "Traceback" not in err and out == ""
    state = torch.load(folder / "last.pt", weights_only=True)
    assert state["step"] >= 5
