"""songgen studio's HTTP API, against a real server on 127.0.0.1 and an ephemeral port."""

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import songgen.writing.sampling
from songgen.writing.sampling import generate, write_live

from songgen.studio.server import WRITE_LENGTH

from .studio_support import Client, events, hang_up, metrics_line, slow_down, studio
from .studio_support import client, root, server  # noqa: F401 (fixtures)


def test_models_lists_every_checkpoint_with_step_loss_and_date(client, root):
    status, data = client.get("/api/models")
    assert status == 200
    names = {m["name"] for m in data["models"]}
    assert {"runA/best.pt", "runA/last.pt", "group/runB/best.pt"} <= names
    a = next(m for m in data["models"] if m["name"] == "runA/last.pt")
    assert a["step"] == 10 and a["best_val_loss"] > 0 and a["date"]
    assert a["corpus"] == str((root / "songs.txt").resolve()) and a["corpus_available"]


def test_songs_stream_in_order_and_match_generate(client, root):
    body = {"model": "runA/best.pt", "num_songs": 3, "length": 120, "seed": 5, "title": "Rain"}
    status, evs = client.write(body)
    assert status == 200
    kinds = [k for k, _ in evs]
    assert kinds[0] == "start" and kinds[-1] == "done"
    first_song = kinds.index("song")
    assert set(kinds[1:first_song]) == {"chars"} and set(kinds[first_song:-1]) == {"song"}
    prime = evs[0][1]["prime"]
    assert prime == "# Rain\n\n" and evs[0][1]["seed"] == 5
    # Each song's characters, streamed step by step, make up its text.
    streamed = [prime] * 3
    for kind, data in evs:
        if kind == "chars":
            streamed = [s + (c or "") for s, c in zip(streamed, data)]
    songs = [d for k, d in evs if k == "song"]
    expected = generate(str(root / "runA" / "best.pt"), num_songs=3, length=120, seed=5,
                        prime=prime, device="cpu")
    assert [s["text"] for s in songs] == [s.text for s in expected]
    for text, song in zip(streamed, songs):
        assert text.rstrip("\n") == song["text"].rstrip("\n")
        assert song["copy"]["length"] >= 0  # the corpus is here: every song is checked


def test_write_live_gives_the_songs_generate_gives(root):
    path = root / "runA" / "best.pt"
    for options in ({"num_songs": 2, "seed": 1, "length": 200},
                    {"num_songs": 1, "seed": 2, "length": 300, "max_lines": 2, "top_k": 5}):
        live = [e[1] for e in write_live(str(path), device="cpu", **options) if e[0] == "song"]
        assert [s.text for s in live] == [s.text for s in generate(str(path), device="cpu",
                                                                   **options)]


def test_next_line_ideas_stop_after_one_new_line(client):
    prime = "# Home\n\nlove the river\n"
    status, evs = client.write({"model": "runA/best.pt", "prime": prime, "num_songs": 4,
                                "more_lines": 1, "seed": 3, "length": 400,
                                "temperature": 1.0})
    assert status == 200
    ideas = [d["text"][len(prime):] for k, d in evs if k == "song"]
    assert len(ideas) == 4
    for idea, song in zip(ideas, [d for k, d in evs if k == "song"]):
        assert song["text"].startswith(prime)
        if song["stop"] == "max-lines":
            assert len([line for line in idea.split("\n") if line.strip()]) == 1


def test_a_closed_tab_stops_its_generation_at_once(client, server, monkeypatch):
    steps, closed = [0], []

    def counting(*args, **kwargs):
        gen = write_live(*args, **kwargs)
        try:
            for event in gen:
                if event[0] == "chars":
                    steps[0] += 1
                    time.sleep(0.0005)  # a longer writing than a tiny model's 20,000 steps
                yield event
        finally:
            closed.append((time.monotonic(), steps[0]))
            gen.close()

    monkeypatch.setattr(songgen.writing.sampling, "write_live", counting)
    conn, res = client.post({"model": "runA/endless.pt", "num_songs": 1, "length": WRITE_LENGTH,
                             "temperature": 1.0, "seed": 1})
    assert res.status == 200
    stream = events(res)
    for _ in range(20):
        next(stream)
    at_close = steps[0]
    hang_up(res)
    t0 = time.monotonic()
    while not closed and time.monotonic() - t0 < 5:
        time.sleep(0.005)
    assert closed, "the generator was not closed after the client went away"
    # A step or two for the disconnect to be seen, plus those already in flight.
    assert closed[0][1] - at_close < 200, (at_close, closed)
    assert closed[0][0] - t0 < 1.0
    # ... and its place under the bound is free again.
    deadline = time.monotonic() + 2
    while server.writers._value != 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.writers._value == 2


@pytest.mark.parametrize("change, message", [
    ({"temperature": -1}, "temperature must be a number from 0 to 100"),
    ({"temperature": "hot"}, "temperature must be a number"),
    ({"temperature": 101}, "temperature"),
    ({"top_p": 0}, "top p must be a number above 0"),
    ({"top_p": 1.5}, "top p"),
    ({"top_k": -1}, "top k must be a whole number from 0"),
    ({"num_songs": 0}, "num songs must be a whole number from 1 to 16 in the studio (songgen "
                       "sample allows more)"),
    ({"num_songs": 17}, "num songs must be a whole number from 1 to 16"),
    ({"num_songs": 2.5}, "num songs"),
    ({"num_songs": True}, "num songs"),
    ({"length": 0}, "length must be a whole number from 1 to 20,000 in the studio"),
    ({"length": 20_001}, "length must be a whole number from 1 to 20,000"),
    ({"retries": 11}, "retries must be a whole number from 0 to 10 in the studio"),
    ({"prime": "love " * 4001}, "prime is too long (over 20,000 characters)"),
    ({"seed": -1}, "seed must be a whole number from 0"),
    ({"max_lines": 0}, "max lines"),
    ({"max_copy": 1}, "max copy"),
    ({"title": 7}, "title must be text"),
    ({"colour": "red"}, "unknown parameter 'colour'"),
    ({"prime": "caf\u00e9 \u2603"}, "characters the model never saw"),
    ({"prime": "love " * 30, "length": 50}, "is as long as the length limit"),
    ({"model": ""}, "give a checkpoint"),
    ({"model": "runA/metrics.jsonl"}, "is not a .pt file"),
])
def test_bad_parameters_get_400_with_a_message(client, change, message):
    status, data = client.write({"model": "runA/best.pt", **change})
    assert status == 400, data
    assert message in data["error"]


def test_unknown_characters_are_listed(client):
    status, data = client.write({"model": "runA/best.pt", "prime": "love \u00e9\u00e9 \u2603"})
    assert status == 400 and data["unknown"] == ["\u00e9", "\u2603"]


def test_bodies_that_are_not_small_json_are_refused(client):
    conn, res = client.post(None, raw=b"x" * (65 * 1024))
    assert res.status == 413 and "too large" in json.loads(res.read())["error"]
    conn, res = client.post(None, raw=b"{not json")
    assert res.status == 400 and json.loads(res.read())["error"] == "the request is not valid JSON"
    conn, res = client.post(None, raw=b'{"model": "runA/best.pt"}', ctype="text/plain")
    assert res.status == 415


@pytest.mark.parametrize("name", ["../runs/runA/best.pt", "runA/../../etc/passwd", "/etc/passwd",
                                  "C:/x.pt", "runA/../../../x.pt", ".hidden/best.pt"])
def test_names_outside_the_runs_folder_are_refused(client, name):
    status, data = client.write({"model": name})
    assert status == 400 and "error" in data


def test_absolute_paths_and_symlinks_out_are_refused(tmp_path, root):
    outside = tmp_path / "outside"
    shutil.copytree(root / "runA", outside)
    inner = tmp_path / "runs"
    (inner / "run").mkdir(parents=True)
    shutil.copy(root / "runA" / "best.pt", inner / "run" / "best.pt")
    (inner / "run" / "escape.pt").symlink_to(outside / "best.pt")
    (inner / "linked").symlink_to(outside, target_is_directory=True)
    with studio(inner) as server:
        client = Client(server)
        names = {m["name"] for m in client.get("/api/models")[1]["models"]}
        assert names == {"run/best.pt"}  # neither link is offered
        assert client.write({"model": str(outside / "best.pt")})[0] == 400
        for name in ("run/escape.pt", "linked/best.pt"):
            status, data = client.write({"model": name})
            assert status == 403 and "outside the runs folder" in data["error"]
        status, data = client.get("/api/metrics?run=linked")
        assert status == 403
        status, data = client.get("/api/metrics?run=..")
        assert status == 400
        assert client.write({"model": "run/best.pt", "length": 30})[0] == 200


def test_requests_naming_another_host_are_refused(client):
    status, data = client.get("/api/models", headers={"Host": "evil.example:8000"})
    assert status == 403


def test_two_writings_at_a_time_the_rest_get_429(client, server, monkeypatch):
    slow_down(monkeypatch)
    long = {"model": "runA/endless.pt", "length": WRITE_LENGTH, "temperature": 1.0}
    held = [client.post({**long, "seed": i}) for i in range(2)]
    for _, res in held:
        assert res.status == 200
        next(events(res))
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: client.write({**long, "seed": 10 + i}), range(4)))
    for status, data in answers:
        assert status == 429 and "wait for one to finish" in data["error"]
    for _, res in held:
        hang_up(res)
    deadline = time.monotonic() + 3
    while server.writers._value != 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.write({"model": "runA/best.pt", "length": 40, "seed": 1})[0] == 200


def test_many_parallel_clients_are_all_answered(client):
    barrier = threading.Barrier(8)

    def one(i):
        barrier.wait()
        return client.write({"model": "runA/best.pt", "num_songs": 2, "length": 600,
                             "seed": i})

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(8)))
    assert time.monotonic() - started < 30
    for status, data in answers:
        assert status in (200, 429)
        if status == 200:
            assert data[-1][0] == "done" and len([k for k, _ in data if k == "song"]) == 2
    assert any(status == 200 for status, _ in answers)


def test_metrics_update_live_and_skip_a_half_written_line(tmp_path):
    run = tmp_path / "live"
    run.mkdir()
    with studio(tmp_path) as server:
        client = Client(server)
        assert client.get("/api/metrics?run=live")[1]["records"] == []
        stop = threading.Event()

        def writer():  # another "training run" appending as it goes
            with open(run / "metrics.jsonl", "a") as f:
                for step in range(1, 6):
                    f.write(metrics_line(step * 10, 3.0 - step * 0.1, step * 1.5))
                    f.flush()
                    time.sleep(0.02)
                f.write(metrics_line(60, 2.0, 9.0)[:25])  # half-written
                f.flush()
                stop.wait(5)
                f.write(metrics_line(60, 2.0, 9.0)[25:])

        thread = threading.Thread(target=writer)
        thread.start()
        seen = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status, data = client.get("/api/metrics?run=live")
            assert status == 200
            seen.append(len(data["records"]))
            if seen[-1] == 5:
                break
            time.sleep(0.01)
        assert seen[-1] == 5 and data["best_val_loss"] == pytest.approx(2.5)
        assert seen == sorted(seen)
        time.sleep(0.1)
        assert len(client.get("/api/metrics?run=live")[1]["records"]) == 5  # not the half line
        stop.set()
        thread.join()
        data = client.get("/api/metrics?run=live")[1]
        assert [r["step"] for r in data["records"]][-1] == 60 and data["step"] == 60
        runs = {r["name"]: r for r in client.get("/api/runs")[1]["runs"]}
        assert runs["live"]["evaluations"] == 6 and not runs["live"]["running"]


def test_a_run_holding_its_lock_shows_as_running(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "metrics.jsonl").write_text(metrics_line(5, 2.5, 1.0))
    with studio(tmp_path) as server:
        client = Client(server)
        with open(run / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            lock.write(f"pid {os.getpid()}")
            lock.flush()
            data = client.get("/api/metrics?run=r")[1]
            assert data["running"] and data["pid"] == os.getpid()
            # The studio never takes the lock: a training run could start at any instant.
        data = client.get("/api/metrics?run=r")[1]
        assert not data["running"]
        # The lock file stays after a run with its pid: still not running.
        assert (run / ".lock").read_text() == f"pid {os.getpid()}"


def test_a_replaced_checkpoint_is_reloaded(tmp_path, root):
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    shutil.copy(root / "group" / "runB" / "best.pt", run / "best.pt")
    with studio(tmp_path / "runs") as server:
        client = Client(server)
        assert client.write({"model": "r/best.pt", "length": 30})[1][0][1]["step"] == 5
        tmp = run / ".best.pt.tmp"
        shutil.copy(root / "runA" / "last.pt", tmp)
        os.replace(tmp, run / "best.pt")  # as a running train does
        assert client.write({"model": "r/best.pt", "length": 30})[1][0][1]["step"] == 10
        assert client.get("/api/models")[1]["models"][0]["step"] == 10


def test_the_page_and_its_files_are_served(client):
    status, html = client.get("/")
    assert status == 200 and b"songgen studio" in html and b"/static/studio.js" in html
    for name in ("studio.js", "studio.css"):
        assert client.get(f"/static/{name}")[0] == 200
    assert client.get("/static/../server.py")[0] == 404
    assert b"http://" not in html.replace(b"http://www.w3.org", b"")  # nothing from the internet


def test_serve_says_where_and_who_can_reach_it(root, capsys, monkeypatch):
    from songgen.studio import server as studio_server

    def interrupted(self, poll_interval=0.5):
        raise KeyboardInterrupt

    monkeypatch.setattr(studio_server.StudioServer, "serve_forever", interrupted)
    studio_server.serve(root, port=0)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("songgen studio: http://127.0.0.1:")
    assert lines[1] == "Bound to 127.0.0.1: only this computer can open it."
    assert lines[2] == "Stopped."


def test_serve_on_all_interfaces_warns_and_stops_cleanly_on_ctrl_c(root):
    """The real command in its own process: the URL, the warning, the page, Ctrl-C -> exit 0."""
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "songgen", "serve", "--runs", str(root),
                             "--port", "0", "--host", "0.0.0.0"], stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        first = proc.stderr.readline()
        assert first.startswith("songgen studio: http://127.0.0.1:"), first
        second = proc.stderr.readline()
        assert second.startswith("Warning: bound to 0.0.0.0: anyone on the network"), second
        assert b"songgen studio" in urllib.request.urlopen(first.split()[2], timeout=10).read()
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=10)[1]
        assert proc.returncode == 0 and "Traceback" not in rest and "Stopped." in rest
    finally:
        if proc.poll() is None:
            proc.kill()
