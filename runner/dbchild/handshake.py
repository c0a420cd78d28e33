"""The database child's side of its job's hand-off: non-dumpable first, then the job.

Owns: ``make_undumpable`` (``prctl(PR_SET_DUMPABLE, 0)`` through ctypes) and
``receive_job``: say ready on fd 0, a socket the runner holds the other end of
(``runner/supervisor/handoff.py``), read the job to its end, and put /dev/null on
fd 0 in its place.

Must not: read the job before the ``prctl``; keep the socket once the job is read;
import anything heavy (``__main__`` calls ``make_undumpable`` before the child's
other imports, to keep the window before it short).

Why this way: a non-dumpable process's ``/proc/<pid>`` files belong to root, so a
task of the same uid can no longer read its memory, environment or descriptors,
nor attach to it; a socket cannot be reopened through ``/proc`` anyway. The runner
checks the ``prctl`` through ``/proc`` before it sends anything, so the job only
ever lives where nothing else of the uid reaches.
"""

from __future__ import annotations

import ctypes
import os
import socket
import sys

#: The runner's hand-off waits for this byte (runner/supervisor/handoff.py: READY).
READY = b"R"
_PR_SET_DUMPABLE = 4


def make_undumpable() -> None:
    """No core dump, no ptrace, no ``/proc/<pid>/mem`` for the same uid (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def receive_job() -> bytes:
    """The job's bytes, after the ready byte; fd 0 is /dev/null afterwards."""
    sock = socket.socket(fileno=0)
    try:
        sock.sendall(READY)
        chunks = []
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
    finally:
        sock.close()
        null = os.open(os.devnull, os.O_RDONLY)
        if null != 0:
            os.dup2(null, 0)
            os.close(null)
    return b"".join(chunks)
