"""An S3 endpoint that accepts connections and never answers: the transfer that
hangs. boto3 cannot abort a request in flight, so this is how tests show that a
stop does not wait for one."""

from __future__ import annotations

import contextlib
import socket
import threading


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
