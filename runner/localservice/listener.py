"""The HTTP listener of the local service: sockets, limits, and whole answers.

Owns: the threading HTTP/1.1 server (a listen backlog of `BACKLOG`, TCP_NODELAY on
every accepted socket, each answer written in one `sendall`), and the limits that
keep it standing under load:
- a request must arrive whole within `request_timeout_s` of its first byte (a
  client that sends a byte a second is dropped);
- a keep-alive connection idle for `idle_timeout_s` between requests is closed;
- a body over `max_body_bytes` (or of no stated length) is answered with an
  AWS-shaped error as soon as the headers are read, before any of the body is
  read; the connection then closes after a bounded lingering drain (bytes read
  into one small buffer and dropped, so memory stays flat), so that a client still
  sending its body reads the answer instead of a reset;
- an answer that a client does not read within `WRITE_TIMEOUT_S` ends its
  connection.
A held PollForTask is not affected: the limits bound reading a request and writing
its answer, not the time the service takes to answer.

Must not: interpret a request (`LocalService.handle` does) or import anything from
the rest of `runner`.

Why: the stdlib server's defaults (a backlog of 5, no read deadline, no body
limit) let a modest load or one slow client take the service down; each limit
here is one attribute or one bounded loop, so they are easy to see and to test.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from runner.localservice.protocol import JSON_CONTENT_TYPE

if TYPE_CHECKING:
    from runner.localservice.server import LocalService

log = logging.getLogger(__name__)
BACKLOG = 1024
# 100 objects of at most 15,360 UTF-8 bytes (DG dp-limits) are 1.5 MB; escaped as
# JSON \u sequences (botocore's ensure_ascii) at most 3 times that, plus framing
# and 50 parameters: 8 MiB is above the largest legal definition.
MAX_BODY_BYTES = 8 * 1024 * 1024
WRITE_TIMEOUT_S = 30.0
LINGER_S = 5.0
_REASONS = {
    200: "OK",
    400: "Bad Request",
    411: "Length Required",
    413: "Request Entity Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Limits:
    """The listener's time and size limits (seconds and bytes)."""

    def __init__(
        self, *, request_timeout_s: float, idle_timeout_s: float, max_body_bytes: int
    ) -> None:
        self.request_timeout_s = request_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.max_body_bytes = max_body_bytes


class Server(ThreadingHTTPServer):
    """One thread per connection; `close_connections` ends them all."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = BACKLOG

    def __init__(
        self, address: tuple[str, int], service: LocalService, limits: Limits
    ) -> None:
        super().__init__(address, _Handler)
        self.service = service
        self.limits = limits
        self._sockets: set[socket.socket] = set()
        self._sockets_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = self.socket.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._sockets_lock:
            self._sockets.add(conn)
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        with self._sockets_lock:
            self._sockets.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._sockets_lock:
            sockets = list(self._sockets)
        for conn in sockets:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection reset or timeout is the client's business; anything else
        is a bug, logged (never printed to stderr by socketserver)."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        log.exception("localservice_connection_failed")


class _Reader(io.RawIOBase):
    """The socket's bytes, with both waits bounded: the first byte of a request
    within the idle timeout, the rest within the request timeout of it."""

    def __init__(self, sock: socket.socket, limits: Limits) -> None:
        super().__init__()
        self._sock = sock
        self._limits = limits
        self._deadline: float | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._deadline is None:
            self._sock.settimeout(self._limits.idle_timeout_s)
        else:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request did not arrive whole in time")
            self._sock.settimeout(left)
        count = self._sock.recv_into(buffer)
        if count and self._deadline is None:
            self._deadline = time.monotonic() + self._limits.request_timeout_s
        return count

    def next_request(self) -> None:
        """The request was read whole: the next one's clock starts at its byte."""
        self._deadline = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def setup(self) -> None:
        super().setup()
        self.reader = _Reader(self.connection, self.server.limits)
        self.rfile = io.BufferedReader(self.reader, 64 * 1024)

    def handle_expect_100(self) -> bool:
        """A client that waits for "100 Continue" is refused before it sends."""
        _, refusal = self._length()
        if refusal is None:
            return super().handle_expect_100()
        self._refuse(refusal)
        self._close()
        return False

    def do_POST(self) -> None:
        length, refusal = self._length()
        if refusal is not None:
            self._refuse(refusal)
            self._linger(length)
            return
        raw = self.rfile.read(length) if length else b""
        if len(raw) < length:
            self._close()  # the client went away mid-body
            return
        self.reader.next_request()
        target = self.headers.get("X-Amz-Target")
        status, answer, cut = self.server.service.handle(target, raw)
        if answer is None:
            self._close()
            return
        self._send(status, answer, cut=cut)
        if cut:
            self._close()

    def _refuse(self, refusal: tuple[int, str, str]) -> None:
        status, code, message = refusal
        target = self.headers.get("X-Amz-Target")
        self._send(
            status, self.server.service.refuse(target, code, message), close=True
        )

    def _length(self) -> tuple[int, tuple[int, str, str] | None]:
        """The body's length, or why the request is refused unread."""
        if self.headers.get("Transfer-Encoding"):
            return 0, (411, "LengthRequiredException", "send the body with a length")
        text = self.headers.get("Content-Length") or "0"
        if not text.isdigit():
            return 0, (400, "SerializationException", f"bad Content-Length {text!r}")
        length = int(text)
        limit = self.server.limits.max_body_bytes
        if length > limit:
            return length, (
                413,
                "RequestEntityTooLargeException",
                f"the request body of {length} bytes is over the limit of {limit}",
            )
        return length, None

    def _send(
        self, status: int, body: bytes, *, close: bool = False, cut: str | None = None
    ) -> None:
        """Write the answer in one piece; with `cut`, only its first half
        ("cut": no length, the body ends at the close; "cut-length": a length that
        promises the whole)."""
        head = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
            f"Content-Type: {JSON_CONTENT_TYPE}",
            f"x-amzn-RequestId: {os.urandom(16).hex()}",
            "Connection: close" if cut == "cut" else f"Content-Length: {len(body)}",
        ]
        if close:
            head.append("Connection: close")
            self.close_connection = True
        sent = body[: len(body) // 2] if cut else body
        self.connection.settimeout(WRITE_TIMEOUT_S)
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + sent)

    def _linger(self, length: int) -> None:
        """Read and drop what the client still sends (at most `length` bytes, for
        at most LINGER_S), so that it reads the answer rather than a reset."""
        buffer = bytearray(64 * 1024)
        give_up = time.monotonic() + LINGER_S
        left = length
        with contextlib.suppress(OSError):
            while left > 0:
                wait = give_up - time.monotonic()
                if wait <= 0:
                    break
                self.connection.settimeout(wait)
                count = self.connection.recv_into(buffer)
                if not count:
                    break
                left -= count
        self._close()

    def _close(self) -> None:
        """End the connection now: a dropped or cut answer is never followed."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr line."""
