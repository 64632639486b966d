"""The studio's HTTP plumbing, which knows nothing of songs: a threading HTTP server that
bounds its connections (at most MAX_CONNECTIONS, each with REQUEST_SECONDS to send its whole
request; when full, the one waiting longest for its request goes first), and a request handler
that sends the safety headers, answers HTTPProblem and library errors as JSON, and guards every
request: the host it names, the token beyond loopback, and the origin of a POST.
"""

from __future__ import annotations

import ipaddress
import json
import math
import secrets
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..errors import SonggenError

MAX_CONNECTIONS = 128         # served at a time
REQUEST_SECONDS = 10.0        # to send a whole request: line, headers and body
SEND_SECONDS = 30.0           # a client that takes nothing of an answer this long is dropped
# The page's own files only; inline styles are the SVG chart's and swatches' colours.
_CSP = ("default-src 'self'; style-src 'self' 'unsafe-inline'; object-src 'none'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
GONE = (ConnectionError, TimeoutError)  # the client left or stopped reading


class HTTPProblem(Exception):
    """An answer other than 200: status and a plain message (sent as JSON {"error": ...})."""

    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


def ip_of(host: str):
    try:
        return ipaddress.ip_address(host.split("%")[0])  # an IPv6 zone is not the address
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """Whether `host` is this computer only: the name localhost, 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    ip = ip_of(host)
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


# --- JSON -------------------------------------------------------------------------------------

def _clean(value):
    """`value` as strict JSON can carry it: NaN and infinities become null (a browser's JSON
    parser refuses them), and a lone surrogate (a name not valid UTF-8, a crafted vocabulary)
    is shown escaped, as \\udcff, instead of failing the whole answer."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_clean(k) if isinstance(k, str) else k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def json_bytes(data) -> bytes:
    return json.dumps(_clean(data), ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode("utf-8")


# --- HTTP -------------------------------------------------------------------------------------

_SAFETY = {"X-Frame-Options": "DENY", "Content-Security-Policy": _CSP,
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


class LimitedServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer with bounded connections (see the module's docstring)."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 64  # socketserver's 5 drops connections of a burst: 1 s to retry each
    max_connections = MAX_CONNECTIONS
    request_seconds = REQUEST_SECONDS
    send_seconds = SEND_SECONDS

    def __init__(self, address, handler):
        # Each open connection -> when its request must have arrived (None: it has).
        self._open: dict[socket.socket, float | None] = {}
        self._open_lock = threading.Lock()
        self._refused: list[tuple[float, socket.socket]] = []  # closed at a later poll
        super().__init__(address, handler)


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


class GuardedHandler(BaseHTTPRequestHandler):
    """Answers with the safety headers, errors as JSON, and `_guard`, `_same_site` and
    `_same_origin` for the request checks; a subclass routes with `_get` and `_post`. Its
    server has `token`, `local_only`, `host_allowed` and `send_seconds`."""

    def setup(self):
        self.timeout = self.server.send_seconds  # on the socket: a stalled client fails a send
        super().setup()

    def log_message(self, format, *args):  # the terminal shows the URL, not every request
        pass

    def end_headers(self):
        for k, v in _SAFETY.items():
            self.send_header(k, v)
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
        self._send(status, json_bytes(data), "application/json; charset=utf-8")

    def _answer(self, handle) -> None:
        try:
            try:
                handle()
            except HTTPProblem as exc:
                self._json({"error": exc.message, **exc.extra}, exc.status)
            except SonggenError as exc:
                self._json({"error": str(exc)}, 400)
        except GONE:  # the client left while it was answered: nothing to tell anyone
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

    def _guard(self, query: dict, token_needed: bool = True) -> None:
        """Only requests naming this computer (a page from elsewhere that reaches the port
        through a rebound DNS name names another host), and beyond loopback, with the token
        (the page and its files need none: they hold nothing but code anyone may read)."""
        if not self.server.host_allowed(_host_of(self.headers.get("Host"))):
            raise HTTPProblem(403, "this studio only answers pages from this computer"
                              if self.server.local_only else "this studio only answers under "
                              "this computer's own names and addresses")
        token = self.server.token
        if token is None or not token_needed:
            return
        if not any(secrets.compare_digest(t.encode(), token.encode()) for t in self._tokens(query)):
            raise HTTPProblem(403, "this studio asks for its token: open the address it printed "
                                   "when it started (it ends in #token=...)")

    def _tokens(self, query: dict):
        """The tokens a request presents: Authorization: token T (the page sends it from the
        address it was opened with), or ?token=T. Never a cookie: browsers send a cookie to
        every port of a host, so any other server on this computer would receive it."""
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() in ("token", "bearer"):
            yield value.strip()
        yield from query.get("token") or []

    def _same_site(self) -> None:
        """A browser says where a request comes from (Sec-Fetch-Site): a page of another site
        (or another port or name of this one) may not make the studio scan and read files."""
        if (self.headers.get("Sec-Fetch-Site") or "").strip().lower() in ("cross-site",
                                                                          "same-site"):
            raise HTTPProblem(403, "this studio only answers its own page")

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
