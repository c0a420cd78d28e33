"""Read ahead: an iterator of chunks drawn by a thread of its own, a few chunks
ahead of the one that consumes them.

Owns: ``read_ahead``. Must not: hold more than ``depth`` chunks (plus the one
each side is holding), or outlive its consumer: closing the consumer's generator
(a stop, a failure, the end) stops the thread within one wait.

Why this way: a load reads S3 and writes the database in turns; each waits on the
other's server (moto serving the object, the database parsing rows), so one
thread adds their times, as ``aws s3 cp`` then ``psql`` does. With the S3 side
in its own thread the two overlap (their socket waits release the GIL) and a
load takes the time of the slower one.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Generator, Iterable

WAIT_S = 0.2
#: How long a closed consumer waits for the thread: it ends at its next chunk, or
#: its next wait; a read that hangs is the S3 client's to time out (the process
#: ends after the copy anyway, and the thread is a daemon).
JOIN_S = 5.0
_END = object()


def read_ahead(chunks: Iterable[bytes], depth: int = 4) -> Generator[bytes, None, None]:
    """``chunks``, drawn by a thread up to ``depth`` ahead; an error the source
    raised is raised here, in its place in the stream. The wait for the next
    chunk is the source's own: the thread always hands over a chunk, the end or
    an error."""
    ready: queue.Queue[object] = queue.Queue(maxsize=depth)
    done = threading.Event()

    def put(item: object) -> bool:
        while not done.is_set():
            with contextlib.suppress(queue.Full):
                ready.put(item, timeout=WAIT_S)
                return True
        return False

    def draw() -> None:
        try:
            for chunk in chunks:
                if not put(chunk):
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(exc)

    thread = threading.Thread(target=draw, name="read-ahead", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]  # a chunk: neither _END nor an error
    finally:
        done.set()
        thread.join(JOIN_S)
