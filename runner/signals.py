"""Main-thread signal handling: handlers that only set events.

| signal          | first                | second (TERM/INT/HUP)      |
|-----------------|----------------------|----------------------------|
| SIGTERM, SIGINT | ``stop``: drain      | ``fast_stop``: kill, report |
| SIGHUP          | same as SIGTERM      | same as SIGTERM            |
| SIGUSR1         | ``dump_stacks``: the main loop calls ``dump()`` |   |

It owns the handlers and the events; what a stop means (drain, hurry) belongs to the
worker and the CLI. It must not log, raise or do I/O in a handler (gunicorn's arbiter:
"NO LOGGING"), because a handler runs between two bytecodes of whatever the main
thread was doing.

Why it is built this way:

- The events are safe to set from a handler even while the main thread is inside
  ``stop.wait()``. A plain ``threading.Event`` guards its flag with a non-reentrant
  lock; a handler that runs while the main thread holds that lock (a window inside
  ``Event.wait``) would block on it forever (python/cpython#126434 describes the same
  trap for ``multiprocessing.Event``). Our events use a reentrant lock, so the
  handler's ``set()`` completes and the interrupted ``wait()`` sees the flag.
- SIGHUP stops the runner like SIGTERM. There is no configuration reload; HUP's
  default action would kill the runner without a drain and orphan the running tasks;
  and ignoring it would leave a runner started from a closed terminal running blind.
- SIGUSR1 dumps every thread's stack (like AWS Deadline's worker agent); the dump is
  I/O, so the handler only sets ``dump_stacks`` and the main loop calls ``dump()``.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import threading
from types import FrameType
from typing import Any, TextIO

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_DUMP_SIGNAL = signal.SIGUSR1

_Handler = Any  # what signal.signal returns: a callable, an int, or None


class SignalSafeEvent(threading.Event):
    """A ``threading.Event`` whose ``set()`` may run in a signal handler on the
    main thread while that thread is inside ``wait()`` or ``set()``."""

    def __init__(self) -> None:
        super().__init__()
        # Event keeps its lock in ``_cond``; a reentrant one lets the handler's set()
        # proceed while the interrupted frame below it holds the lock.
        self._cond = threading.Condition(threading.RLock())


class Signals:
    """Install with ``install()`` from the main thread; ``restore()`` puts the
    previous handlers back. ``count`` is how many stop signals were seen."""

    def __init__(self) -> None:
        self.stop: threading.Event = SignalSafeEvent()
        self.fast_stop: threading.Event = SignalSafeEvent()
        self.dump_stacks: threading.Event = SignalSafeEvent()
        #: Set by every handled signal: one event for a main loop to wait on.
        self.wakeup: threading.Event = SignalSafeEvent()
        self.count = 0
        self._previous: dict[signal.Signals, _Handler] = {}

    def install(self) -> None:
        """Install the handlers. Main thread only (``ValueError`` otherwise)."""
        for signum in _STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_stop)
        self._previous[_DUMP_SIGNAL] = signal.signal(_DUMP_SIGNAL, self._on_dump)

    def restore(self) -> None:
        """Put back the handlers that ``install`` replaced. Main thread only."""
        while self._previous:
            signum, handler = self._previous.popitem()
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)

    def dump(self, file: TextIO | None = None) -> None:
        """Write every thread's stack to ``file`` (stderr by default)."""
        faulthandler.dump_traceback(file=file or sys.stderr, all_threads=True)

    # ------------------------------------------------------- handlers: events only

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.stop.is_set():
            self.fast_stop.set()
        self.stop.set()
        self.wakeup.set()

    def _on_dump(self, signum: int, frame: FrameType | None) -> None:
        self.dump_stacks.set()
        self.wakeup.set()
