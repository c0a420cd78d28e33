"""Waiting for one child's end without sleep-polling, and ending that wait early.

It owns a pidfd of the child (Linux >= 5.3) and a wake-up pipe, polled together: the
wait returns the moment the child ends, or when another thread calls ``wake`` (a stop
request). It never reaps: ``Supervisor`` does, through its ``Popen``.

Why: ``Popen.wait(timeout)`` sleeps in growing steps between ``waitpid`` calls, which
adds milliseconds to every short task and delays every stop by up to a tick. Where
pidfds are missing, ``ExitWatch.open`` returns None and the supervisor falls back to
``Popen.wait``.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading


class ExitWatch:
    """A pidfd of the child and a wake-up pipe, polled together (Linux >= 5.3).
    ``wait`` runs on the execution's thread, ``wake`` on any; the lock keeps a
    closed descriptor's number, perhaps reused by then, from being touched."""

    def __init__(self, pidfd: int) -> None:
        self._lock = threading.Lock()
        self._pidfd = pidfd
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    @classmethod
    def open(cls, pid: int) -> ExitWatch | None:
        """A watch on ``pid`` (an unreaped child of ours), or None where pidfds
        are not available."""
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is None:
            return None
        try:
            return cls(pidfd_open(pid))
        except OSError:  # ENOSYS on an old kernel, or out of descriptors
            return None

    def wait(self, timeout: float | None) -> None:
        """Until the child has ended, ``wake`` was called, or ``timeout``."""
        with self._lock:
            if self._pidfd < 0:
                return
            poller = select.poll()
            poller.register(self._pidfd, select.POLLIN)
            poller.register(self._wake_r, select.POLLIN)
        poller.poll(None if timeout is None else max(0, int(timeout * 1000)))
        with self._lock, contextlib.suppress(OSError):
            if self._pidfd >= 0:
                os.read(self._wake_r, 512)  # clear the wake-ups; EAGAIN if none

    def wake(self) -> None:
        with self._lock, contextlib.suppress(OSError):  # a full pipe: already woken
            if self._pidfd >= 0:
                os.write(self._wake_w, b"!")

    def close(self) -> None:
        with self._lock:
            if self._pidfd >= 0:
                for fd in (self._pidfd, self._wake_r, self._wake_w):
                    os.close(fd)
                self._pidfd = -1
