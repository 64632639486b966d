"""The studio's web server: the page, the checkpoints and runs under one folder, songs streamed
as Server-Sent Events while the model writes them, and the runs' metrics for live curves.

Python's ThreadingHTTPServer, one thread per connection, at most MAX_CONNECTIONS of them: a
connection has REQUEST_SECONDS to send its whole request (or it is closed), and one that has
not finished sending it is the first to go when the server is full, so idle or stalled clients
cannot shut others out. A stream writes each step's characters as it comes, so a closed tab
fails the next write (BrokenPipe / ConnectionReset) and a tab that stops reading fails it after
SEND_SECONDS; its generator is closed at once. At most MAX_WRITERS song batches are written at a
time (further requests get HTTP 429), each within the studio's own limits (WRITE_SONGS,
WRITE_LENGTH, WRITE_RETRIES, WRITE_SECONDS), well below the command line's.

Bound to a loopback address (127.0.0.0/8, ::1) it answers only requests naming such a host (a
page from elsewhere reaching the port through a rebound DNS name names another one); bound
beyond, it also asks for a token printed at start. Either way a POST must come from its own page
(Origin), and no other site may frame it. Every file it opens is inside the runs folder and a
regular file. Nothing here writes to the runs folder.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import math
import os
import secrets
import socket
import stat
import sys
import threading
import time
import webbrowser
from datetime import datetime, timezone
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, urlsplit

from .. import __version__
from ..checkpoint import peek
from ..curves import METRICS, find_runs, read_metrics, run_summary
from ..errors import SonggenError
from ..config import MAX_SEED, MAX_TEMPERATURE

MAX_BODY = 64 * 1024          # bytes of a request body
MAX_WRITERS = 2               # song batches written at the same time
# One writing from the page: `songgen sample` allows 10,000 songs of 1,000,000 characters and
# 100 retries; a page (or a page from elsewhere) must not keep the computer busy for hours.
WRITE_SONGS = 16
WRITE_LENGTH = 20_000         # characters of a song, its opening included
WRITE_RETRIES = 10            # writings again of a song that copied too much
WRITE_SECONDS = 120.0         # then the writing stops with an error event
MAX_TEXT = WRITE_LENGTH       # characters of a title or an opening text
MAX_MODELS = 4                # loaded models kept in memory
MAX_INDEXES = 2               # copy-check indexes kept (each about 20 bytes per corpus character)
SCAN_DEPTH = 4                # folder levels below the runs folder searched
MAX_CONNECTIONS = 128         # served at a time
REQUEST_SECONDS = 10.0        # to send a whole request: line, headers and body
SEND_SECONDS = 30.0           # a client that takes nothing of an answer this long is dropped
_STATIC = {"index.html": "text/html; charset=utf-8", "studio.js": "text/javascript; charset=utf-8",
           "studio.css": "text/css; charset=utf-8"}
# The page's own files only; inline styles are the SVG chart's and swatches' colours.
_CSP = ("default-src 'self'; style-src 'self' 'unsafe-inline'; object-src 'none'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_GONE = (ConnectionError, TimeoutError)  # the client left or stopped reading


class HTTPProblem(Exception):
    """An answer other than 200: status and a plain message (sent as JSON {"error": ...})."""

    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


# --- What a checkpoint records --------------------------------------------------------------

def checkpoint_summary(checkpoint) -> dict:
    """What the page shows of a checkpoint (a songgen.checkpoint.Checkpoint)."""
    from ..styles import style_names

    best = checkpoint.best_val_loss
    # The file's own score: the evaluation made at its step (none when it was saved between
    # two, at a Ctrl-C); the run's best so far may be another file's.
    own = next((h["val_loss"] for h in reversed(checkpoint.history)
                if h["step"] == checkpoint.step), None)
    train = checkpoint.train_config.to_dict() if checkpoint.train_config else {}
    return {
        "step": checkpoint.step, "epoch": checkpoint.epoch,
        "val_loss": own, "val_bpc": None if own is None else own / math.log(2),
        "best_val_loss": best, "best_val_bpc": None if best is None else best / math.log(2),
        "corpus": checkpoint.corpus, "songgen_version": checkpoint.songgen_version,
        "model": checkpoint.model_config.to_dict(),
        "training": {k: v for k, v in train.items() if isinstance(v, (int, float, str, bool))
                     or v is None},
        "chars": "".join(checkpoint.vocab[1:]),  # the first symbol is the end-of-song one
        "styles": style_names(checkpoint),  # for the style picker (songgen.styles)
    }


# --- The runs folder --------------------------------------------------------------------------

class Runs:
    """The checkpoints and training runs under one folder, with loaded models cached per file
    (reloaded when the file changes: a running train replaces best.pt atomically)."""

    def __init__(self, root: str | Path):
        self.given = Path(root)
        if not self.given.is_dir():
            raise SonggenError(f"no folder at {self.given}: give the folder that holds your "
                               "training runs (checkpoint folders)")
        self.root = self.given.resolve()
        self._lock = threading.Lock()        # the loaded models
        self._index_lock = threading.Lock()  # the copy-check indexes (slow to build)
        self._summaries: dict[Path, tuple] = {}
        self._models: dict[Path, tuple] = {}
        self._indexes: dict[tuple, object] = {}

    # Names the page uses are paths relative to the root, with "/" between folders.
    def name_of(self, path: Path) -> str:
        return PurePosixPath(*path.relative_to(self.root).parts).as_posix()

    def resolve(self, name, suffix: str | None = None) -> Path:
        """A path under the root from a name the page sent; nothing outside it, ever."""
        if not isinstance(name, str) or not name or "\x00" in name:
            raise HTTPProblem(400, "give a checkpoint or run by its name in the list")
        parts = PurePosixPath(name.replace("\\", "/"))
        if parts.is_absolute() or ".." in parts.parts or (len(name) > 1 and name[1] == ":"):
            raise HTTPProblem(400, f"{name!r} is not a name under the runs folder: absolute "
                                   "paths and '..' are refused")
        if any(p.startswith(".") for p in parts.parts if p != "."):
            raise HTTPProblem(400, f"{name!r} is a hidden file or folder")
        path = self.inside(self.root / parts, name)
        if path is None:
            raise HTTPProblem(404, f"nothing called {name!r} in the runs folder")
        if suffix is not None:
            if path.suffix != suffix:
                raise HTTPProblem(400, f"{name!r} is not a {suffix} file")
            self.regular(path, name)
        return path

    def inside(self, path: Path, name: str | None = None) -> Path | None:
        """The real path of `path` (None if there is nothing there), refused (403) if it leads
        outside the root."""
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if real != self.root and self.root not in real.parents:
            name = name or self.name_of(path)
            raise HTTPProblem(403, f"{name!r} leads outside the runs folder (a symbolic link?); "
                                   "only what is inside it can be used")
        return real

    def regular(self, real: Path, name: str) -> os.stat_result:
        """Its status, refused (400) unless a regular file: a named pipe would hang a reader."""
        st = real.stat()
        if not stat.S_ISREG(st.st_mode):
            raise HTTPProblem(400, f"{name!r} is not a regular file (a named pipe, a device, a "
                                   "socket or a folder)")
        return st

    def _usable(self, path: Path) -> tuple[Path, os.stat_result] | None:
        """(real path, status) of a file found by a scan, or None where it may not be opened."""
        try:
            real = self.inside(path)
            return None if real is None else (real, self.regular(real, path.name))
        except (HTTPProblem, OSError):
            return None

    def checkpoints(self) -> list[dict]:
        """Every checkpoint in the run folders under the root, newest first."""
        found = []
        for folder in find_runs(self.root, SCAN_DEPTH):
            try:
                names = sorted(os.listdir(folder))
            except OSError:
                continue
            for f in names:
                if f.endswith(".pt") and not f.startswith("."):
                    usable = self._usable(folder / f)
                    if usable is not None:  # not a link out, a pipe or a folder
                        found.append(self._describe(folder / f, *usable))
        found.sort(key=lambda c: (-c["mtime"], c["name"]))
        return found

    @staticmethod
    def default(checkpoints: list[dict]) -> str | None:
        """The checkpoint `songgen sample --checkpoint RUN` uses, RUN being the run of the newest
        file: its best.pt, else its last.pt (else the newest file)."""
        usable = [c for c in checkpoints if "error" not in c]
        if not usable:
            return None
        run = usable[0]["run"]
        names = {c["name"] for c in usable}
        for f in ("best.pt", "last.pt"):
            name = f if run == "." else f"{run}/{f}"
            if name in names:
                return name
        return usable[0]["name"]

    def _describe(self, path: Path, real: Path, st: os.stat_result) -> dict:
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self._summaries.get(path)
        if cached and cached[0] == key:
            return cached[1]
        entry = {"name": self.name_of(path), "run": self.name_of(path.parent) or ".",
                 "file": path.name, "mtime": st.st_mtime, "size": st.st_size,
                 "date": datetime.fromtimestamp(st.st_mtime, timezone.utc).astimezone()
                 .strftime("%Y-%m-%d %H:%M")}
        try:
            entry.update(checkpoint_summary(peek(real)))
            corpus = entry.get("corpus")
            entry["corpus_available"] = bool(corpus) and Path(corpus).exists()
        except Exception as exc:  # a damaged or half-copied file: listed, not usable
            entry["error"] = f"unreadable ({type(exc).__name__})"
        self._summaries[path] = (key, entry)
        return entry

    def model(self, path: Path):
        """The loaded checkpoint, from the cache while the file is unchanged."""
        from .. import load_checkpoint

        with self._lock:
            st = path.stat()
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
            cached = self._models.get(path)
            if cached and cached[0] == key:
                return cached[1]
            trained = load_checkpoint(path, device="cpu")
            self._models.pop(path, None)
            self._models[path] = (key, trained)
            while len(self._models) > MAX_MODELS:  # the least recently loaded goes
                self._models.pop(next(iter(self._models)))
            return trained

    def copy_index(self, trained, max_copy: int | None):
        """The plagiarism index of the model's corpus (cached), or None if it is not here.
        Limits that need the same index share it; the least recently used goes first."""
        from ..copycheck import copy_window, open_copy_index

        corpus = trained.checkpoint.corpus
        if not corpus or not Path(corpus).exists():
            return None
        key = (corpus, trained.checkpoint.fingerprint, copy_window(max_copy))
        with self._index_lock:
            index = self._indexes.pop(key, None)
            if index is None:
                index = open_copy_index(corpus, trained, max_copy)
            self._indexes[key] = index
            while len(self._indexes) > MAX_INDEXES:
                self._indexes.pop(next(iter(self._indexes)))
            return index

    def runs(self) -> list[dict]:
        out = []
        for folder in find_runs(self.root, SCAN_DEPTH):
            name = self.name_of(folder) or "."
            try:
                records = self._metrics(folder, name)
                entry = {"name": name, **run_summary(folder, records)}
            except (HTTPProblem, SonggenError) as exc:  # listed, with what is wrong
                entry = {"name": name, "error": getattr(exc, "message", str(exc)),
                         **run_summary(folder, [])}
            for f in ("last.pt", "best.pt"):
                usable = self._usable(folder / f)
                if usable is not None:
                    s = self._describe(folder / f, *usable)
                    entry.update(corpus=s.get("corpus"), model=s.get("model"),
                                 training=s.get("training"), checkpoint_step=s.get("step"))
                    break
            out.append(entry)
        return out

    def _metrics(self, folder: Path, name: str) -> list[dict]:
        path = folder / METRICS
        real = self.inside(path, f"{name}/{METRICS}")
        if real is None:
            return []  # no evaluation yet
        return read_metrics(real)  # refuses a pipe at once

    def metrics(self, name) -> dict:
        folder = self.resolve(name)
        if not folder.is_dir():
            raise HTTPProblem(400, f"{name!r} is not a run folder")
        try:
            records = self._metrics(folder, name)
        except SonggenError as exc:
            raise HTTPProblem(400, str(exc)) from None
        return {"name": name, "records": records, **run_summary(folder, records)}


# --- Parameters -------------------------------------------------------------------------------

def _int(body, key, lo, hi, default=None, none_ok=False, studio=False):
    value = body.get(key, default)
    if value is None and none_ok:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        top = "" if hi >= 2**62 else f" to {hi:,}"
        raise HTTPProblem(400, f"{key.replace('_', ' ')} must be a whole number from {lo:,}{top}"
                          + (" (or empty)" if none_ok else "")
                          + (" in the studio (songgen sample allows more)" if studio else ""))
    return value


def _float(body, key, lo, hi, default, lo_open=False):
    value = body.get(key, default)
    if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
            or not (lo < value if lo_open else lo <= value) or value > hi):
        raise HTTPProblem(400, f"{key.replace('_', ' ')} must be a number "
                          f"{'above' if lo_open else 'from'} {lo:g} {'and at most' if lo_open else 'to'} "
                          f"{hi:g}")
    return float(value)


def _text(body, key):
    value = body.get(key) or ""
    if not isinstance(value, str):
        raise HTTPProblem(400, f"{key} must be text")
    if len(value) > MAX_TEXT:
        raise HTTPProblem(400, f"{key} is too long (over {MAX_TEXT:,} characters)")
    return value


_WRITE_KEYS = {"model", "temperature", "top_k", "top_p", "num_songs", "length", "max_lines",
               "more_lines", "seed", "title", "prime", "originality", "max_copy", "retries",
               "rhyme", "chorus", "words", "style"}


def parse_write(body) -> dict:
    """The options of a write request, checked against the command line's limits and the
    studio's own, lower ones for the number of songs, their length and the retries."""
    if not isinstance(body, dict):
        raise HTTPProblem(400, "the request must be a JSON object")
    unknown = sorted(set(body) - _WRITE_KEYS)
    if unknown:
        raise HTTPProblem(400, f"unknown parameter {unknown[0]!r}")
    options = {
        "temperature": _float(body, "temperature", 0, MAX_TEMPERATURE, 0.8),
        "top_k": _int(body, "top_k", 0, 2**63 - 1, 0),
        "top_p": _float(body, "top_p", 0, 1, 1.0, lo_open=True),
        "num_songs": _int(body, "num_songs", 1, WRITE_SONGS, 1, studio=True),
        "length": _int(body, "length", 1, WRITE_LENGTH, 3000, studio=True),
        "max_lines": _int(body, "max_lines", 1, 2**63 - 1, none_ok=True),
        "more_lines": _int(body, "more_lines", 1, 10_000, none_ok=True),
        "seed": _int(body, "seed", 0, MAX_SEED, none_ok=True),
        "max_copy": _int(body, "max_copy", 2, 2**63 - 1, none_ok=True),
        "retries": _int(body, "retries", 0, WRITE_RETRIES, 5, studio=True),
    }
    options.update(_craft(body))
    originality = body.get("originality", True)
    if not isinstance(originality, bool):
        raise HTTPProblem(400, "originality must be true or false")
    if options["max_copy"] is not None and not originality:
        raise HTTPProblem(400, "max copy needs the originality check")
    return {**options, "model": body.get("model"), "title": _text(body, "title"),
            "prime": _text(body, "prime"), "originality": originality,
            "style": _text(body, "style").strip() or None}  # a name or a blend (songgen.styles)


def _craft(body) -> dict:
    """Rhyme pattern, chorus and the share of free words (songgen/songcraft.py)."""
    from ..songcraft import check_pattern

    rhyme, chorus = body.get("rhyme", "auto"), body.get("chorus", "auto")
    if not isinstance(rhyme, str) or not isinstance(chorus, str):
        raise HTTPProblem(400, "rhyme and chorus must be text")
    try:
        rhyme = check_pattern(rhyme)
    except SonggenError as exc:
        raise HTTPProblem(400, str(exc)) from None
    if chorus not in ("auto", "off"):
        raise HTTPProblem(400, "chorus must be auto or off")
    return {"rhyme": rhyme, "chorus": chorus, "words": _float(body, "words", 0, 1, 0.01)}


def _song_json(song) -> dict:
    copy = song.copy
    return {"number": song.number, "text": song.text, "title": song.title, "stop": song.stop,
            "chars": song.chars, "bits_per_char": round(song.bits_per_char, 4), "seed": song.seed,
            "copy": None if copy is None else {"length": copy.length, "text": copy.text,
                                               "start": song.text.find(copy.text) if copy.length
                                               else -1},
            "craft": song.analysis}


# --- Who may ask ------------------------------------------------------------------------------

def _ip(host: str):
    try:
        return ipaddress.ip_address(host.split("%")[0])  # an IPv6 zone is not the address
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """Whether `host` is this computer only: the name localhost, 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    ip = _ip(host)
    if ip is None:
        return False
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def _host_of(header: str | None) -> str:
    """The host a request names: "[::1]:8000" -> "::1", "Example.org:80" -> "example.org"."""
    value = (header or "").strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else ""
    return value.partition(":")[0]


def _hang_up(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)  # its thread's read ends at once
    except OSError:  # already closed
        pass


# --- HTTP -------------------------------------------------------------------------------------

_SAFETY = {"X-Frame-Options": "DENY", "Content-Security-Policy": _CSP,
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


class StudioServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64  # socketserver's 5 drops connections of a burst: 1 s to retry each
    max_connections = MAX_CONNECTIONS
    request_seconds = REQUEST_SECONDS
    send_seconds = SEND_SECONDS
    write_seconds = WRITE_SECONDS

    def __init__(self, address, runs: Runs, family: int = socket.AF_INET, names=()):
        self.address_family = family
        self.runs = runs
        self.writers = threading.BoundedSemaphore(MAX_WRITERS)
        self.stopping = threading.Event()
        # Each open connection -> when its request must have arrived (None: it has).
        self._open: dict[socket.socket, float | None] = {}
        self._open_lock = threading.Lock()
        self._refused: list[tuple[float, socket.socket]] = []  # closed at a later poll
        super().__init__(address, Handler)
        self.local_only = is_loopback(self.server_address[0])
        # Beyond this computer: a token for every request (like Jupyter's), kept in a cookie
        # once the page is opened with it; and only this computer's names in Host.
        self.token = None if self.local_only else secrets.token_urlsafe(24)
        self.cookie = f"songgen-studio-{self.server_address[1]}"
        self.names = {"localhost", socket.gethostname().lower(), self.server_name.lower(),
                      *(n.lower() for n in names)}

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        ip = _ip(host)
        if ip is not None and ip.is_unspecified:  # all addresses: this computer's own will do
            host = "127.0.0.1" if ip.version == 4 else "::1"
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/" + (f"?token={self.token}" if self.token else "")

    def host_allowed(self, host: str) -> bool:
        if self.local_only:
            return is_loopback(host)
        return _ip(host) is not None or host in self.names

    # Connections: bounded in number and in the time to send a request.
    def process_request(self, request, client_address):
        with self._open_lock:
            full, oldest = len(self._open) >= self.max_connections, None
            if full:  # the connection waiting longest for its request makes room
                waiting = [(d, s) for s, d in self._open.items() if d is not None]
                if waiting:
                    oldest = min(waiting, key=lambda w: w[0])[1]
                    self._open[oldest] = None
            if not full or oldest is not None:
                self._open[request] = time.monotonic() + self.request_seconds
        if oldest is not None:
            _hang_up(oldest)
        elif full:
            return self._refuse(request)
        try:
            super().process_request(request, client_address)
        except Exception:  # no thread to be had
            self._forget(request)
            self.shutdown_request(request)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    def _forget(self, request) -> None:
        with self._open_lock:
            self._open.pop(request, None)

    def received(self, request) -> None:
        """The request has arrived whole: no longer timed, no longer the first to go."""
        with self._open_lock:
            if request in self._open:
                self._open[request] = None

    def service_actions(self):
        """At every poll of serve_forever: close connections past their time for a request."""
        now = time.monotonic()
        with self._open_lock:
            late = [s for s, d in self._open.items() if d is not None and d < now]
            for s in late:
                self._open[s] = None
        for s in late:
            _hang_up(s)
        # Refused connections: what their clients sent is read and dropped before closing,
        # since closing with unread data resets the connection, and the answer with it.
        for item in [r for r in self._refused if r[0] < now]:
            self._refused.remove(item)
            try:
                for _ in range(16):  # a bounded read: a client may send without end
                    if not item[1].recv(65536):
                        break
            except OSError:
                pass
            item[1].close()

    def server_close(self):
        super().server_close()
        for _, request in self._refused:
            request.close()

    def _refuse(self, request) -> None:
        """Full of requests being answered: say so at once, without a thread."""
        body = json.dumps({"error": "the studio is answering as many requests as it can; try "
                                    "again in a moment"}).encode()
        head = "".join(f"{k}: {v}\r\n" for k, v in {
            "Content-Type": "application/json; charset=utf-8", "Content-Length": len(body),
            "Retry-After": 1, "Connection": "close", **_SAFETY}.items())
        try:
            request.setblocking(False)  # never wait for this client here
            request.send(f"HTTP/1.0 503 Service Unavailable\r\n{head}\r\n".encode() + body)
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if len(self._refused) < self.max_connections:
            self._refused.append((time.monotonic() + 0.2, request))
        else:
            request.close()

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return  # the client left, stalled or broke the connection: no one to tell
        print(f"songgen studio: a request failed: {type(exc).__name__}: {exc}", file=sys.stderr,
              flush=True)


class Handler(BaseHTTPRequestHandler):
    server: StudioServer
    server_version = f"songgen-studio/{__version__}"
    new_cookie = False

    def setup(self):
        self.timeout = self.server.send_seconds  # on the socket: a stalled client fails a send
        super().setup()

    def log_message(self, format, *args):  # the terminal shows the URL, not every request
        pass

    def end_headers(self):
        for k, v in _SAFETY.items():
            self.send_header(k, v)
        if self.new_cookie:
            self.send_header("Set-Cookie", f"{self.server.cookie}={self.server.token}; Path=/; "
                                           "HttpOnly; SameSite=Strict")
        super().end_headers()

    # Answers
    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data, status: int = 200) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode("utf-8"),
                   "application/json; charset=utf-8")

    def _answer(self, handle) -> None:
        try:
            try:
                handle()
            except HTTPProblem as exc:
                self._json({"error": exc.message, **exc.extra}, exc.status)
            except SonggenError as exc:
                self._json({"error": str(exc)}, 400)
        except _GONE:  # the client left while it was answered: nothing to tell anyone
            self.close_connection = True
        except Exception as exc:  # a bug or a file changing under us: answer, do not hang
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        print(f"songgen studio: {self.command} {self.path} failed: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)
        try:
            self._json({"error": f"the studio failed: {type(exc).__name__}: {exc}"}, 500)
        except OSError:
            pass

    def _guard(self, query: dict) -> None:
        """Only requests naming this computer (a page from elsewhere that reaches the port
        through a rebound DNS name names another host), and beyond loopback, with the token."""
        if not self.server.host_allowed(_host_of(self.headers.get("Host"))):
            raise HTTPProblem(403, "this studio only answers pages from this computer"
                              if self.server.local_only else "this studio only answers under "
                              "this computer's own names and addresses")
        token = self.server.token
        if token is None:
            return
        given = (query.get("token") or [""])[0]
        if given and secrets.compare_digest(given.encode(), token.encode()):
            self.new_cookie = True  # the page's own requests then carry it
            return
        if not any(secrets.compare_digest(t.encode(), token.encode()) for t in self._tokens()):
            raise HTTPProblem(403, "this studio asks for its token: open the address it printed "
                                   "when it started (it ends in ?token=...)")

    def _tokens(self):
        """The tokens a request presents: in the studio's cookie, or Authorization: token T."""
        cookie = SimpleCookie()
        try:
            cookie.load(self.headers.get("Cookie") or "")
        except CookieError:
            pass
        if self.server.cookie in cookie:
            yield cookie[self.server.cookie].value
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() in ("token", "bearer"):
            yield value.strip()

    def _same_origin(self) -> None:
        """A browser names the page a POST comes from: only the studio's own may write.
        (A request without Origin is not from a web page.)"""
        origin = self.headers.get("Origin")
        if origin is not None and origin.strip().lower() != \
                f"http://{(self.headers.get('Host') or '').strip().lower()}":
            raise HTTPProblem(403, "this studio only takes requests from its own page")

    def do_GET(self):
        self._answer(self._get)

    def do_POST(self):
        self._answer(self._post)

    def _get(self) -> None:
        self.server.received(self.connection)
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        self._guard(query)
        if url.path in ("/", "/index.html"):
            return self._static("index.html")
        if url.path.startswith("/static/"):
            return self._static(url.path[len("/static/"):])
        if url.path == "/favicon.ico":  # none: said without an error in the browser's console
            return self._send(204, b"", "image/x-icon")
        runs = self.server.runs
        if url.path == "/api/models":
            models = runs.checkpoints()
            return self._json({"root": str(runs.given), "models": models,
                               "default": runs.default(models), "limits": {
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
        self._same_origin()
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
        from ..generate import make_prime

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
            options["prime"] = make_prime(title, prime)
            if options.pop("originality"):
                try:
                    options["copy_index"] = runs.copy_index(trained, options["max_copy"])
                except SonggenError as exc:
                    raise HTTPProblem(400, str(exc)) from None
            if options.get("copy_index") is None:
                options["max_copy"] = None
            if options["seed"] is None:
                options["seed"] = secrets.randbits(31)  # chosen here so that the page shows it
            self._stream(trained, path, options)
        finally:
            self.server.writers.release()

    def _stream(self, trained, path: Path, options: dict) -> None:
        from ..generate import write_live

        try:
            events = write_live(trained, precision="auto", **options)
            first = next(events)  # the checks (length, top-p, ...) run here, before any answer
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
        try:
            send("start", {"seed": options["seed"], "prime": first[1],
                           "num_songs": options["num_songs"], "model": self.server.runs.name_of(path),
                           "step": trained.step,
                           "originality": options.get("copy_index") is not None})
            for event in events:
                if self.server.stopping.is_set():
                    break
                kind = event[0]
                if kind == "chars":
                    chars += sum(len(c) for c in event[1] if c)
                    send("chars", event[1])
                elif kind == "song":
                    send("song", _song_json(event[1]))
                else:  # retry / dropped: the song copied too much
                    send(kind, {"number": event[1], "copy": event[2].length})
                if time.monotonic() - start > limit:
                    send("error", {"error": f"the writing took more than {limit:g} s, the "
                                            "studio's limit: write fewer or shorter songs "
                                            "(songgen sample has no time limit)"})
                    break
            else:
                send("done", {"chars": chars, "seconds": round(time.monotonic() - start, 3)})
        except _GONE:
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
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        self.wfile.write(f"event: {kind}\ndata: {payload}\n\n".encode("utf-8"))
        self.wfile.flush()


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
    if open_browser:
        threading.Timer(0.3, webbrowser.open, args=(server.url,)).start()
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        say("Stopped.")
    finally:
        server.stopping.set()
        server.server_close()
