"""Handing a child its job (a password in it) only once nobody else can read it.

Owns: the runner's side of the hand-off. A ``socketpair``: the child's end becomes
its fd 0, the runner keeps the other. A thread (``HandOff.start``) waits for the
child's ready byte, checks through ``/proc`` that the child has made itself
non-dumpable, and only then sends the job, whole, and closes its end. The child's
side is ``runner/dbchild/handshake.py``; the ready byte (``READY``) is written in
both places, as a protocol constant.

Must not: put the job anywhere before that check (no file, no pipe buffer, no
argv, no environment); send it to a child that is still dumpable; outlive the
child (every wait here also watches the child's pidfd, so a stop, which ends the
child, ends the thread).

Why this way: a task of the same uid (``run_as``) may open ``/proc/<pid>/fd/*``
and read ``/proc/<pid>/mem`` of any dumpable process of that uid. A memfd on stdin
(the way before) could be reopened through ``/proc`` until the child read it, and
the child's memory was readable for its whole life. A socket cannot be reopened
through ``/proc`` (ENXIO), and a non-dumpable process's ``/proc`` files belong to
root, so nothing reaches the job once it is sent. The check reads what the kernel
says (the owner of ``/proc/<pid>/environ``), not what the child claims: a ready
byte forged
before the child's ``prctl`` finds the child still dumpable and gets nothing; the
job is withheld, and the child fails for want of it. What is left: a process of the
uid that takes the socket itself (``pidfd_getfd``, which needs ptrace rights) in
the milliseconds between the exec and the ``prctl`` could race the child for the
job; Yama's ``ptrace_scope`` 1 or more (most distributions' default) closes that.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
from collections.abc import Iterator

import structlog

#: The child's "I am non-dumpable, send it" (runner/dbchild/handshake.py: READY).
READY = b"R"
_SEND_CHUNK = 256 * 1024


class HandOff:
    """One job for one child: ``child_fd`` goes to the child as fd 0, then
    ``start`` hands the job over on a thread of its own."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._ours, self._theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    @classmethod
    @contextlib.contextmanager
    def prepared(cls, data: bytes | None) -> Iterator[HandOff | None]:
        """A hand-off for ``data`` (None: none, the child reads /dev/null). The
        child's end is closed in the runner on leaving; the runner's end, too,
        unless ``start`` took it over."""
        if data is None:
            yield None
            return
        hand = cls(data)
        try:
            yield hand
        finally:
            hand._theirs.close()
            if hand._data:  # never started: nobody will send it
                hand._ours.close()

    @property
    def child_fd(self) -> int:
        return self._theirs.fileno()

    def start(
        self, pid: int, uid: int, log: structlog.typing.FilteringBoundLogger
    ) -> None:
        """Hand the job to ``pid`` (running as ``uid``) once it is ready."""
        data, self._data = self._data, b""
        feeder = _Feeder(self._ours, data, pid, uid, log)
        threading.Thread(target=feeder.run, name=f"handoff-{pid}", daemon=True).start()


class _Feeder:
    """The thread's work: wait for the ready byte, check, send, close."""

    def __init__(
        self,
        sock: socket.socket,
        data: bytes,
        pid: int,
        uid: int,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self.sock = sock
        self.data = data
        self.pid = pid
        self.uid = uid
        self.log = log
        self.pidfd = -1

    def run(self) -> None:
        try:
            with contextlib.suppress(AttributeError, OSError):  # no pidfds: EOF ends
                self.pidfd = os.pidfd_open(self.pid)
            if self._ready() and self._checked():
                self._send()
        except OSError:
            pass  # the child went away: it reports (or its exit code does)
        finally:
            self.sock.close()
            if self.pidfd >= 0:
                os.close(self.pidfd)

    def _wait(self, event: int) -> bool:
        """Until the socket is ready for ``event``: True; False once the child ended."""
        poller = select.poll()
        poller.register(self.sock.fileno(), event)
        if self.pidfd >= 0:
            poller.register(self.pidfd, select.POLLIN)
        ready = dict(poller.poll())
        return self.sock.fileno() in ready

    def _ready(self) -> bool:
        return self._wait(select.POLLIN) and self.sock.recv(1) == READY

    def _checked(self) -> bool:
        """The kernel's word that the child is non-dumpable: its ``/proc`` files
        (``environ``: the directory itself keeps the uid) belong to root, not to
        its uid (a child running as root is root's)."""
        try:
            owner = os.stat(f"/proc/{self.pid}/environ").st_uid
        except OSError:
            return False
        if owner != self.uid or self.uid == 0:
            return True
        self.log.warning("job_withheld", pid=self.pid, reason="the child is dumpable")
        return False

    def _send(self) -> None:
        view = memoryview(self.data)
        self.sock.setblocking(False)
        while view:
            if not self._wait(select.POLLOUT):
                return
            with contextlib.suppress(BlockingIOError):
                view = view[self.sock.send(view[:_SEND_CHUNK]) :]
        self.sock.shutdown(socket.SHUT_WR)
