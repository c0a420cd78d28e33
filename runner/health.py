"""The runner's HTTP listener: ``/healthz``, ``/readyz`` and ``/metrics``.

Owns: the listening socket (``http_address``), its ``http`` thread, and the mapping
of the three paths to answers: 200 or 503 with a one-line reason for the probes,
the Prometheus text for ``/metrics``; 404 for anything else. What the answers say
is decided elsewhere (``probes.py``, ``metrics.py``), handed in as callables.

Must not: be imported unless ``http_address`` is set (``http.server`` and
``socketserver`` cost the idle daemon RSS: ``tests/test_lazy_imports.py``), block
the dispatcher, let a slow client hold a thread for long (a socket timeout), let a
crowd take more than ``MAX_HANDLERS`` threads, or write anything but one JSON log
line when a request fails (a client that went away early writes nothing).

Why the stdlib server and not prometheus-client's ``start_http_server``: the
probes need paths of their own, and a threading ``HTTPServer`` is what that
function builds anyway; ours bounds its threads and keeps a backlog of 128 where
the stdlib keeps 5 (1000 concurrent scrapes timed out by the hundred). Each
request is answered from snapshots, so a scrape never waits on a poll or a task;
with the threads bounded, a flood cannot starve the pollers and heartbeats of
the GIL (``bench/bench_health.py``).
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from runner import logs
from runner.errors import ConfigError

#: A probe's verdict: healthy or not, and a line that says why.
Verdict = tuple[bool, str]
#: How long a client may take to send its request.
REQUEST_TIMEOUT_S = 5.0
#: Connections the kernel queues while every handler is busy (the stdlib's is 5).
BACKLOG = 128
#: Requests answered at once; the next connection waits in the backlog.
MAX_HANDLERS = 16
#: How often the accepting thread, waiting for a free handler, looks at ``close``.
_CLOSE_CHECK_S = 0.5
#: A client that goes away early: its business, never a line in the runner's log.
_CLIENT_GONE = (ConnectionError, TimeoutError)

log = logs.get_logger("dp-runner")


class _Server(HTTPServer):
    """An ``HTTPServer`` that answers each request on a thread of its own, at most
    ``MAX_HANDLERS`` at once: the accepting thread waits for a free one, and the
    kernel queues up to ``BACKLOG`` connections meanwhile. A flood costs the
    runner 16 threads and their share of the GIL, never more."""

    request_queue_size = BACKLOG
    routes: dict[str, Callable[[], tuple[int, bytes, str]]]

    def server_activate(self) -> None:
        self.handlers = threading.BoundedSemaphore(MAX_HANDLERS)
        self.closing = threading.Event()
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        while not self.handlers.acquire(timeout=_CLOSE_CHECK_S):
            if self.closing.is_set():
                self.shutdown_request(request)
                return
        thread = threading.Thread(
            target=self._answer,
            args=(request, client_address),
            name="http-handler",
            daemon=True,
        )
        thread.start()

    def _answer(self, request: Any, client_address: Any) -> None:
        """A handler thread's body (``ThreadingMixIn.process_request_thread``,
        with the handler given back and errors logged as one line)."""
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - thread top: one line, never a traceback on stderr
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self.handlers.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Called in an ``except`` block: silent for a client that went away, one
        JSON line for anything else (the stdlib prints a traceback to stderr)."""
        error = sys.exc_info()[1]
        if isinstance(error, _CLIENT_GONE):
            return
        log.error("http_request_failed", client=str(client_address[0]), exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT_S
    server_version = "dp-runner"

    def do_GET(self) -> None:
        route = self.server.routes.get(self.path.split("?", 1)[0])
        if route is None:
            status, body, kind = 404, b"not found\n", "text/plain; charset=utf-8"
        else:
            status, body, kind = route()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """No access log: a scrape every 15 s would fill the runner's own log."""


def _probe(verdict: Callable[[], Verdict]) -> Callable[[], tuple[int, bytes, str]]:
    def answer() -> tuple[int, bytes, str]:
        ok, why = verdict()
        return (200 if ok else 503), (why + "\n").encode(), "text/plain; charset=utf-8"

    return answer


class HealthServer:
    """Serves the three paths on its own thread from ``start`` to ``close``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        live: Callable[[], Verdict],
        ready: Callable[[], Verdict],
        metrics: Callable[[], tuple[bytes, str]],
    ) -> None:
        self._bind = (host, port)

        def scrape() -> tuple[int, bytes, str]:
            body, kind = metrics()
            return 200, body, kind

        self._routes = {"/healthz": _probe(live), "/readyz": _probe(ready)}
        self._routes["/metrics"] = scrape
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Listen and serve; the address listened on (``HOST:PORT``, the port the
        OS chose for port 0). ``ConfigError`` (exit 78) when it cannot listen."""
        host, port = self._bind
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("_Bound", (_Server,), {"address_family": family})
        try:
            server = server_class((host, port), _Handler)
        except OSError as exc:
            raise ConfigError(
                f"http_address={_join(host, port)}: cannot listen: "
                f"{exc.strerror or exc}"
            ) from None
        server.routes = self._routes
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="http", daemon=True
        )
        self._thread.start()
        return _join(host, server.server_address[1])

    def close(self) -> None:
        """Stop listening; blocks until the serving loop has ended (≤ 0.5 s)."""
        if self._server is not None:
            self._server.closing.set()  # a wait for a free handler ends too
            self._server.shutdown()
            self._server.server_close()


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
