"""Issue #16, the first hour of a new user: each thing that tripped them up, checked the way
they met it (CliRunner or a real process, exact messages and exit codes)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
from click.testing import CliRunner

from songgen.cli.commands import cli

from .conftest import make_songs

MODEL = ["--embed-dim", "8", "--hidden-size", "16", "--layers", "1", "--device", "cpu"]
TINY = [*MODEL, "--seq-len", "16", "--batch-size", "4"]


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(cli, [str(a) for a in args], input=input)

    return invoke


@pytest.fixture
def trained(run, tmp_path):
    (tmp_path / "songs.txt").write_text(make_songs(), encoding="utf-8")
    result = run("train", "songs.txt", *TINY, "-q", "--steps", 10, "--eval-every", 5)
    assert result.exit_code == 0, result.output
    return tmp_path / "songs.txt"


def last(folder="checkpoints"):
    return torch.load(os.path.join(folder, "last.pt"), weights_only=True)


# -- 1. --time-limit 1h30 ---------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [("1h30", 5400), ("5m30", 330), ("90", 90),
                                           ("1h30m", 5400), ("1h30m15", 5415), ("1d2", 93600),
                                           ("1.5h", 5400)])
def test_a_number_after_a_unit_counts_in_the_next_smaller_one(text, seconds):
    from songgen.cli.options import Duration

    assert Duration().convert(text, None, None) == seconds


def test_a_number_after_seconds_is_refused(run):
    result = run("train", "--time-limit", "30s5")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == ("Error: Invalid value for '--time-limit': '30s5': "
                                              "a number after seconds has no unit; write e.g. "
                                              "1m30s")


def test_the_header_echoes_the_time_limit_as_understood(run, tmp_path):
    (tmp_path / "songs.txt").write_text(make_songs(), encoding="utf-8")
    result = run("train", "songs.txt", *TINY, "--steps", 2, "--time-limit", "1h30")
    assert result.exit_code == 0, result.output
    assert "time limit 1 h 30 min\n" in result.stderr


# -- 2. songgen sample | head -1 --------------------------------------------------------------

ENDLESS = r'''
import sys
import songgen.writing.sampling

def endless(*args, **kwargs):
    yield ("prime", "")
    while True:
        yield ("chars", ["la la la, a line of an endless song\n"])

songgen.writing.sampling.write_live = endless
from songgen.cli.commands import cli
cli(args=sys.argv[1:], prog_name="songgen")
'''


def test_a_closed_pipe_ends_sample_quietly(trained, tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", ENDLESS, "sample", "--seed", "1"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"la la")
    proc.stdout.close()  # what `| head -1` does after its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert err == ""  # no "Exception ignored ... BrokenPipeError" either


# -- 3. resume after editing the lyrics -------------------------------------------------------

def test_resume_on_an_edited_text_says_how_to_go_on_with_it(run, trained):
    trained.write_text(trained.read_text() + "\n\n\n# New\n\nquite a new verse\n")
    result = run("train", "songs.txt", *TINY, "-q", "--steps", 20, "--resume")
    assert result.exit_code == 1
    assert re.fullmatch(
        r"Error: songs.txt has changed since the run was trained on it \(fingerprint \w+, "
        r"expected \w+\); resume with the text it was trained on, or go on with this text from "
        r"the run's weights \(its vocabulary grown by any new characters\) in a new folder: "
        r"songgen train songs.txt --init-from checkpoints/best.pt --checkpoint-dir "
        r"checkpoints-2\n", result.stderr), result.stderr
    advised = result.stderr.rsplit(": songgen ", 1)[1].split()
    again = run(*advised, *TINY, "-q", "--steps", 2)
    assert again.exit_code == 0, again.output
    assert last("checkpoints-2")["step"] == 2 and "q" in last("checkpoints-2")["vocab"]


# -- 4. --resume without TEXT -----------------------------------------------------------------

def test_resume_without_text_uses_the_runs_own_text(run, trained):
    result = run("train", "--resume", *TINY, "--steps", 15)
    assert result.exit_code == 0, result.output
    assert f"resuming on {trained}, the text the run was trained on\n" in result.stderr
    assert last()["step"] == 15


def test_resume_without_text_whose_text_is_gone_asks_for_it(run, trained):
    trained.rename(trained.with_name("moved.txt"))
    result = run("train", "--resume", *TINY, "--steps", 15)
    assert result.exit_code == 1
    assert result.stderr == (f"Error: the run in checkpoints was trained on {trained}, which no "
                             "longer exists; give the text as TEXT: songgen train TEXT "
                             "--checkpoint-dir checkpoints --resume\n")
    moved = run("train", "moved.txt", "--resume", *TINY, "-q", "--steps", 15)
    assert moved.exit_code == 0, moved.output


# -- 5. a short text --------------------------------------------------------------------------

SHORT = ("# Small Hours\n\n" + "the lamp is low and the night is long\n" * 20 + "\n\n\n"
         "# Second\n\n" + "a river runs under my window\n" * 16)  # 1,252 characters


def test_a_short_text_gets_a_batch_shape_that_fits(run, tmp_path):
    (tmp_path / "short.txt").write_text(SHORT, encoding="utf-8")
    result = run("train", "short.txt", *MODEL, "--steps", 3)
    assert result.exit_code == 0, result.output
    assert re.search(r"^short text: batch size 2 x sequence length 100 instead of 32 x 100, "
                     r"for [4-9] steps an epoch$", result.stderr, re.M), result.stderr
    config = last()["train_config"]
    assert (config["batch_size"], config["seq_len"]) == (2, 100)


def test_a_short_text_with_a_chosen_batch_names_one_that_fits(run, tmp_path):
    (tmp_path / "short.txt").write_text(SHORT, encoding="utf-8")
    result = run("train", "short.txt", *MODEL, "-q", "--batch-size", 32, "--steps", 3)
    assert result.exit_code == 1
    assert re.fullmatch(r"Error: the training text has 1,[0-9]{3} characters, fewer than batch "
                        r"size x sequence length \+ 1 = 3,201; use e.g. --batch-size 2 "
                        r"--seq-len 100, or more text\n", result.stderr), result.stderr


def test_fitting_shape_shrinks_the_batch_then_the_sequence():
    from songgen.training.batches import fitting_shape

    assert fitting_shape(1180, 32, 100) == (2, 100)
    assert fitting_shape(100_000, 32, 100) == (32, 100)
    assert fitting_shape(300, 32, 100) == (1, 74)
    assert fitting_shape(1180, 32, 100, multiple=4) == (4, 73)
    assert fitting_shape(1, 32, 100) is None


# -- 6. options that may change on resume -----------------------------------------------------

def test_resume_applies_a_new_learning_rate_and_keeps_it(run, trained):
    result = run("train", "songs.txt", "--resume", *TINY, "--steps", 15, "--lr", 0.001,
                 "--patience", 3)
    assert result.exit_code == 0, result.output
    assert "changed on resume: learning rate 0.006 -> 0.001, patience 5 -> 3\n" in result.stderr
    state = last()
    assert state["train_config"]["lr"] == 0.001 and state["train_config"]["patience"] == 3
    assert state["optimizer_state"]["param_groups"][0]["lr"] == 0.001
    again = run("train", "songs.txt", "--resume", *TINY, "--steps", 20)
    assert again.exit_code == 0, again.output
    assert "changed on resume" not in again.stderr
    assert last()["train_config"]["lr"] == 0.001 and last()["train_config"]["patience"] == 3


def test_resume_keeps_the_data_layout_with_a_warning(run, trained):
    result = run("train", "songs.txt", "--resume", *MODEL, "--seq-len", 32, "--batch-size", 4,
                 "--steps", 15)
    assert result.exit_code == 0, result.output
    assert ("Warning: training option seq len = 32 differs from the checkpoint's 16; keeping "
            "the checkpoint's value\n") in result.stderr


def test_a_resume_that_changes_the_learning_rate_differs_from_one_that_does_not(
        songs_file, tiny_model, tiny_config, tmp_path):
    from songgen.training.loop import train

    for name, lr in (("same", 6e-3), ("lower", 1e-3)):
        folder = str(tmp_path / name)
        train(songs_file, model=tiny_model, config=tiny_config(steps=5, checkpoint_dir=folder),
              quiet=True)
        train(songs_file, model=tiny_model, config=tiny_config(
            steps=10, checkpoint_dir=folder, lr=lr), resume=True, explicit={"lr"}, quiet=True)
    same, lower = last(tmp_path / "same"), last(tmp_path / "lower")
    assert lower["optimizer_state"]["param_groups"][0]["lr"] == 1e-3
    assert not torch.equal(same["model_state"]["head.weight"], lower["model_state"]["head.weight"])


# -- 7. titles and primes with unseen characters ----------------------------------------------

def test_unseen_title_characters_become_close_ones_with_a_warning(run, trained):
    result = run("sample", "--title", "Vélo §", "--length", 40, "--seed", 1)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# velo\n\n")
    assert result.stderr.splitlines()[0] == ("Warning: --title has characters the model never "
                                             "saw: 'V' became 'v'; 'é' became 'e'; '§' was "
                                             "dropped")


def test_a_prime_of_only_unseen_characters_is_an_error(run, trained):
    result = run("sample", "--prime", "§¶")
    assert result.exit_code == 1
    assert result.stderr == ("Error: --prime has only characters the model never saw: '§', "
                             "'¶'; write it with characters of the training text\n")


def test_the_library_stays_strict_unless_asked(trained):
    from songgen.errors import SonggenError
    from songgen.writing.sampling import generate
    from songgen.text.vocab import Vocab

    with pytest.raises(SonggenError, match="never saw: 'Z'"):
        generate("checkpoints", prime="Zebra", length=20, device="cpu")
    vocab = Vocab(["\x00", *"aberz "])
    assert vocab.fit("Zébra§") == ("zebra", [("Z", "z"), ("é", "e"), ("§", "")])


# -- 8. --encoding ----------------------------------------------------------------------------

def test_a_windows_1252_file_trains_with_encoding_and_resumes_the_same_way(run, tmp_path):
    text = make_songs().replace("love", "lové").replace("heart", "heart’s")
    (tmp_path / "win.txt").write_bytes(text.encode("cp1252"))
    refused = run("train", "win.txt", *TINY, "-q", "--steps", 5)
    assert refused.exit_code == 1
    assert re.fullmatch(r"Error: win.txt: not valid UTF-8 at line \d+, byte offset \d+ \(byte \d+ "
                        r"of the line\); save the file as UTF-8, or give its encoding with "
                        r"--encoding, e.g. --encoding cp1252\n", refused.stderr), refused.stderr
    result = run("train", "win.txt", *TINY, "-q", "--steps", 5, "--encoding", "cp1252")
    assert result.exit_code == 0, result.output
    assert last()["train_config"]["encoding"] == "cp1252"
    assert {"é", "’"} <= set(last()["vocab"])
    resumed = run("train", "--resume", *TINY, "-q", "--steps", 10)
    assert resumed.exit_code == 0, resumed.output
    scored = run("eval", "win.txt", "--encoding", "cp1252", "--json")
    assert scored.exit_code == 0, scored.output
    (tmp_path / "prime.txt").write_bytes("# Lové\n".encode("cp1252"))
    primed = run("sample", "--prime-file", "prime.txt", "--encoding", "cp1252", "--length", 30,
                 "--seed", 1, "--strict")
    assert primed.exit_code == 0 and primed.stdout.startswith("# Lové\n"), primed.output


def test_an_unknown_encoding_is_a_usage_error(run):
    result = run("eval", "x.txt", "--encoding", "klingon")
    assert result.exit_code == 2


def test_multi_byte_encodings_are_decoded_whole(tmp_path):
    from songgen.text.corpus import load_corpus

    text = make_songs(10)
    (tmp_path / "u16.txt").write_bytes(text.encode("utf-16-le"))
    (tmp_path / "u8.txt").write_text(text, encoding="utf-8")
    a = load_corpus(tmp_path / "u16.txt", encoding="utf-16-le")
    b = load_corpus(tmp_path / "u8.txt")
    assert a.fingerprint == b.fingerprint


# -- 9. Ctrl-C twice --------------------------------------------------------------------------

SLOW = r'''
import os, sys, time
import songgen.training.loop as tr
from songgen.cli.commands import cli
real = tr.Run._train_step
def slow(self):
    loss = real(self)
    if os.path.exists("slow"):
        time.sleep(60)  # a step that takes long: only a second Ctrl-C cuts it short
    return loss
tr.Run._train_step = slow
cli(args=sys.argv[1:], prog_name="songgen")
'''


@pytest.mark.slow
def test_ctrl_c_is_acknowledged_at_once_and_a_second_one_stops_now(trained, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW, "train", "songs.txt", *TINY, "--eval-every", "5",
         "--checkpoint-dir", "ck"], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()

    def wait_for(predicate, seconds=60):
        deadline = time.monotonic() + seconds
        while not predicate():
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            time.sleep(0.05)

    wait_for(lambda: (tmp_path / "ck" / "metrics.jsonl").exists())
    (tmp_path / "slow").touch()
    time.sleep(1)  # inside a slow step now
    proc.send_signal(signal.SIGINT)
    ack = "stopping after this step; Ctrl-C again to stop now without saving this step\n"
    wait_for(lambda: ack in lines, 10)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    reader.join(timeout=10)
    err = "".join(lines)
    assert time.monotonic() - sent < 20, err  # not the 60 s the step would take
    assert proc.returncode == 130, err
    match = re.search(r"^SIGINT received again: training stopped at once at step (\d+), not "
                      r"saved; ck/last.pt holds step (\d+)\nTo continue: songgen train songs.txt "
                      r".*--resume\n$", err, re.M)
    assert match and int(match[1]) > int(match[2]), err
    assert last(tmp_path / "ck")["step"] == int(match[2])
    assert "Traceback" not in err


# -- 10. the end of a run, and the progress bar -----------------------------------------------

def test_a_quiet_run_still_ends_with_the_result_and_the_next_command(run, tmp_path):
    (tmp_path / "songs.txt").write_text(make_songs(), encoding="utf-8")
    result = run("train", "songs.txt", *TINY, "-q", "--steps", 3)
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"done in [\d.]+ s; write a song with: songgen sample --checkpoint "
                        r"checkpoints\n", result.stderr), result.stderr


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_bar_reads_steps_per_second_and_seconds_per_step():
    from songgen.training.progress import _Bar

    assert "8.44s/step" in _Bar.format_meter(n=10, total=100, elapsed=84.4, unit="step")
    assert "2.00steps/s" in _Bar.format_meter(n=10, total=100, elapsed=5, unit="step")


def test_an_epoch_bar_that_had_not_begun_is_cleared_and_time_left_is_shown(monkeypatch):
    from songgen.training.progress import Progress

    monkeypatch.setattr(sys, "stderr", _Terminal())
    progress = Progress(13, None, 64, False, step=13, epoch=1, position=0, time_limit=600)
    progress.report(2.5, None)
    assert re.search(r"\b(9:59|10:00) left", progress.bar.postfix)
    progress.close()
    assert sys.stderr.getvalue().rsplit("\r", 1)[-1].strip() == ""
    monkeypatch.setattr(sys, "stderr", _Terminal())
    progress = Progress(13, None, 64, False, step=5, epoch=0, position=5)
    progress.close()
    assert sys.stderr.getvalue().rstrip().rsplit("\r", 1)[-1].startswith("epoch 1:  38%")


# -- 11. --temp 0, and songs cut at --length --------------------------------------------------

def test_temp_0_writes_one_song_and_says_why(run, trained):
    result = run("sample", "--temp", 0, "-n", 3, "--length", 40)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        "Warning: --temp 0 always picks the likeliest character, so all 3 songs would be the "
        "same (greedy decoding is deterministic); writing one. Raise --temp for different songs")
    assert "seed" not in result.stderr and "\n\n\n" not in result.stdout


@pytest.mark.parametrize("songs", [1, 3])
def test_songs_cut_at_the_length_are_named_on_stderr(run, trained, songs):
    records = [json.loads(line) for line in run("sample", "-n", songs, "--length", 40, "--seed",
                                                1, "--json").stdout.splitlines()]
    expected = "".join(
        f"{'the song' if songs == 1 else 'song ' + str(r['number'])} was cut at 40 characters; "
        "raise --length\n" for r in records if r["stop"] == "length")
    assert expected, "the tiny model should not end songs this soon"
    for args in ([], ["--json"]):
        result = run("sample", "-n", songs, "--length", 40, "--seed", 1, *args)
        assert result.exit_code == 0, result.output
        assert result.stderr == expected


# -- 12. help ---------------------------------------------------------------------------------

def test_the_command_list_reads_whole(run):
    result = run("--help")
    commands = result.stdout.split("Commands:\n", 1)[1]
    assert commands == (
        "  check    Find what in a text is not lyrics; -o writes a clean copy.\n"
        "  eval     Score a checkpoint on any text (bits per character).\n"
        "  explain  Show what the model expected at each character of a text.\n"
        "  info     Show what a checkpoint or run holds, and whether it is intact.\n"
        "  plot     Draw training curves of runs to an SVG file.\n"
        "  sample   Write new songs with a trained model.\n"
        "  serve    A local page to write songs and watch training.\n"
        "  train    Train a model on a lyrics file or folder (Ctrl-C saves).\n")


@pytest.mark.parametrize("command", ["train", "sample", "eval", "info", "check", "serve",
                                     "plot", "explain"])
def test_every_command_has_examples(run, command):
    result = run(command, "--help")
    assert result.exit_code == 0
    examples = result.stdout.split("Examples:\n\n", 1)[1]
    assert examples.startswith(f"    songgen {command} ")


def test_sample_help_says_json_lines(run):
    assert "Print JSON Lines on stdout: one JSON object per song" in " ".join(
        run("sample", "--help").stdout.split())


# == Issue #28: the first hour, again =========================================================

# -- 7. --resume --steps N below the run's step ------------------------------------------------

def test_resume_with_steps_below_the_runs_step_says_steps_count_from_the_start(run, trained):
    result = run("train", "--resume", *TINY, "-q", "--steps", 5)
    assert result.exit_code == 1
    assert result.stderr == ("Error: the run in checkpoints is at step 10 already, and --steps 5 "
                             "counts from the run's start; to train 5 steps more, use "
                             "--more-steps 5 (or --steps 15)\n")
    assert last()["step"] == 10


def test_more_steps_counts_from_where_the_run_stands(run, trained):
    result = run("train", "--resume", *TINY, "-q", "--more-steps", 3)
    assert result.exit_code == 0, result.output
    assert last()["step"] == 13
    both = run("train", "--resume", *TINY, "-q", "--more-steps", 3, "--steps", 20)
    assert both.exit_code == 2 and "--steps and --more-steps cannot be combined" in both.stderr


# -- 8. a checkpoint as sample's argument; --init-from a folder --------------------------------

def test_sample_takes_the_checkpoint_folder_as_its_argument(run, trained):
    by_argument = run("sample", "checkpoints", "--length", 30, "--seed", 3)
    by_option = run("sample", "--checkpoint", "checkpoints", "--length", 30, "--seed", 3)
    assert by_argument.exit_code == 0, by_argument.output
    assert by_argument.stdout == by_option.stdout and by_argument.stdout.strip()
    both = run("sample", "checkpoints", "--checkpoint", "elsewhere")
    assert both.exit_code == 2
    assert ("two checkpoints given: checkpoints and --checkpoint elsewhere; give one"
            in " ".join(both.stderr.split()))


def test_init_from_a_folder_starts_from_its_best_checkpoint(run, trained):
    result = run("train", "songs.txt", "--init-from", "checkpoints", "--checkpoint-dir", "ck2",
                 *TINY, "--steps", 2)
    assert result.exit_code == 0, result.output
    assert f"fine-tuning from {os.path.join('checkpoints', 'best.pt')} (step " in result.stderr
    assert last("ck2")["init_from"]["path"].endswith(os.path.join("checkpoints", "best.pt"))


# -- 9. eval of the run's own text reads it in the run's encoding -----------------------------

def test_eval_of_the_runs_own_text_uses_the_runs_encoding(run, tmp_path):
    (tmp_path / "win.txt").write_bytes(make_songs().replace("love", "l\u00f6ve").encode("cp1252"))
    trained = run("train", "win.txt", "--encoding", "cp1252", *TINY, "-q", "--steps", 4,
                  "--eval-every", 2)
    assert trained.exit_code == 0, trained.output
    result = run("eval", "win.txt", "--checkpoint", "checkpoints", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["skipped"] == 0
    other = tmp_path / "copy.txt"  # another file is UTF-8 unless told
    other.write_bytes((tmp_path / "win.txt").read_bytes())
    assert run("eval", "copy.txt", "--checkpoint", "checkpoints").exit_code == 1


# -- 12. the README's first command, run twice -------------------------------------------------

def test_train_without_text_again_goes_on_with_the_demo_run(run):
    first = run("train", *TINY, "-q", "--steps", 2)
    assert first.exit_code == 0, first.output
    again = run("train", *TINY, "-q", "--steps", 2)
    assert again.exit_code == 0, again.output
    assert again.stderr == ("the run in checkpoints is complete at step 2 (--steps 2); to "
                            "train more, use --more-steps N\n")
    assert last()["step"] == 2  # the same command again: the run is done, nothing trained
    more = run("train", *TINY, "-q", "--more-steps", 1)
    assert more.exit_code == 0, more.output
    assert more.stderr.startswith("checkpoints holds the demo run: going on with it (as with "
                                  "--resume)\n")
    assert last()["step"] == 3


# -- 14. songgen plot's legend inside the image -----------------------------------------------

@pytest.mark.parametrize("runs", [1, 3, 4])
def test_plot_legend_lies_inside_the_image_with_room_between_entries(runs):
    import xml.etree.ElementTree as ET

    from songgen.run.curves import curves_svg

    records = [{"step": s, "elapsed": s, "train_loss": 3.0 - s / 10, "val_loss": 3.1 - s / 10}
               for s in (1, 2, 3)]
    names = [f"checkpoints/a-long-run-name-{i}" for i in range(runs)]
    svg = ET.fromstring(curves_svg([(name, records) for name in names]))
    height = float(svg.get("height"))
    texts = [t for t in svg.iter("{http://www.w3.org/2000/svg}text")
             if t.get("class") in ("legend", "tick") and ("best" in (t.text or "")
                                                           or "solid:" in (t.text or ""))]
    assert len(texts) == runs + 1
    assert all(float(t.get("y")) + 4 <= height for t in texts)  # baseline and descenders
    entries = [t for t in texts if "best" in t.text]
    for a, b in zip(entries, entries[1:]):
        if a.get("y") == b.get("y"):  # side by side: the first ends before the second starts
            assert float(b.get("x")) - float(a.get("x")) > 7 * len(a.text) + 28
    rows = sorted({t.get("y") for t in texts}, key=float)
    assert all(float(b) - float(a) >= 20 for a, b in zip(rows, rows[1:]))


# -- 2. a wrong single-byte encoding is refused, with the one that fits -----------------------

WINDOWS_SONGS = "\n\n\n".join(f"# Song {i}\n\nI don\u2019t know \u2014 caf\u00e9 {i}\nla la la"
                              "\n\nlo lo lo" for i in range(30)) + "\n"


def test_windows_text_read_as_latin1_is_refused_naming_cp1252(run, tmp_path):
    (tmp_path / "win.txt").write_bytes(WINDOWS_SONGS.encode("cp1252"))
    result = run("train", "win.txt", "--encoding", "latin-1", *TINY, "-q", "--steps", 2)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: win.txt read as iso8859-1 holds control characters that no lyrics hold "
        "(U+0092, U+0097; first at line 3): it reads as cp1252 (Windows); use --encoding "
        "cp1252, or --encoding auto to read each file in its own encoding (UTF-8, else "
        "cp1252)\n")
    assert not (tmp_path / "checkpoints" / "last.pt").exists()


def test_a_mixed_folder_names_the_utf8_file_and_auto_reads_each_in_its_own(run, tmp_path):
    folder = tmp_path / "mix"
    folder.mkdir()
    (folder / "a.txt").write_bytes(WINDOWS_SONGS.encode("cp1252"))
    (folder / "b.txt").write_bytes(WINDOWS_SONGS.replace("Song", "Tune").encode("utf-8"))
    result = run("train", "mix", "--encoding", "cp1252", *TINY, "-q", "--steps", 2)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {os.path.join('mix', 'b.txt')} read as cp1252 shows 'don\u00e2\u20ac\u2122t' "
        "where it reads 'don\u2019t' as UTF-8; use --encoding utf-8, or --encoding auto to "
        "read each file in its own encoding (UTF-8, else cp1252)\n")
    auto = run("train", "mix", "--encoding", "auto", *TINY, "-q", "--steps", 2)
    assert auto.exit_code == 0, auto.output
    vocab = last()["vocab"]
    assert "\u2019" in vocab and "\u00e9" in vocab
    assert not any("\x80" <= c <= "\x9f" or c in "\u00c3\u00e2\u20ac" for c in vocab)
    resumed = run("train", "--resume", *TINY, "-q", "--more-steps", 1)  # auto kept for resume
    assert resumed.exit_code == 0, resumed.output


# -- 10. a mixed folder says what was read and what was skipped -------------------------------

def test_a_mixed_folder_counts_what_was_read_and_skipped_by_kind(run, tmp_path):
    folder = tmp_path / "mine"
    (folder / "old").mkdir(parents=True)
    (folder / "a.txt").write_text(make_songs(20), encoding="utf-8")
    (folder / "old" / "b.TXT").write_text(make_songs(20, seed=1), encoding="utf-8")
    for name in ("notes.md", "draft.docx", "old/cover.png", "old/more.png", "README", ".DS_Store"):
        (folder / name).write_bytes(b"x")
    result = run("train", "mine", *TINY, "--steps", 1)
    assert result.exit_code == 0, result.output
    assert (f"\nread 2 .txt files of {folder}; skipped 1 .docx, 1 .md, 2 .png, 1 without an "
            "extension (only .txt files are read)\n") in result.stderr


# -- 1. songs separated by one blank line before their titles ---------------------------------

def test_titled_songs_one_blank_line_apart_are_read_as_songs(run, tmp_path):
    songs = make_songs(10).split("\n\n\n")
    (tmp_path / "ten.txt").write_text("\n\n".join(songs), encoding="utf-8")
    result = run("train", "ten.txt", *TINY, "--steps", 1)
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stderr.splitlines() if line.startswith("corpus: "))
    assert re.fullmatch(r"corpus: [\d,]+ characters, 10 songs \(split at two blank lines, or one "
                        r"before a # Title line\), vocabulary \d+ symbols; train [\d,]+ / "
                        r"validation [\d,]+ characters \(9 / 1 songs\)", header), header
