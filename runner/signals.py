"""Main-thread signal handling: handlers that only queue the signal number.

| signal                  | first                 | second (a stop signal)     |
|-------------------------|-----------------------|----------------------------|
| SIGTERM, SIGINT, SIGHUP | drain                 | stop fast: kill, report    |
| SIGUSR1                 | dump every thread's stack to stderr                |

Owns: the handlers and the ``inbox`` they put into. What a signal means is the
dispatcher's (``daemon.py``): it reads the inbox on the main thread. Other requests
to stop reach the dispatcher through the same inbox (``TERMINATE`` from the runner
heartbeat, ``LOCAL_RUN_ENDED`` from ``run --local``), so there is one path.

Must not: log, lock, raise or do I/O in a handler (gunicorn's arbiter: "NO
LOGGING"): a handler runs between two bytecodes of whatever the main thread was
doing. ``queue.SimpleQueue.put`` is documented reentrant, safe in a handler, and a
``get`` blocked on the main thread is woken by it at once.

Why the stop signals are held until the handlers are in: the kernel drops a signal
sent to a PID 1 that has no handler for it (a container's exec-form ENTRYPOINT, or
``unshare --pid``), where any other process would die of it. The runner takes most
of a second to import, so a ``docker stop`` soon after the start would be lost and
the runner SIGKILLed at the stop timeout, tasks and all. A blocked signal is never
dropped, only kept pending: ``hold_stop_signals`` (the entry point's first call,
as PID 1) blocks them, and ``install`` unblocks them once the handlers are in, so
the held signal is queued then like any other.

Why SIGHUP stops the runner like SIGTERM: there is no configuration reload; HUP's
default action would kill the runner without a drain and orphan the running tasks;
and ignoring it would leave a runner started from a closed terminal running blind.
"""

from __future__ import annotations

import faulthandler
import os
import queue
import signal
import sys
from types import FrameType
from typing import Any, TextIO

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
DUMP_SIGNAL = signal.SIGUSR1
#: Requests that are not signals, put into the same inbox by threads.
TERMINATE = "terminate"  # ReportTaskRunnerHeartbeat answered terminate: true
LOCAL_RUN_ENDED = "local-run-ended"  # run --local: every instance has ended
WAKE = "wake"  # look again: a task ended while the runner drains
INSTANCE_ENDING = "instance-ending"  # a spot or Auto Scaling notice (ec2.py)

Request = int | str
_Handler = Any  # what signal.signal returns: a callable, an int, or None


def hold_stop_signals() -> bool:
    """As PID 1 only: block the stop signals of the calling thread until
    ``Signals.install`` unblocks them, so that one sent before is kept pending
    rather than dropped. Call it first thing, on the main thread, before any
    thread or child exists (both inherit the mask). True when it blocked them."""
    if os.getpid() != 1:
        return False
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    return True


class Signals:
    """Install with ``install()`` from the main thread; ``restore()`` puts the
    previous handlers back. ``inbox`` is read by the dispatcher only."""

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue[Request] = queue.SimpleQueue()
        self._previous: dict[signal.Signals, _Handler] = {}

    def install(self) -> None:
        """Install the handlers, then unblock the stop signals (``hold_stop_signals``):
        one held since the start is queued now. Main thread only (``ValueError``
        otherwise)."""
        for signum in (*STOP_SIGNALS, DUMP_SIGNAL):
            self._previous[signum] = signal.signal(signum, self._queue)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def restore(self) -> None:
        """Put back the handlers that ``install`` replaced. Main thread only."""
        while self._previous:
            signum, handler = self._previous.popitem()
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)

    def next(self, timeout: float | None) -> Request | None:
        """The next request, waiting up to ``timeout`` seconds; None if none came."""
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def dump(self, file: TextIO | None = None) -> None:
        """Write every thread's stack to ``file`` (stderr by default)."""
        faulthandler.dump_traceback(file=file or sys.stderr, all_threads=True)

    def _queue(self, signum: int, frame: FrameType | None) -> None:
        self.inbox.put_nowait(signum)
