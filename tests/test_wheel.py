"""The built wheel, not the editable install the other tests use: it builds without warnings,
installs into a fresh virtual environment, and from there trains on the bundled songs,
samples, and serves the studio's page. What `pip install songgen-*.whl` gives a user."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TINY = ["--embed-dim", "8", "--hidden-size", "16", "--layers", "1", "--seq-len", "16",
        "--batch-size", "4", "--device", "cpu", "-q"]


def run(*args, cwd, timeout=600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def clean_env() -> dict:
    # Nothing from this test run's environment (PYTHONPATH, the outer venv) may stand in for
    # what the wheel installed.
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(sys.prefix))
    return env


def test_the_wheel_builds_cleanly_installs_trains_samples_and_serves_the_studio(tmp_path):
    # Build: no warnings from the build backend (setuptools names them ...Warning, framed by !!).
    built = run(sys.executable, "-m", "pip", "wheel", REPO, "--no-deps", "-w", tmp_path / "dist",
                cwd=tmp_path)
    assert built.returncode == 0, built.stdout + built.stderr
    output = built.stdout + built.stderr
    assert "Warning" not in output and "!!" not in output, output
    [wheel] = (tmp_path / "dist").glob("songgen-*.whl")

    # Install into a fresh environment, with the PyTorch this test runs on (the local build,
    # never a CUDA download).
    venv = tmp_path / "venv"
    made = run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    torch_pin = "torch==" + torch.__version__.split("+")[0]
    installed = run(bin_dir / "python", "-m", "pip", "install", "-q", torch_pin, wheel,
                    cwd=tmp_path, env=clean_env(), timeout=900)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    # Work in a folder without the source tree, so only the installed package can answer.
    work = tmp_path / "work"
    work.mkdir()
    where = run(bin_dir / "python", "-c", "import songgen; print(songgen.__file__)", cwd=work,
                env=clean_env())
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).resolve().is_relative_to(venv.resolve()), where.stdout

    songgen = bin_dir / "songgen"
    trained = run(songgen, "train", *TINY, "--steps", "3", "--checkpoint-dir", "ck", cwd=work,
                  env=clean_env())
    assert trained.returncode == 0, trained.stderr
    checkpoint = torch.load(work / "ck" / "last.pt", weights_only=True)
    assert checkpoint["step"] == 3
    assert "\n" in checkpoint["vocab"] and "#" in checkpoint["vocab"]  # the bundled songs

    sampled = run(songgen, "sample", "--checkpoint", "ck", "--length", "80", "--seed", "1",
                  cwd=work, env=clean_env())
    assert sampled.returncode == 0, sampled.stderr
    assert sampled.stdout.strip()

    server = subprocess.Popen([str(songgen), "serve", "--runs", ".", "--port", "0"], cwd=work,
                              env=clean_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        first = server.stderr.readline()
        url = re.search(r"http://\S+", first)
        assert url, first
        base = url.group(0).rstrip("/")
        with urllib.request.urlopen(base + "/", timeout=30) as page:
            html = page.read().decode()
        assert "<title>songgen studio</title>" in html
        for asset in re.findall(r'(?:href|src)="(/static/[^"]+)"', html):
            with urllib.request.urlopen(base + asset, timeout=30) as response:
                assert response.status == 200 and response.read(), asset
    finally:
        server.terminate()
        server.wait(timeout=30)
