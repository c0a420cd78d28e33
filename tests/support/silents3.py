"""An S3 endpoint that starts every answer and never finishes it: the transfer that
hangs. boto3 cannot abort a request in flight, so this is how tests show that a
stop does not wait for one.

Each answer is a status line, then one byte of a header every ``TRICKLE_S``,
forever. Bytes keep coming, so no read timeout fires and the runner's S3 retries
never start: the step ends only when a stop abandons it (a transfer hangs so on a
fleet when a proxy or S3 trickles). No product timer races a test's stop.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from urllib.parse import unquote

import pytest

#: One byte of the endless header this often: well inside any read timeout.
TRICKLE_S = 0.1


class SilentS3:
    """A listener whose answers never end; counts the connections and keeps each
    one's request line (``GET /bucket/key HTTP/1.1``)."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.requests: list[str] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(conn)
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        """Read the request line and keep it, then trickle an answer that never
        ends; until the client goes (a stopped runner) or the test closes."""
        with contextlib.suppress(OSError):
            line = b""
            while b"\r\n" not in line and len(line) < 8192:
                chunk = conn.recv(1024)
                if not chunk:
                    return
                line += chunk
            self.requests.append(line.split(b"\r\n", 1)[0].decode("latin-1"))
            conn.sendall(b"HTTP/1.1 200 OK\r\nx-amz-trickle: ")
            while not self._closed.wait(TRICKLE_S):
                conn.sendall(b"a")

    def asked_for(self, part: str) -> bool:
        """Whether a request line named ``part`` (a key or key prefix, in its path
        or its query): that step is waiting on S3."""
        return any(part in unquote(request) for request in list(self.requests))

    def close(self) -> None:
        """Stop accepting (the shutdown wakes the blocked accept) and trickling,
        then close every connection it held."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self._thread.join(5)
        for conn in self.held:
            conn.close()


BUCKET = "s3://silent-bucket"


@pytest.fixture
def silent_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[SilentS3]:
    server = SilentS3()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.endpoint)  # the runner inherits it
    yield server
    server.close()
