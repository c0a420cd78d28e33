"""An S3 endpoint that accepts connections and never answers: the transfer that
hangs. boto3 cannot abort a request in flight, so this is how tests show that a
stop does not wait for one."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest


class SilentS3:
    """A listener that accepts connections and never answers; counts them."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        """Stop accepting (the shutdown wakes the blocked accept), then close
        every connection it held."""
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
