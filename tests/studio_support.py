"""Shared by the studio tests: a folder of tiny trained runs, a studio server on an ephemeral
port in a thread, and a small HTTP client that reads Server-Sent Events; and the fixtures made
of them (`root`, `server`, `client`), which a test module imports to use."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from pathlib import Path

import pytest

from .conftest import make_songs


def train_run(folder: Path, corpus: Path, steps: int = 10, seed: int = 0) -> Path:
    from songgen import TrainConfig, train

    config = TrainConfig(seq_len=16, batch_size=4, eval_every=5, device="cpu", patience=0,
                         checkpoint_dir=str(folder), steps=steps, seed=seed)
    train(corpus, model={"embed_dim": 8, "hidden_size": 16, "layers": 1, "dropout": 0.0},
          config=config, quiet=True)
    return folder


def make_runs(root: Path) -> Path:
    """root/runA (10 steps) and root/group/runB (5 steps), both on root/songs.txt."""
    root.mkdir(parents=True, exist_ok=True)
    corpus = root / "songs.txt"
    corpus.write_text(make_songs(), encoding="utf-8")
    train_run(root / "runA", corpus, steps=10)
    train_run(root / "group" / "runB", corpus, steps=5, seed=1)
    endless(root / "runA" / "best.pt", root / "runA" / "endless.pt")
    return root


def endless(source: Path, target: Path) -> None:
    """A copy of a checkpoint whose model never ends a song: long writings for the tests."""
    from songgen.run import checkpoint as ckpt

    checkpoint = ckpt.load(source)
    checkpoint.model_state["head.bias"][0] = -1e4
    checkpoint.shape = None  # unshaped: nothing steers it to an end either
    ckpt.save(checkpoint, target)


@contextlib.contextmanager
def studio(root: Path, host: str = "127.0.0.1"):
    from songgen.studio import make_server

    server = make_server(root, host, 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A folder of tiny runs (`make_runs`), made once for a test module."""
    return make_runs(tmp_path_factory.mktemp("runs"))


@pytest.fixture
def server(root):
    """A studio serving `root`, for one test."""
    with studio(root) as s:
        yield s


@pytest.fixture
def client(server, request):
    """A client of `server` that waits at most the test module's CLIENT_TIMEOUT seconds for an
    answer (20 where the module sets none)."""
    return Client(server, timeout=getattr(request.module, "CLIENT_TIMEOUT", 20))


class Client:
    def __init__(self, server, timeout: float = 20):
        self.host, self.port = server.server_address[:2]
        self.timeout = timeout

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def get(self, path: str, headers: dict | None = None):
        conn = self.connect()
        conn.request("GET", path, headers=headers or {})
        res = conn.getresponse()
        body = res.read()
        conn.close()
        ctype = res.getheader("Content-Type") or ""
        return res.status, json.loads(body) if ctype.startswith("application/json") else body

    def post(self, body, path: str = "/api/write", raw: bytes | None = None,
             ctype: str = "application/json", headers: dict | None = None):
        """Send a write request; return (connection, response) with the body unread."""
        conn = self.connect()
        data = raw if raw is not None else json.dumps(body).encode()
        conn.request("POST", path, body=data, headers={"Content-Type": ctype, **(headers or {})})
        return conn, conn.getresponse()

    def write(self, body, headers: dict | None = None):
        """The whole answer: (status, JSON error) or (200, [(event, data), ...])."""
        conn, res = self.post(body, headers=headers)
        try:
            if res.status != 200:
                return res.status, json.loads(res.read())
            return 200, list(events(res))
        finally:
            conn.close()


def slow_down(monkeypatch, seconds: float = 0.001) -> None:
    """Writings a step at most every `seconds`: a tiny model writes the studio's longest song
    in a moment, and some tests need one that lasts."""
    import songgen.writing.sampling

    write_live = songgen.writing.sampling.write_live

    def slow(*args, **kwargs):
        gen = write_live(*args, **kwargs)
        try:
            for event in gen:
                if event[0] == "chars":
                    time.sleep(seconds)
                yield event
        finally:
            gen.close()

    monkeypatch.setattr(songgen.writing.sampling, "write_live", slow)


def hang_up(res) -> None:
    """Close a streamed answer as a closed browser tab does."""
    import socket

    res.fp.raw._sock.shutdown(socket.SHUT_RDWR)
    res.close()


def events(res):
    """Server-Sent Events of a response as (kind, data), in order, as they arrive."""
    kind, data = None, []
    while True:
        line = res.fp.readline()
        if not line:
            return
        line = line.decode("utf-8").rstrip("\n")
        if not line:
            if kind is not None:
                yield kind, json.loads("".join(data))
            kind, data = None, []
        elif line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])


def metrics_line(step: int, val: float, elapsed: float) -> str:
    return json.dumps({"step": step, "epoch": 1, "train_loss": val + 0.1, "val_loss": val,
                       "val_bpc": val / 0.6931471805599453, "chars_per_sec": 1000, "lr": 0.003,
                       "elapsed": elapsed}) + "\n"
