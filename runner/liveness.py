"""``Liveness``: whether every watched thread still finishes its loop iterations.

Owns: the watches (one per poller and per heartbeat thread), each with its bound,
and the one question the systemd watchdog, ``/healthz`` and ``dp-runner
healthcheck`` ask: is any of them overdue? A thread ``enter``s when it starts, and
``tick``s at every iteration: a poll that came back (a task, nothing, or an error),
a backoff that ended, a beat. The client ticks the calling thread's watch around
every try, so an AWS outage, which is a stream of errors and backoffs, never makes a
thread overdue; a thread wedged on a lock or in an endless loop does.

Must not: log, signal, or decide what to do about an overdue thread (the
dispatcher stops sending ``WATCHDOG=1``, and systemd restarts the unit; ``/healthz``
answers 503).

Why a registry keyed by thread: the client is shared by every thread and knows
only who called it, and ``tick`` must cost a dict lookup, since it runs around
every call. A thread that ends cleanly ``leave``s; one that dies of a bug keeps
its watch, which goes overdue: a dead poller is as bad as a wedged one. Every bound
gets ``slack_s`` (10 s) on top, for a scheduler that is merely slow.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

#: Added to every bound: a loaded host is slow, not wedged.
SLACK_S = 10.0


@dataclass(slots=True)
class Watch:
    """One thread's watch. ``bound_s`` may be changed by any thread (a heartbeat
    whose interval changes)."""

    name: str
    bound_s: float
    last: float


@dataclass(frozen=True, slots=True)
class Overdue:
    """A watched thread that has not ticked within its bound (plus the slack)."""

    name: str
    silent_s: float
    bound_s: float


class Liveness:
    """Thread-safe; ``tick`` is the cheap path."""

    def __init__(self, *, slack_s: float = SLACK_S) -> None:
        self.slack_s = slack_s
        self._watches: dict[int, Watch] = {}
        self._lock = threading.Lock()

    def enter(self, name: str, bound_s: float) -> Watch:
        """Watch the calling thread from now: it must tick at least every
        ``bound_s`` (plus the slack)."""
        watch = Watch(name, bound_s, time.monotonic())
        with self._lock:
            self._watches[threading.get_ident()] = watch
        return watch

    def tick(self) -> None:
        """The calling thread finished an iteration; a no-op when it is unwatched."""
        watch = self._watches.get(threading.get_ident())
        if watch is not None:
            watch.last = time.monotonic()

    def leave(self) -> None:
        """The calling thread ends cleanly: stop watching it."""
        with self._lock:
            self._watches.pop(threading.get_ident(), None)

    def overdue(self) -> list[Overdue]:
        """The watches that have not ticked within their bound plus the slack."""
        now = time.monotonic()
        with self._lock:
            watches = list(self._watches.values())
        return [
            Overdue(w.name, round(now - w.last, 1), w.bound_s + self.slack_s)
            for w in watches
            if now - w.last > w.bound_s + self.slack_s
        ]

    def watched(self) -> list[str]:
        """The names of the watched threads (for tests and the status line)."""
        with self._lock:
            return sorted(w.name for w in self._watches.values())
