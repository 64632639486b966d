"""songgen studio against files and pages made to hurt it (#38): a checkpoint that names a
training text outside the runs folder, odd names and numbers in what it lists, a folder name
with a backslash, pages of other sites, metrics too large to read, and the token kept off
other servers and other users' sight."""

import json
import os
import shutil
import stat
import threading
import time
import webbrowser
from pathlib import Path

import pytest

import songgen.writing.copycheck
from songgen.run import checkpoint as ckpt
from songgen.studio import runs as studio_runs
from songgen.studio import server as studio_server

from .studio_support import Client, make_runs, studio


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return make_runs(tmp_path_factory.mktemp("runs"))


@pytest.fixture
def root(built, tmp_path):
    """A fresh copy of the runs, for a test to add its hostile files to."""
    copy = tmp_path / "runs"
    shutil.copytree(built, copy)
    return copy


def _strict(body: bytes):
    """JSON as a browser's parser reads it: NaN and Infinity are errors."""
    def refuse(name):
        raise ValueError(f"{name} in the answer")
    return json.loads(body.decode("utf-8"), parse_constant=refuse)


def _get_raw(server, path: str, headers: dict | None = None):
    conn = Client(server, timeout=10).connect()
    conn.request("GET", path, headers=headers or {})
    res = conn.getresponse()
    body = res.read()
    conn.close()
    return res.status, body


def _variant(root: Path, name: str, **changes) -> Path:
    """A copy of runA's best.pt at root/name, with fields changed."""
    checkpoint = ckpt.load(root / "runA" / "best.pt")
    for key, value in changes.items():
        setattr(checkpoint, key, value)
    target = root / name
    target.parent.mkdir(parents=True, exist_ok=True)
    ckpt.save(checkpoint, target)
    return target


# --- The training text a checkpoint names (item 3) ----------------------------------------

def _indexed(monkeypatch) -> list:
    calls = []
    real = songgen.writing.copycheck.open_copy_index

    def counted(path, trained, max_copy=None, *args):
        calls.append(str(path))
        return real(path, trained, max_copy, *args)
    monkeypatch.setattr(songgen.writing.copycheck, "open_copy_index", counted)
    return calls


def _originality(server, model: str) -> bool:
    status, answer = Client(server, timeout=30).write({"model": model, "length": 40,
                                                       "originality": True})
    assert status == 200, answer
    return dict(answer)["start"]["originality"]


def test_a_checkpoint_naming_a_file_outside_the_runs_folder_does_not_have_it_read(
        root, tmp_path, monkeypatch):
    secret = tmp_path / "hostname"
    secret.write_text("not lyrics\n")
    _variant(root, "odd/best.pt", corpus=str(secret))
    _variant(root, "whole/best.pt", corpus="/")
    _variant(root, "inside/best.pt", corpus=str(root / "songs.txt"))
    calls = _indexed(monkeypatch)
    with studio(root) as server:
        started = time.monotonic()
        assert _originality(server, "odd/best.pt") is False
        assert _originality(server, "whole/best.pt") is False
        assert time.monotonic() - started < 20
        assert calls == []
        # The run's own text, inside the runs folder, is indexed as before.
        assert _originality(server, "inside/best.pt") is True
        assert calls == [str(root / "songs.txt")]


def test_a_text_outside_the_runs_folder_is_read_only_when_bounded(root, tmp_path,
                                                                  monkeypatch):
    outside = tmp_path / "lyrics.txt"
    shutil.copy(root / "songs.txt", outside)
    _variant(root, "out/best.pt", corpus=str(outside))
    calls = _indexed(monkeypatch)
    with studio(root) as server:
        assert _originality(server, "out/best.pt") is True  # the very text it was trained on
        monkeypatch.setattr(studio_runs, "OUTSIDE_BYTES", outside.stat().st_size - 1)
        _variant(root, "out2/best.pt", corpus=str(outside))
        assert _originality(server, "out2/best.pt") is False
    assert calls == [str(outside)]


# --- Odd entries (item 4) and a backslash in a name (item 8) -------------------------------

def test_odd_entries_are_listed_each_on_its_own_in_strict_json(root):
    best = root / "runA" / "best.pt"
    checkpoint = ckpt.load(best)
    _variant(root, "nan/best.pt", best_val_loss=float("nan"),
             history=[{**h, "val_loss": float("inf")} for h in checkpoint.history] +
             [{"step": checkpoint.step, "val_loss": float("nan")}])
    _variant(root, "sur/best.pt", vocab=checkpoint.vocab[:-1] + ["\ud800"])
    odd = os.path.join(os.fsencode(root), b"bad\xff")
    os.mkdir(odd)
    shutil.copy(best, os.path.join(odd, b"best.pt"))
    (root / "nan" / "metrics.jsonl").write_text('{"step": 5, "val_loss": NaN}\n'
                                                '{"step": 6, "val_loss": 1.5, "lr": Infinity}\n')
    with studio(root) as server:
        for path in ("/api/models", "/api/runs", "/api/metrics?run=nan"):
            status, body = _get_raw(server, path)
            assert status == 200, body
            data = _strict(body)
        models = {m["name"]: m for m in _strict(_get_raw(server, "/api/models")[1])["models"]}
        assert models["nan/best.pt"]["best_val_loss"] is None
        assert models["nan/best.pt"]["val_loss"] is None
        assert models["sur/best.pt"]["chars"].endswith("\\ud800")
        assert models["bad\\udcff/best.pt"]["error"] == \
            "its name is not valid UTF-8: rename it to use it here"
        assert "error" not in models["runA/best.pt"]
        runs = {r["name"]: r for r in _strict(_get_raw(server, "/api/runs")[1])["runs"]}
        assert runs["bad\\udcff"]["error"].startswith("its name is not valid UTF-8")
        assert "error" not in runs["runA"]
        assert data["records"][-1]["lr"] is None


def test_a_run_folder_whose_name_holds_a_backslash_opens(root):
    if os.sep == "\\":
        pytest.skip("a backslash separates folders here")
    shutil.copytree(root / "runA", root / "a\\b")
    with studio(root) as server:
        client = Client(server, timeout=10)
        status, data = client.get("/api/metrics?run=a%5Cb")
        assert status == 200, data
        assert data["name"] == "a\\b" and data["records"]
        status, answer = client.write({"model": "a\\b/best.pt", "length": 30})
        assert status == 200, answer


# --- Cheap requests that cost work (item 9) ------------------------------------------------

def test_pages_of_other_sites_may_not_make_it_read(root):
    with studio(root) as server:
        client = Client(server, timeout=10)
        for site in ("cross-site", "same-site"):
            for path in ("/api/models", "/api/runs", "/api/metrics?run=runA"):
                status, data = client.get(path, headers={"Sec-Fetch-Site": site})
                assert status == 403 and data["error"] == "this studio only answers its own page"
        for site in ("same-origin", "none"):
            assert client.get("/api/models", headers={"Sec-Fetch-Site": site})[0] == 200
        assert client.get("/", headers={"Sec-Fetch-Site": "cross-site"})[0] == 200  # a link


def test_one_request_reads_a_bounded_metrics_file(root):
    line = b'{"step": 1, "val_loss": 2.0, "padding": "' + b"x" * 1000 + b'"}\n'
    (root / "runA" / "metrics.jsonl").write_bytes(line * (studio_runs.MAX_METRICS // len(line)
                                                          + 10))
    with studio(root) as server:
        client = Client(server, timeout=10)
        status, data = client.get("/api/metrics?run=runA")
        assert status == 400 and data["error"].startswith(
            "runA/metrics.jsonl is too large to show (8 MB; the studio reads at most 8 MB)")
        runs = {r["name"]: r for r in client.get("/api/runs")[1]["runs"]}
        assert "too large to show" in runs["runA"]["error"] and "error" not in runs["group/runB"]


# --- The token (item 5) ----------------------------------------------------------------------

def test_open_hands_the_browser_a_private_page_not_the_token(built, monkeypatch):
    opened, seen = [], {}

    def serve_briefly(self, poll_interval=0.5):
        deadline = time.monotonic() + 10
        while not opened and time.monotonic() < deadline:
            time.sleep(0.05)
        page = Path(opened[0].removeprefix("file://"))
        seen.update(text=page.read_text(), mode=stat.S_IMODE(page.stat().st_mode),
                    folder=stat.S_IMODE(page.parent.stat().st_mode), token=self.token,
                    page=page)
        raise KeyboardInterrupt

    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url))
    monkeypatch.setattr(studio_server.StudioServer, "serve_forever", serve_briefly)
    studio_server.serve(built, host="0.0.0.0", port=0, open_browser=True)
    assert opened[0].startswith("file://") and seen["token"] not in opened[0]
    assert seen["mode"] == 0o600 and seen["folder"] == 0o700
    assert f"#token={seen['token']}" in seen["text"]
    assert not seen["page"].exists()  # removed when the studio stops


def test_loopback_open_passes_the_plain_address(built, monkeypatch):
    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url))

    def serve_briefly(self, poll_interval=0.5):
        deadline = time.monotonic() + 10
        while not opened and time.monotonic() < deadline:
            time.sleep(0.05)
        raise KeyboardInterrupt

    monkeypatch.setattr(studio_server.StudioServer, "serve_forever", serve_briefly)
    studio_server.serve(built, port=0, open_browser=True)
    assert opened and opened[0].startswith("http://127.0.0.1:")


def test_the_studio_never_sets_a_cookie(built):
    with studio(built, host="0.0.0.0") as server:
        client = Client(server, timeout=10)
        client.host = "127.0.0.1"
        for path in ("/", f"/?token={server.token}", f"/api/models?token={server.token}"):
            conn = client.connect()
            conn.request("GET", path)
            res = conn.getresponse()
            res.read()
            conn.close()
            assert res.status == 200 and res.getheader("Set-Cookie") is None, path
    assert threading.active_count() >= 1


def test_the_listing_refuses_a_compressed_checkpoint_without_inflating_it(root):
    from .checkpoint_support import rezip

    (root / "packed").mkdir()
    rezip(root / "packed" / "best.pt", source=root / "runA" / "best.pt", padding=64 << 20,
          compress=True)
    with studio(root) as server:
        models = {m["name"]: m for m in Client(server, timeout=10).get("/api/models")[1]["models"]}
        assert models["packed/best.pt"]["error"] == "unreadable (UnreadableCheckpoint)"
        assert "error" not in models["runA/best.pt"]
