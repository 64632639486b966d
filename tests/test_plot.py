"""songgen plot and the curves module: metrics read tolerantly, runs found, SVG drawn."""

import fcntl
import os
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from songgen.cli.commands import cli
from songgen.run.curves import curves_svg, nice_ticks, read_metrics
from songgen.run.finding import find_runs
from songgen.run.status import running_pid

from .conftest import make_songs
from .studio_support import metrics_line

SVG = "{http://www.w3.org/2000/svg}"


def test_read_metrics_skips_what_is_not_a_finished_record(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(metrics_line(10, 3.0, 1.0) + "\n" + "garbage\n" + '{"step": "x"}\n' +
                    metrics_line(20, 2.5, 2.0) + metrics_line(10, 2.9, 3.0) +
                    '{"step": 30, "val_loss": NaN}\n' + metrics_line(40, 2.0, 4.0)[:30])
    records = read_metrics(path)
    # Step 10 logged twice (a resumed run) keeps its last record; the half line is left out.
    assert [(r["step"], r["val_loss"]) for r in records] == [(10, 2.9), (20, 2.5)]
    assert records[0]["val_bpc"] > records[0]["val_loss"]
    assert read_metrics(tmp_path / "missing.jsonl") == []


def test_find_runs_looks_down_the_folders(tmp_path):
    for name in ("a", "b/c", ".hidden/d"):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "metrics.jsonl").write_text(metrics_line(1, 2.0, 1.0))
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "last.pt").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    assert [p.relative_to(tmp_path).as_posix() for p in find_runs(tmp_path)] == ["a", "b/c", "e"]


def test_running_pid_reads_the_lock_without_taking_it(tmp_path):
    assert running_pid(tmp_path) is None
    with open(tmp_path / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write(f"pid {os.getpid()}")
        lock.flush()
        assert running_pid(tmp_path) == os.getpid()
    assert running_pid(tmp_path) is None


def test_nice_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0, 1000, 5) == [0, 200, 400, 600, 800, 1000]
    ticks = nice_ticks(1.37, 2.61, 5)
    assert ticks == [1.0, 1.5, 2.0, 2.5, 3.0]


def test_the_svg_draws_each_run_in_its_colour():
    runs = [("run one", [{"step": s, "elapsed": s / 10, "train_loss": 3 - s / 100,
                          "val_loss": 3.1 - s / 100} for s in (10, 20, 30)]),
            ("<two>", [{"step": 5, "elapsed": 1.0, "train_loss": None, "val_loss": 2.0}])]
    root = ET.fromstring(curves_svg(runs))
    lines = root.findall(f"{SVG}polyline")
    # run one: train and validation, in both panels; <two>: validation only, in both.
    assert len(lines) == 6
    assert {l.get("stroke") for l in lines} == {"#1f6fb4", "#d9731a"}
    text = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "run one" in text and "<two>" in text and "bits/char" in text


def test_plot_command_writes_an_svg(tmp_path):
    for name, val in (("a", 2.5), ("b", 2.2)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_text(metrics_line(10, val + 0.5, 1.0) +
                                                       metrics_line(20, val, 2.0))
    out = tmp_path / "curves.svg"
    result = CliRunner().invoke(cli, ["plot", str(tmp_path / "a"), str(tmp_path / "b" /
                                                                      "metrics.jsonl"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stderr == f"wrote {out} (2 runs)\n"
    assert len(ET.parse(out).getroot().findall(f"{SVG}polyline")) == 8
    result = CliRunner().invoke(cli, ["plot", str(tmp_path), "-o", str(tmp_path / "all.svg")])
    assert result.exit_code == 0 and "(2 runs)" in result.stderr


@pytest.mark.parametrize("existing", ["lyrics.txt", "last.pt"])
def test_plot_never_overwrites_a_file(tmp_path, existing):
    """`plot -o FILE` replaced any file, a lyrics file or a checkpoint among them (#32)."""
    (tmp_path / "metrics.jsonl").write_text(metrics_line(10, 2.5, 1.0))
    target = tmp_path / existing
    target.write_bytes(b"a user's own file\n")
    result = CliRunner().invoke(cli, ["plot", str(tmp_path), "-o", str(target)])
    assert result.exit_code == 1
    assert result.stderr == (f"Error: {target} already exists; choose a new name "
                             "(songgen never overwrites a file)\n")
    assert target.read_bytes() == b"a user's own file\n"


@pytest.mark.parametrize("command", [["plot", "."], ["check", "lyrics.txt"],
                                     ["sample", "--length", "20"],
                                     ["explain", "lyrics.txt", "--checkpoint", "ck"]])
def test_every_output_refuses_a_link_in_one_sentence(command, tmp_path, monkeypatch):
    """Each command refused an existing -o in its own words, and sample, check and explain
    (os.path.exists) replaced a link that points nowhere: now one check, one sentence."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics.jsonl").write_text(metrics_line(10, 2.5, 1.0))
    (tmp_path / "lyrics.txt").write_text(make_songs(30), encoding="utf-8")
    if command[0] in ("sample", "explain"):
        made = CliRunner().invoke(cli, ["train", "lyrics.txt", "--checkpoint-dir", "ck",
                                        "--from-scratch", "--embed-dim", "4", "--hidden-size",
                                        "8", "--layers", "1", "--seq-len", "8", "--batch-size",
                                        "2", "--steps", "1", "--device", "cpu", "-q"])
        assert made.exit_code == 0, made.output
        if command[0] == "sample":
            command = [*command, "ck"]
    (tmp_path / "out").symlink_to(tmp_path / "nowhere")
    result = CliRunner().invoke(cli, [*command, "-o", "out"])
    assert result.exit_code == 1, result.output
    assert result.stderr == ("Error: out already exists; choose a new name (songgen never "
                             "overwrites a file)\n")
    assert (tmp_path / "out").is_symlink() and not (tmp_path / "nowhere").exists()


def test_plot_without_o_takes_a_new_name_beside_an_existing_curves_svg(tmp_path, monkeypatch):
    """With no -o, a second plot replaced curves.svg silently (#32)."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text(metrics_line(10, 2.5, 1.0))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "curves.svg").write_text("kept")
    (tmp_path / "curves-2.svg").write_text("kept too")
    result = CliRunner().invoke(cli, ["plot", "run"])
    assert result.exit_code == 0, result.output
    assert result.stderr == "wrote curves-3.svg (1 run)\n"
    assert (tmp_path / "curves.svg").read_text() == "kept"
    assert (tmp_path / "curves-2.svg").read_text() == "kept too"
    assert ET.parse(tmp_path / "curves-3.svg").getroot().findall(f"{SVG}polyline")


def test_plot_without_evaluations_says_so(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "val_loss"')
    result = CliRunner().invoke(cli, ["plot", str(tmp_path), "-o", str(tmp_path / "c.svg")])
    assert result.exit_code == 1
    assert "no evaluations to plot" in result.stderr
    assert not (tmp_path / "c.svg").exists()
    result = CliRunner().invoke(cli, ["plot", str(tmp_path / "nope")])
    assert result.exit_code == 2


def test_serve_and_plot_have_help():
    for command in ("serve", "plot"):
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output
