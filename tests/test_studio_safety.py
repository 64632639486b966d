"""songgen studio against hostile pages, strange files and misbehaving clients (issue 26), and
the model it offers first (issue 28, item 4): real HTTP on 127.0.0.1 (and ::1), real sockets."""

import json
import os
import shutil
import socket
import struct
import threading
import time

import pytest

import songgen.writing.copycheck
from songgen.run import checkpoint as ckpt
from songgen.studio import server as studio_server
from songgen.studio.server import WRITE_LENGTH, Handler

from .studio_support import Client, events, metrics_line, slow_down, studio
from .studio_support import client, root, server  # noqa: F401 (fixtures)

CLIENT_TIMEOUT = 5  # seconds: every answer here comes at once, and a hang fails soon


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _writers_free(server, seconds: float) -> bool:
    return _wait(lambda: server.writers._value == studio_server.MAX_WRITERS, seconds)


# --- Other sites --------------------------------------------------------------------------

def test_a_post_from_another_site_is_refused(client, server):
    own = f"http://127.0.0.1:{server.server_address[1]}"
    small = {"model": "runA/best.pt", "length": 30}
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{server.server_address[1] + 1}",
                   f"https://127.0.0.1:{server.server_address[1]}"):
        status, data = client.write(small, headers={"Origin": origin})
        assert status == 403, origin
        assert data["error"] == "this studio only takes requests from its own page"
    assert client.write(small, headers={"Origin": own})[0] == 200
    assert client.write(small)[0] == 200  # not a browser: no Origin


def test_every_answer_forbids_framing_and_sniffing(client, server):
    def check(headers):
        assert headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"

    for path in ("/", "/static/studio.js", "/static/studio.css", "/api/models", "/api/runs",
                 "/api/metrics?run=runA", "/api/metrics?run=nothing", "/nothing"):
        conn = client.connect()
        conn.request("GET", path)
        res = conn.getresponse()
        res.read()
        check(res.headers)
        conn.close()
    for body in ({"model": "runA/best.pt", "length": 30}, {"model": "runA/best.pt", "top_p": 7}):
        conn, res = client.post(body)
        res.read()
        check(res.headers)
        conn.close()
    # An answer of http.server's own (a method it does not know).
    with socket.create_connection(server.server_address[:2], timeout=5) as s:
        s.sendall(b"BREW / HTTP/1.0\r\n\r\n")
        head = s.recv(65536).decode("latin-1")
    assert head.startswith("HTTP/1.0 501") and "X-Frame-Options: DENY" in head
    assert "X-Content-Type-Options: nosniff" in head


# --- Limits of a writing ------------------------------------------------------------------

def test_a_writing_stops_at_the_studio_s_time_limit(client, server, monkeypatch):
    slow_down(monkeypatch)
    server.write_seconds = 0.5
    started = time.monotonic()
    status, evs = client.write({"model": "runA/endless.pt", "num_songs": 2,
                                "length": WRITE_LENGTH, "temperature": 1.0, "seed": 1})
    assert status == 200 and time.monotonic() - started < 5
    assert evs[-1] == ("error", {"error": "the writing took more than 0.5 s, the studio's limit: "
                                          "write fewer or shorter songs (songgen sample has no "
                                          "time limit)"})
    assert _writers_free(server, 2)


def test_the_page_learns_the_studio_s_limits(client):
    limits = client.get("/api/models")[1]["limits"]
    assert limits == {"songs": 16, "length": 20_000, "retries": 10, "seconds": 120.0}
    status, data = client.write({"model": "runA/best.pt", "num_songs": 5000, "length": 500_000})
    assert status == 400 and "in the studio" in data["error"]


# --- Idle, stalled and departing clients ---------------------------------------------------

def _stalled(address, n):
    """n connections in each way of never finishing a request: silent, half a header, half a
    body."""
    conns = []
    for i in range(n):
        s = socket.create_connection(address, timeout=5)
        if i % 3 == 1:
            s.sendall(b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        elif i % 3 == 2:
            s.sendall(b"POST /api/write HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                      b"application/json\r\nContent-Length: 1000\r\n\r\n{\"model\": ")
        conns.append(s)
    return conns


def _closed_by_server(s) -> bool:
    s.settimeout(0.05)
    try:
        while s.recv(65536):  # whatever the server said before closing
            pass
        return True
    except socket.timeout:
        return False
    except OSError:
        return True


def test_idle_and_stalled_connections_leave_others_answered_and_are_closed(client, server):
    threads_before = threading.active_count()
    conns = _stalled(server.server_address[:2], 100)
    try:  # well within their 10 s to send a request, others are answered
        started = time.monotonic()
        assert client.get("/api/models")[0] == 200
        assert client.write({"model": "runA/best.pt", "length": 40, "seed": 1})[0] == 200
        assert time.monotonic() - started < 5
    finally:
        for s in conns:
            s.close()
    server.request_seconds = 0.5
    conns = _stalled(server.server_address[:2], 100)
    try:  # past their time, the server closes them all, and their threads end
        assert _wait(lambda: all(_closed_by_server(s) for s in conns), 10)
        assert _wait(lambda: threading.active_count() <= threads_before + 2, 10)
        assert client.get("/api/models")[0] == 200
    finally:
        for s in conns:
            s.close()


def test_a_full_studio_drops_the_stalled_first_then_says_busy(client, server, monkeypatch):
    server.max_connections = 8
    conns = _stalled(server.server_address[:2], 30)
    try:  # 30 stalled connections, 8 places: the stalled ones make room
        for _ in range(3):
            assert client.get("/api/models")[0] == 200
    finally:
        for s in conns:
            s.close()
    # Every place taken by requests being answered: a clear 503 at once.
    assert _wait(lambda: not server._open, 5)
    slow_down(monkeypatch)
    server.max_connections = 2
    held = [client.post({"model": "runA/endless.pt", "length": WRITE_LENGTH, "seed": i})
            for i in range(2)]
    for _, res in held:
        assert res.status == 200 and next(events(res))[0] == "start"
    status, data = client.get("/api/models")
    assert status == 503 and "try again in a moment" in data["error"]
    for conn, _ in held:
        conn.close()


def test_a_client_that_stops_reading_frees_its_place(server, monkeypatch):
    server.send_seconds = 0.5
    setup = Handler.setup

    def small_buffer(self):  # so that a client that reads nothing stalls the stream soon
        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        setup(self)

    monkeypatch.setattr(Handler, "setup", small_buffer)
    body = json.dumps({"model": "runA/endless.pt", "num_songs": 16, "length": WRITE_LENGTH,
                       "temperature": 1.0, "seed": 3}).encode()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(server.server_address[:2])
    s.sendall(b"POST /api/write HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
              b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    try:
        assert _wait(lambda: server.writers._value < studio_server.MAX_WRITERS, 5)
        assert _writers_free(server, 10), "a client that reads nothing kept its writing slot"
    finally:
        s.close()


def _reset(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # an RST: the client is gone at once


@pytest.mark.parametrize("request_bytes", [
    b"GET /api/nothing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /api/models HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"NONSENSE\r\n\r\n",
    b"POST /api/write HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 16\r\n\r\n{\"top_p\": 7.0}  ",
], ids=["404", "403", "200", "400-unreadable", "400-write"])
def test_a_client_that_leaves_before_its_answer_prints_nothing(server, monkeypatch, capfd,
                                                               request_bytes):
    end_headers, sent = Handler.end_headers, threading.Event()

    def late(self):  # the answer comes after the client has gone
        time.sleep(0.3)
        try:
            end_headers(self)
        finally:
            sent.set()

    monkeypatch.setattr(Handler, "end_headers", late)
    s = socket.create_connection(server.server_address[:2], timeout=5)
    s.sendall(request_bytes)
    time.sleep(0.1)
    _reset(s)
    assert sent.wait(5)
    time.sleep(0.3)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err, err


# --- Files -----------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_named_pipes_answer_an_error_at_once(tmp_path, root):
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    shutil.copy(root / "runA" / "best.pt", run / "best.pt")
    os.mkfifo(run / "metrics.jsonl")
    os.mkfifo(run / "pipe.pt")
    os.mkfifo(run / ".lock")
    with studio(tmp_path / "runs") as server:
        client = Client(server, timeout=5)
        status, data = client.get("/api/metrics?run=r")
        assert status == 400 and "metrics.jsonl is not a regular file (a named pipe" in \
            data["error"]
        runs = client.get("/api/runs")[1]["runs"]
        assert runs[0]["name"] == "r" and "not a regular file" in runs[0]["error"]
        assert runs[0]["checkpoint_step"] == 10 and not runs[0]["running"]
        names = [m["name"] for m in client.get("/api/models")[1]["models"]]
        assert names == ["r/best.pt"]
        status, data = client.write({"model": "r/pipe.pt"})
        assert status == 400 and data["error"] == ("'r/pipe.pt' is not a regular file (a named "
                                                   "pipe, a device, a socket or a folder)")


def test_links_out_are_refused_for_every_file(tmp_path, root):
    outside = tmp_path / "outside"
    shutil.copytree(root / "runA", outside)
    (outside / "metrics.jsonl").write_text(metrics_line(5, 2.5, 1.0))
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    for name in ("last.pt", "best.pt", "metrics.jsonl"):
        (run / name).symlink_to(outside / name)
    with studio(tmp_path / "runs") as server:
        client = Client(server, timeout=5)
        status, data = client.get("/api/metrics?run=r")
        assert status == 403 and "outside the runs folder" in data["error"]
        (entry,) = client.get("/api/runs")[1]["runs"]
        assert "outside the runs folder" in entry["error"]
        assert "checkpoint_step" not in entry and "corpus" not in entry  # nothing read outside
        assert client.get("/api/models")[1]["models"] == []


def test_the_folder_scan_has_a_depth_limit(tmp_path, root):
    shallow = tmp_path / "runs" / "a" / "b"
    deep = tmp_path / "runs" / "1" / "2" / "3" / "4" / "5" / "6"
    for folder in (shallow, deep):
        folder.mkdir(parents=True)
        shutil.copy(root / "runA" / "best.pt", folder / "best.pt")
    with studio(tmp_path / "runs") as server:
        client = Client(server, timeout=5)
        assert [m["name"] for m in client.get("/api/models")[1]["models"]] == ["a/b/best.pt"]
        assert [r["name"] for r in client.get("/api/runs")[1]["runs"]] == ["a/b"]


# --- The copy-check index ----------------------------------------------------------------

def _count_index_builds(monkeypatch, slow_for=None):
    built, building, release = [], threading.Event(), threading.Event()
    real = songgen.writing.copycheck.open_copy_index

    def counted(path, trained, max_copy=None, *args):
        built.append(max_copy)
        if slow_for is not None and max_copy == slow_for:  # slow: a large corpus
            building.set()
            release.wait(30)
        return real(path, trained, max_copy, *args)

    monkeypatch.setattr(songgen.writing.copycheck, "open_copy_index", counted)
    return built, building, release


def test_copy_indexes_are_shared_by_equal_limits_and_bounded(client, server, monkeypatch):
    built = _count_index_builds(monkeypatch)[0]
    base = {"model": "runA/best.pt", "length": 30, "seed": 1}
    for max_copy in (None, 11, 50, 10**9):  # all the same index: 12-character windows
        assert client.write({**base, "max_copy": max_copy})[0] == 200
    assert built == [None]
    for max_copy in (5, 3, 2):
        assert client.write({**base, "max_copy": max_copy})[0] == 200
    assert built == [None, 5, 3, 2]
    assert len(server.runs._indexes) == studio_server.MAX_INDEXES  # the oldest went
    assert client.write({**base, "max_copy": 2})[0] == 200
    assert built == [None, 5, 3, 2]  # the newest stayed


def test_an_index_being_built_does_not_hold_up_other_models(server, monkeypatch):
    built, building, release = _count_index_builds(monkeypatch, slow_for=3)
    slow = threading.Thread(target=Client(server, timeout=40).write,
                            args=({"model": "runA/best.pt", "length": 30, "max_copy": 3},))
    slow.start()
    try:  # while one index is built, another model loads (runB's here) and writes
        assert building.wait(10)
        started = time.monotonic()
        status, evs = Client(server, timeout=20).write({"model": "group/runB/best.pt",
                                                        "length": 30, "originality": False})
        assert status == 200 and evs[-1][0] == "done" and time.monotonic() - started < 10
    finally:
        release.set()
        slow.join(30)
    assert built == [3]


# --- Addresses ---------------------------------------------------------------------------

def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_loopback_is_served_as_local(root, capsys, monkeypatch):
    with studio(root, host="::1") as server:
        assert server.local_only and server.token is None
        assert server.url == f"http://[::1]:{server.server_address[1]}/"
        client = Client(server, timeout=5)
        status, data = client.get("/api/models")
        assert status == 200 and data["models"]
        assert client.write({"model": "runA/best.pt", "length": 30},
                            headers={"Origin": f"http://[::1]:{server.server_address[1]}"}
                            )[0] == 200


def test_all_of_127_is_this_computer(root, capsys, monkeypatch):
    def interrupted(self, poll_interval=0.5):
        raise KeyboardInterrupt

    with studio(root, host="127.0.0.2") as server:
        assert server.local_only and server.token is None
        client = Client(server, timeout=5)
        assert client.get("/api/models")[0] == 200  # Host: 127.0.0.2:port
        assert client.get("/api/models", headers={"Host": "localhost"})[0] == 200
        assert client.get("/api/models", headers={"Host": "evil.example"})[0] == 403
    monkeypatch.setattr(studio_server.StudioServer, "serve_forever", interrupted)
    studio_server.serve(root, host="127.0.0.2", port=0)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("songgen studio: http://127.0.0.2:")
    assert lines[1] == "Bound to 127.0.0.2: only this computer can open it."


def test_beyond_loopback_a_token_is_needed_and_host_still_checked(root):
    with studio(root, host="0.0.0.0") as server:
        token, port = server.token, server.server_address[1]
        assert token and len(token) >= 24
        # After "#": a browser never sends it to a server (nor in a Referer).
        assert server.url == f"http://127.0.0.1:{port}/#token={token}"
        client = Client(server, timeout=5)
        client.host = "127.0.0.1"
        status, data = client.get("/api/models")
        assert status == 403 and data["error"] == (
            "this studio asks for its token: open the address it printed when it started (it "
            "ends in #token=...)")
        assert client.get(f"/api/models?token={token[:-1]}x")[0] == 403
        # The page itself holds no secret: it loads without the token, and sets no cookie
        # (a browser would send a cookie to every other server on this computer too).
        conn = client.connect()
        conn.request("GET", "/")
        res = conn.getresponse()
        assert res.status == 200 and b"songgen studio" in res.read()
        assert res.getheader("Set-Cookie") is None
        conn.close()
        by_token = {"Authorization": f"token {token}"}
        assert client.get("/api/models", headers=by_token)[0] == 200
        assert client.get(f"/api/models?token={token}")[0] == 200  # for scripts
        assert client.get("/api/models", headers={
            "Cookie": f"songgen-studio-{port}={token}"})[0] == 403  # a cookie counts for nothing
        assert client.write({"model": "runA/best.pt", "length": 30},
                            headers={**by_token, "Origin": f"http://127.0.0.1:{port}"})[0] == 200
        assert client.write({"model": "runA/best.pt", "length": 30})[0] == 403  # no token
        # A rebound name, even with the token: refused.
        status, data = client.get("/api/models", headers={**by_token, "Host": "evil.example"})
        assert status == 403 and "own names and addresses" in data["error"]
        assert client.get("/api/models", headers={**by_token,
                                                  "Host": f"{socket.gethostname()}:{port}"}
                          )[0] == 200


# --- The model offered first (issue 28, item 4) ------------------------------------------

def test_models_offer_sample_s_choice_each_with_its_own_score(tmp_path, root):
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    source = ckpt.load(root / "runA" / "last.pt")  # evaluated at steps 5 and 10
    first = source.history[0]["val_loss"]
    best = ckpt.load(root / "runA" / "last.pt")
    best.step, best.history, best.best_val_loss = 5, source.history[:1], first
    ckpt.save(best, run / "best.pt")
    last = ckpt.load(root / "runA" / "last.pt")
    last.history[-1] = {**last.history[-1], "val_loss": first + 0.5}  # worse than best.pt
    last.best_val_loss = first
    ckpt.save(last, run / "last.pt")
    stopped = ckpt.load(root / "runA" / "last.pt")
    stopped.step = 12  # saved at a Ctrl-C between two evaluations
    ckpt.save(stopped, run / "step-000000012.pt")
    hour_ago = time.time() - 3600
    os.utime(run / "best.pt", (hour_ago, hour_ago))  # the oldest file
    with studio(tmp_path / "runs") as server:
        data = Client(server, timeout=5).get("/api/models")[1]
    assert data["models"][-1]["name"] == "r/best.pt"
    assert data["default"] == "r/best.pt"  # what songgen sample --checkpoint r uses
    models = {m["name"]: m for m in data["models"]}
    assert models["r/best.pt"]["val_loss"] == pytest.approx(first)
    assert models["r/last.pt"]["val_loss"] == pytest.approx(first + 0.5)
    assert models["r/last.pt"]["best_val_loss"] == pytest.approx(first)  # the run's, not its
    assert models["r/step-000000012.pt"]["val_loss"] is None
    # Without best.pt, last.pt.
    (run / "best.pt").unlink()
    with studio(tmp_path / "runs") as server:
        assert Client(server, timeout=5).get("/api/models")[1]["default"] == "r/last.pt"
