"""The studio's web server: the page, the checkpoints and runs under one folder, songs streamed
as Server-Sent Events while the model writes them, and the runs' metrics for live curves.

Python's ThreadingHTTPServer, one thread per connection, at most MAX_CONNECTIONS of them: a
connection has REQUEST_SECONDS to send its whole request (or it is closed), and one that has
not finished sending it is the first to go when the server is full, so idle or stalled clients
cannot shut others out. A stream writes each step's characters as it comes, so a closed tab
fails the next write (BrokenPipe / ConnectionReset) and a tab that stops reading fails it after
SEND_SECONDS; its generator is closed at once. At most MAX_WRITERS song batches are written at a
time (further requests get HTTP 429), each within the studio's own limits (WRITE_SONGS,
WRITE_LENGTH, WRITE_RETRIES, WRITE_SECONDS), well below the command line's. A write that asks
for the trace (the model's choices at each character, songgen/writing/trace.py) gets it for the
first TRACE_CHARS characters of each song.

Bound to a loopback address (127.0.0.0/8, ::1) it answers only requests naming such a host (a
page from elsewhere reaching the port through a rebound DNS name names another one); bound
beyond, it also asks for a token printed at start. Either way a POST must come from its own page
(Origin), and no other site may frame it. Every file it opens is inside the runs folder and a
regular file. Nothing here writes to the runs folder.

This module holds the studio's routes (Handler) and its server; the HTTP plumbing (connection
limits, headers, the host, token and origin checks) is httpserver.py, the runs folder runs.py,
and what a write request may ask write_request.py.
"""

from __future__ import annotations

import errno
import html
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
import webbrowser
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .. import __version__
from ..errors import SonggenError
from .httpserver import (GONE, MAX_CONNECTIONS, REQUEST_SECONDS, SEND_SECONDS,  # noqa: F401
                         GuardedHandler, HTTPProblem, LimitedServer, ip_of, is_loopback,
                         json_bytes)
from .runs import (MAX_INDEXES, MAX_MODELS, SCAN_DEPTH, Runs, checkpoint_summary,  # noqa: F401
                   default_model)
from .write_request import (MAX_TEXT, WRITE_LENGTH, WRITE_RETRIES, WRITE_SECONDS,  # noqa: F401
                            WRITE_SONGS, make_request, parse_write)

MAX_BODY = 64 * 1024          # bytes of a request body
MAX_WRITERS = 2               # song batches written at the same time
_STATIC = {"index.html": "text/html; charset=utf-8", "studio.js": "text/javascript; charset=utf-8",
           "studio.css": "text/css; charset=utf-8",
           "inside.js": "text/javascript; charset=utf-8"}
EXPLAIN_TEXT = 5_000          # characters of a text the Inside view explains
TRACE_CHARS = EXPLAIN_TEXT    # characters of each song a write traces (then null): as many


class StudioServer(LimitedServer):
    """The studio's server: its runs folder, its writers, and who may ask (the host names of
    this computer, and a token beyond loopback)."""

    write_seconds = WRITE_SECONDS

    def __init__(self, address, runs: Runs, family: int = socket.AF_INET, names=()):
        self.address_family = family
        self.runs = runs
        self.writers = threading.BoundedSemaphore(MAX_WRITERS)
        self.stopping = threading.Event()
        super().__init__(address, Handler)
        self.local_only = is_loopback(self.server_address[0])
        # Beyond this computer: a token for every request to the API (like Jupyter's), which
        # the page keeps in its tab (sessionStorage: this port's alone, unlike a cookie); and
        # only this computer's names in Host.
        self.token = None if self.local_only else secrets.token_urlsafe(24)
        self.names = {"localhost", socket.gethostname().lower(), self.server_name.lower(),
                      *(n.lower() for n in names)}

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        ip = ip_of(host)
        if ip is not None and ip.is_unspecified:  # all addresses: this computer's own will do
            host = "127.0.0.1" if ip.version == 4 else "::1"
        shown = f"[{host}]" if ":" in host else host
        # After "#": a browser never sends it, so it stays out of logs and Referer headers.
        return f"http://{shown}:{port}/" + (f"#token={self.token}" if self.token else "")

    def host_allowed(self, host: str) -> bool:
        if self.local_only:
            return is_loopback(host)
        return ip_of(host) is not None or host in self.names

class Handler(GuardedHandler):
    """The studio's pages and API: the page's files, the models, runs and metrics, and
    writing songs as a stream of events."""

    server: StudioServer
    server_version = f"songgen-studio/{__version__}"

    def _get(self) -> None:
        self.server.received(self.connection)
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        self._guard(query, token_needed=url.path.startswith("/api/"))
        if url.path in ("/", "/index.html"):
            return self._static("index.html")
        if url.path.startswith("/static/"):
            return self._static(url.path[len("/static/"):])
        if url.path == "/favicon.ico":  # none: said without an error in the browser's console
            return self._send(204, b"", "image/x-icon")
        self._same_site()
        runs = self.server.runs
        if url.path == "/api/models":
            models = runs.checkpoints()
            return self._json({"root": str(runs.given), "models": models,
                               "default": default_model(models), "limits": {
                                   "songs": WRITE_SONGS, "length": WRITE_LENGTH,
                                   "retries": WRITE_RETRIES,
                                   "seconds": self.server.write_seconds}})
        if url.path == "/api/runs":
            return self._json({"root": str(runs.given), "runs": runs.runs()})
        if url.path == "/api/metrics":
            return self._json(runs.metrics((query.get("run") or [""])[0]))
        raise HTTPProblem(404, f"no page {url.path}")

    def _post(self) -> None:
        url = urlsplit(self.path)
        self._guard(parse_qs(url.query))
        self._same_site()
        self._same_origin()
        if url.path == "/api/explain":  # the Inside view (songgen/inside/steps.py)
            return self._explain(self._body())
        if url.path != "/api/write":
            raise HTTPProblem(404, f"no page {url.path}")
        body = self._body()
        self.server.received(self.connection)
        self._write(body)

    def _static(self, name: str) -> None:
        if name not in _STATIC:
            raise HTTPProblem(404, f"no file {name}")
        data = resources.files("songgen.studio").joinpath("static", name).read_bytes()
        self._send(200, data, _STATIC[name])

    def _body(self):
        # A page's JSON only: a form from another site cannot send this type without asking
        # first (and this server never says yes).
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise HTTPProblem(415, "send the request as JSON (Content-Type: application/json)")
        try:
            size = int(self.headers.get("Content-Length") or "")
        except ValueError:
            raise HTTPProblem(411, "the request needs a Content-Length") from None
        if size > MAX_BODY:
            raise HTTPProblem(413, f"the request is too large ({size:,} bytes; at most "
                                   f"{MAX_BODY // 1024} KB): shorten the opening text")
        if size < 0:
            raise HTTPProblem(400, "bad Content-Length")
        raw = self.rfile.read(size)
        if len(raw) < size:
            raise ConnectionResetError("the request ended early")
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError:
            raise HTTPProblem(400, "the request is not valid JSON") from None

    # Writing songs
    def _write(self, body) -> None:
        """A write, or the co-write page's next-line ideas (more_lines)."""
        runs = self.server.runs
        options = parse_write(body)
        path = runs.resolve(options.pop("model"), suffix=".pt")
        if not self.server.writers.acquire(blocking=False):
            raise HTTPProblem(429, f"{MAX_WRITERS} writings are already running: wait for one "
                                   "to finish (or stop it), then press Write again")
        try:
            try:
                trained = runs.model(path)
            except SonggenError as exc:
                raise HTTPProblem(400, str(exc)) from None
            title, prime = options.pop("title"), options.pop("prime")
            unknown = trained.vocab.unknown(title + prime)
            if unknown:
                shown = ", ".join(repr(c) for c in unknown[:20])
                raise HTTPProblem(400, f"the opening text has characters the model never saw: "
                                       f"{shown}; remove or replace them", unknown=unknown)
            index = None
            if options.pop("originality"):
                try:
                    index = runs.copy_index(trained, options["max_copy"])
                except SonggenError as exc:
                    raise HTTPProblem(400, str(exc)) from None
            self._stream(trained, path, make_request(options, title, prime, index), index)
        finally:
            self.server.writers.release()

    def _explain(self, body) -> None:
        """The model's choices at each character of a pasted text, and what the sampling
        steps did to them: one JSON answer, computed in a writer's slot."""
        from ..inside.steps import explain_steps

        options = parse_write({k: v for k, v in body.items() if k != "text"}
                              if isinstance(body, dict) else body)
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise HTTPProblem(400, "paste a text to explain")
        if len(text) > EXPLAIN_TEXT:
            raise HTTPProblem(400, f"the text is too long to explain here ({len(text):,} "
                                   f"characters; at most {EXPLAIN_TEXT:,}): explain a part of "
                                   "it, or use songgen explain")
        path = self.server.runs.resolve(options["model"], suffix=".pt")
        if not self.server.writers.acquire(blocking=False):
            raise HTTPProblem(429, f"{MAX_WRITERS} writings are already running: wait for one "
                                   "to finish (or stop it), then explain again")
        try:
            try:
                trained = self.server.runs.model(path)
                found = explain_steps(trained, text, temperature=options["temperature"],
                                      top_k=options["top_k"], top_p=options["top_p"],
                                      length=options["length"])
            except SonggenError as exc:
                raise HTTPProblem(400, str(exc)) from None
        finally:
            self.server.writers.release()
        self._json(found)

    def _stream(self, trained, path: Path, request, index) -> None:
        from ..writing.record import song_record
        from ..writing.sampling import write_live

        name = self.server.runs.name_of(path)
        try:
            events = write_live(trained, request, copy_index=index)
            first = next(events)  # the model's checks (the prime's length, ...) run here, first
        except SonggenError as exc:
            raise HTTPProblem(400, str(exc)) from None
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        start, chars = time.monotonic(), 0
        limit = self.server.write_seconds
        send = self._event
        traced = [0] * request.num_songs  # characters of each song traced so far
        try:
            send("start", {"seed": request.seed, "prime": first[1],
                           "num_songs": request.num_songs, "model": name, "step": trained.step,
                           "originality": index is not None})
            for event in events:
                if self.server.stopping.is_set():
                    break
                kind = event[0]
                if kind == "chars":
                    chars += sum(len(c) for c in event[1] if c)
                    send("chars", event[1])
                    if len(event) > 2:  # asked for: each new character's trace
                        send("trace", _traces(event[2], traced, trained.vocab.chars))
                elif kind == "song":
                    send("song", song_record(event[1], name, trained.step))
                else:  # retry / dropped: the song copied too much
                    traced[event[1] - 1] = 0
                    send(kind, {"number": event[1], "copy": event[2].length})
                if time.monotonic() - start > limit:
                    send("error", {"error": f"the writing took more than {limit:g} s, the "
                                            "studio's limit: write fewer or shorter songs "
                                            "(songgen sample has no time limit)"})
                    break
            else:
                send("done", {"chars": chars, "seconds": round(time.monotonic() - start, 3)})
        except GONE:
            pass  # the page went away or stopped reading: stop writing
        except Exception as exc:  # the answer has begun: say it as an event, not a status
            what = str(exc) if isinstance(exc, SonggenError) else \
                f"the studio failed: {type(exc).__name__}: {exc}"
            if not isinstance(exc, SonggenError):
                print(f"songgen studio: writing failed: {what}", file=sys.stderr, flush=True)
            try:
                send("error", {"error": what})
            except OSError:
                pass
        finally:
            events.close()
            self.close_connection = True

    def _event(self, kind: str, data) -> None:
        self.wfile.write(f"event: {kind}\ndata: ".encode() + json_bytes(data) + b"\n\n")
        self.wfile.flush()


def _traces(found: list, traced: list[int], chars: list[str]) -> list:
    """A step's traces as the page gets them: per song None (no new text) or one per new
    character, null past the first TRACE_CHARS of a song (the studio's cap: a trace is some
    hundreds of bytes)."""
    out = []
    for i, traces in enumerate(found):
        if traces is None:
            out.append(None)
            continue
        room = max(TRACE_CHARS - traced[i], 0)
        traced[i] += len(traces)
        out.append([t.as_json(chars) for t in traces[:room]]
                   + [None] * max(len(traces) - room, 0))
    return out


def make_server(runs: str | Path = "checkpoints", host: str = "127.0.0.1",
                port: int = 8000) -> StudioServer:
    """A studio server bound to host:port (port 0: any free port), not yet serving. Beyond
    loopback addresses it asks for `server.token` (in `server.url`)."""
    folder = Runs(runs)
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise SonggenError(f"cannot listen on {host}: {getattr(exc, 'strerror', None) or exc}; "
                           "give an address of this computer, such as 127.0.0.1 or ::1") from None
    try:
        return StudioServer(address, folder, family, names=[host] if host else [])
    except OSError as exc:
        advice = ("choose another port" if exc.errno == errno.EADDRINUSE else
                  "give an address of this computer, such as 127.0.0.1 or ::1")
        raise SonggenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                           f"{advice}") from None


def serve(runs: str | Path = "checkpoints", host: str = "127.0.0.1", port: int = 8000,
          open_browser: bool = False) -> None:
    """Serve the studio until Ctrl-C (which ends it cleanly)."""
    import torch

    # One thread per writing: a one-character step is too small to share between threads,
    # and two writings at once then use two cores. With PyTorch's default (a thread per core)
    # a busy machine made writing 30-100x slower (3 songs of 400 characters, 2x128 model,
    # 2 cores under load: 20-29 s against 0.2-0.7 s).
    torch.set_num_threads(1)
    server = make_server(runs, host, port)
    say = lambda text: print(text, file=sys.stderr, flush=True)
    say(f"songgen studio: {server.url}  (the runs in {runs}; Ctrl-C stops it)")
    if server.local_only:
        say(f"Bound to {host}: only this computer can open it.")
    else:
        say(f"Warning: bound to {host}: anyone on the network who can reach this computer on "
            f"port {server.server_address[1]} and has the token in the address above can use "
            "the studio (and its CPU); the connection is not encrypted.")
    opener = None
    if open_browser:
        opener = _opener(server.url) if server.token else None
        threading.Timer(0.3, webbrowser.open, args=(opener.as_uri() if opener else server.url,)
                        ).start()
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        say("Stopped.")
    finally:
        server.stopping.set()
        server.server_close()
        if opener is not None:
            shutil.rmtree(opener.parent, ignore_errors=True)


def _opener(url: str) -> Path:
    """A page that sends the browser on to `url`, readable by this user alone: a browser's
    command line is readable by every user of the computer, so the token must not be on it."""
    folder = Path(tempfile.mkdtemp(prefix="songgen-studio-"))  # made 0700
    page = folder / "open.html"
    fd = os.open(page, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "w", encoding="utf-8") as f:
        f.write(f'<!doctype html><meta charset="utf-8"><meta name="referrer" content="no-referrer">'
                f'<meta http-equiv="refresh" content="0;url={html.escape(url)}">'
                f'<a href="{html.escape(url)}">songgen studio</a>\n')
    return page
