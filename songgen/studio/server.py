"""The studio's web server: the page, the checkpoints and runs under one folder, songs streamed
as Server-Sent Events while the model writes them, and the runs' metrics for live curves.

Python's ThreadingHTTPServer, one thread per request: a stream writes each step's characters
as it comes, so a closed tab fails the next write (BrokenPipe / ConnectionReset) and its
generator is closed at once. At most MAX_WRITERS songs batches are written at a time; further
requests get HTTP 429. Nothing here writes to the runs folder.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import sys
import threading
import time
import webbrowser
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, urlsplit

from .. import __version__
from ..checkpoint import peek
from ..curves import METRICS, find_runs, read_metrics, run_summary
from ..errors import SonggenError
from ..config import MAX_LENGTH, MAX_SEED, MAX_SONGS, MAX_TEMPERATURE

MAX_BODY = 64 * 1024          # bytes of a request body
MAX_WRITERS = 2               # song batches written at the same time
MAX_TEXT = 60_000             # characters of a title or an opening text
MAX_MODELS = 4                # loaded models kept in memory
_LOCAL = ("127.0.0.1", "localhost", "::1")
_STATIC = {"index.html": "text/html; charset=utf-8", "studio.js": "text/javascript; charset=utf-8",
           "studio.css": "text/css; charset=utf-8"}


class HTTPProblem(Exception):
    """An answer other than 200: status and a plain message (sent as JSON {"error": ...})."""

    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


# --- What a checkpoint records --------------------------------------------------------------

def checkpoint_summary(checkpoint) -> dict:
    """What the page shows of a checkpoint (a songgen.checkpoint.Checkpoint)."""
    best = checkpoint.best_val_loss
    train = checkpoint.train_config.to_dict() if checkpoint.train_config else {}
    return {
        "step": checkpoint.step, "epoch": checkpoint.epoch,
        "best_val_loss": best, "best_val_bpc": None if best is None else best / math.log(2),
        "corpus": checkpoint.corpus, "songgen_version": checkpoint.songgen_version,
        "model": checkpoint.model_config.to_dict(),
        "training": {k: v for k, v in train.items() if isinstance(v, (int, float, str, bool))
                     or v is None},
        "chars": "".join(checkpoint.vocab[1:]),  # the first symbol is the end-of-song one
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
        self._lock = threading.Lock()
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
        try:
            path = (self.root / parts).resolve(strict=True)
        except (OSError, RuntimeError):
            raise HTTPProblem(404, f"nothing called {name!r} in the runs folder") from None
        if path != self.root and self.root not in path.parents:
            raise HTTPProblem(403, f"{name!r} leads outside the runs folder (a symbolic link?); "
                                   "only what is inside it can be used")
        if suffix is not None and not (path.is_file() and path.suffix == suffix):
            raise HTTPProblem(400, f"{name!r} is not a {suffix} file")
        return path

    def checkpoints(self) -> list[dict]:
        """Every checkpoint under the root (searched down the folders), newest first."""
        found = []
        for folder, subfolders, files in os.walk(self.root):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            for f in sorted(files):
                if not f.endswith(".pt") or f.startswith("."):
                    continue
                path = Path(folder) / f
                try:
                    real = path.resolve(strict=True)
                    st = real.stat()
                except OSError:
                    continue
                if self.root not in real.parents:
                    continue  # a symbolic link out of the folder
                found.append(self._describe(path, st))
        found.sort(key=lambda c: (-c["mtime"], c["name"]))
        return found

    def _describe(self, path: Path, st: os.stat_result) -> dict:
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self._summaries.get(path)
        if cached and cached[0] == key:
            return cached[1]
        entry = {"name": self.name_of(path), "run": self.name_of(path.parent) or ".",
                 "file": path.name, "mtime": st.st_mtime, "size": st.st_size,
                 "date": datetime.fromtimestamp(st.st_mtime, timezone.utc).astimezone()
                 .strftime("%Y-%m-%d %H:%M")}
        try:
            entry.update(checkpoint_summary(peek(path)))
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
        """The plagiarism index of the model's corpus (cached), or None if it is not here."""
        from ..copycheck import open_copy_index

        corpus = trained.checkpoint.corpus
        if not corpus or not Path(corpus).exists():
            return None
        key = (corpus, trained.checkpoint.fingerprint, max_copy)
        with self._lock:
            if key not in self._indexes:
                self._indexes[key] = open_copy_index(corpus, trained, max_copy)
            return self._indexes[key]

    def runs(self) -> list[dict]:
        out = []
        for folder in find_runs(self.root):
            records = read_metrics(folder / METRICS)
            entry = {"name": self.name_of(folder) or ".", **run_summary(folder, records)}
            latest = next((folder / f for f in ("last.pt", "best.pt") if (folder / f).exists()),
                          None)
            if latest is not None:
                try:
                    s = self._describe(latest, latest.stat())
                    entry.update(corpus=s.get("corpus"), model=s.get("model"),
                                 training=s.get("training"), checkpoint_step=s.get("step"))
                except OSError:
                    pass
            out.append(entry)
        return out

    def metrics(self, name) -> dict:
        folder = self.resolve(name)
        if not folder.is_dir():
            raise HTTPProblem(400, f"{name!r} is not a run folder")
        records = read_metrics(folder / METRICS)
        return {"name": name, "records": records, **run_summary(folder, records)}


# --- Parameters -------------------------------------------------------------------------------

def _int(body, key, lo, hi, default=None, none_ok=False):
    value = body.get(key, default)
    if value is None and none_ok:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        top = "" if hi >= 2**62 else f" to {hi:,}"
        raise HTTPProblem(400, f"{key.replace('_', ' ')} must be a whole number from {lo:,}{top}"
                          + (" (or empty)" if none_ok else ""))
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
               "rhyme", "chorus", "words"}


def parse_write(body) -> dict:
    """The options of a write request, checked against the command line's limits."""
    if not isinstance(body, dict):
        raise HTTPProblem(400, "the request must be a JSON object")
    unknown = sorted(set(body) - _WRITE_KEYS)
    if unknown:
        raise HTTPProblem(400, f"unknown parameter {unknown[0]!r}")
    options = {
        "temperature": _float(body, "temperature", 0, MAX_TEMPERATURE, 0.8),
        "top_k": _int(body, "top_k", 0, 2**63 - 1, 0),
        "top_p": _float(body, "top_p", 0, 1, 1.0, lo_open=True),
        "num_songs": _int(body, "num_songs", 1, MAX_SONGS, 1),
        "length": _int(body, "length", 1, MAX_LENGTH, 3000),
        "max_lines": _int(body, "max_lines", 1, 2**63 - 1, none_ok=True),
        "more_lines": _int(body, "more_lines", 1, 10_000, none_ok=True),
        "seed": _int(body, "seed", 0, MAX_SEED, none_ok=True),
        "max_copy": _int(body, "max_copy", 2, 2**63 - 1, none_ok=True),
        "retries": _int(body, "retries", 0, 100, 5),
    }
    options.update(_craft(body))
    originality = body.get("originality", True)
    if not isinstance(originality, bool):
        raise HTTPProblem(400, "originality must be true or false")
    if options["max_copy"] is not None and not originality:
        raise HTTPProblem(400, "max copy needs the originality check")
    return {**options, "model": body.get("model"), "title": _text(body, "title"),
            "prime": _text(body, "prime"), "originality": originality}


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


# --- HTTP -------------------------------------------------------------------------------------

class StudioServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64  # socketserver's 5 drops connections of a burst: 1 s to retry each

    def __init__(self, address, runs: Runs, local_only: bool):
        self.runs, self.local_only = runs, local_only
        self.writers = threading.BoundedSemaphore(MAX_WRITERS)
        self.stopping = threading.Event()
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://{shown}:{port}/"


class Handler(BaseHTTPRequestHandler):
    server: StudioServer
    server_version = f"songgen-studio/{__version__}"

    def log_message(self, format, *args):  # the terminal shows the URL, not every request
        pass

    # Answers
    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data, status: int = 200) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode("utf-8"),
                   "application/json; charset=utf-8")

    def _problem(self, exc: HTTPProblem) -> None:
        self._json({"error": exc.message, **exc.extra}, exc.status)

    def _guard(self) -> None:
        """Served only to this computer's own pages: a page from elsewhere that reaches the
        port through a rebound DNS name sends another Host."""
        if self.server.local_only:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
            if host not in _LOCAL:
                raise HTTPProblem(403, "this studio only answers pages from this computer")

    def do_GET(self):
        try:
            self._guard()
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path in ("/", "/index.html"):
                return self._static("index.html")
            if url.path.startswith("/static/"):
                return self._static(url.path[len("/static/"):])
            if url.path == "/api/models":
                return self._json({"root": str(self.server.runs.given),
                                   "models": self.server.runs.checkpoints()})
            if url.path == "/api/runs":
                return self._json({"root": str(self.server.runs.given),
                                   "runs": self.server.runs.runs()})
            if url.path == "/api/metrics":
                return self._json(self.server.runs.metrics((query.get("run") or [""])[0]))
            raise HTTPProblem(404, f"no page {url.path}")
        except HTTPProblem as exc:
            self._problem(exc)
        except SonggenError as exc:
            self._json({"error": str(exc)}, 400)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a bug or a file changing under us: answer, do not hang
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        print(f"songgen studio: {self.command} {self.path} failed: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)
        try:
            self._json({"error": f"the studio failed: {type(exc).__name__}: {exc}"}, 500)
        except OSError:
            pass

    def do_POST(self):
        try:
            self._guard()
            if urlsplit(self.path).path != "/api/write":
                raise HTTPProblem(404, f"no page {self.path}")
            self._write(self._body())
        except HTTPProblem as exc:
            self._problem(exc)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:
            self._failed(exc)

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
            else:
                send("done", {"chars": chars, "seconds": round(time.monotonic() - start, 3)})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the page went away: stop writing
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
    """A studio server bound to host:port (port 0: any free port), not yet serving."""
    folder = Runs(runs)
    local = host in _LOCAL
    try:
        server = StudioServer((host, port), folder, local_only=local)
    except OSError as exc:
        raise SonggenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose "
                           "another port") from None
    return server


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
            f"port {server.server_address[1]} can use the studio (and its CPU).")
    if open_browser:
        threading.Timer(0.3, webbrowser.open, args=(server.url,)).start()
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        say("Stopped.")
    finally:
        server.stopping.set()
        server.server_close()
