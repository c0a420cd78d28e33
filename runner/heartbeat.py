"""``Heartbeat``: call a function every N seconds on a named daemon thread.

It owns the schedule and nothing else: what a beat does (a ReportTaskProgress, a
ReportTaskRunnerHeartbeat) is the caller's function, and what a failed beat means
(a lost lease) is the caller's decision, made from ``last_success`` and ``error``.

Why it is built this way:

- Heartbeats get threads of their own so that task output or a slow upload can never
  starve them (design.md §5).
- The cadence is measured from the *start* of each call: a slow call does not push
  the schedule back, calls never overlap, and a call that overruns the interval is
  followed at once by the next.
- Every wait is ``Event.wait``: ``stop()`` and ``set_interval()`` wake the thread at
  once, so shutdown never waits out an interval.
- The thread body has the house shape: an exception from ``fn`` is logged with its
  traceback and kept in ``error``; the thread keeps beating, because the next call
  may well succeed and the caller judges from ``last_success``. Nothing dies silently.
- Given a ``Liveness``, the thread is watched: it must finish an iteration (a wait,
  a beat, or inside the beat each try of its calls, which the client ticks) within
  the interval plus ``call_timeout_s``. It leaves the watch only when it ends
  cleanly; one that dies of a bug goes overdue.
- Each heartbeat has a thread of its own, made at ``start`` and ended by ``stop``,
  a task's included: no pool of kept threads (simplicity over the microseconds a
  thread's start costs a task).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from runner.errors import RunnerError
from runner.liveness import Liveness, Watch


@dataclass(frozen=True, slots=True)
class HeartbeatStatistics:
    """A consistent snapshot of one heartbeat's counters."""

    calls: int
    failures: int
    last_success: float | None  # time.monotonic() of the last call that returned
    last_error: BaseException | None


class Heartbeat:
    """Calls ``fn`` every ``interval_s`` seconds, the first time after
    ``first_delay_s`` (default: one interval, following ``set_interval``).
    Thread-safe; ``fn`` runs only on the heartbeat thread, one call at a time."""

    def __init__(
        self,
        fn: Callable[[], None],
        *,
        interval_s: float,
        name: str,
        log: structlog.typing.FilteringBoundLogger,
        first_delay_s: float | None = None,
        liveness: Liveness | None = None,
        call_timeout_s: float = 0.0,
    ) -> None:
        self._fn = fn
        self._liveness = liveness
        self._call_timeout_s = call_timeout_s
        self._watch: Watch | None = None
        self._interval_s = interval_s
        self._first_delay_s = first_delay_s  # None: one interval, as it is then
        self.name = name
        self._log = log
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by stop() and set_interval()
        self._beats = threading.Condition()
        self._calls = 0
        self._failures = 0
        self.error: BaseException | None = None
        self.last_success: float | None = None
        self._started = False
        self._ended = threading.Event()

    def start(self) -> None:
        """Start beating at once, on a new thread named ``name``. A call after the
        first does nothing."""
        with self._beats:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._run, name=self.name, daemon=True).start()

    def stop(self) -> None:
        """Ask the thread to end; it does after the call in progress, if any.
        Does not block."""
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the beating to end; True when it has (or was
        never started)."""
        if not self._started:
            return True
        return self._ended.wait(timeout)

    def set_interval(self, interval_s: float) -> None:
        """Change the interval; the next call is rescheduled from the start of
        the last one (at once if that is already past)."""
        self._interval_s = interval_s
        watch = self._watch
        if watch is not None:
            watch.bound_s = self._bound_s()
        self._wake.set()

    def statistics(self) -> HeartbeatStatistics:
        with self._beats:
            return HeartbeatStatistics(
                calls=self._calls,
                failures=self._failures,
                last_success=self.last_success,
                last_error=self.error,
            )

    def wait_beat(self, after: int, timeout: float) -> bool:
        """Block until more than ``after`` calls have ended (successful or not), or
        ``timeout`` passes; True when they have."""
        with self._beats:
            return self._beats.wait_for(lambda: self._calls > after, timeout)

    # ----------------------------------------------------------------- thread

    def _bound_s(self) -> float:
        return max(self._interval_s, self._first_delay_s or 0.0) + self._call_timeout_s

    def _run(self) -> None:
        """The thread's body: the beating until ``stop``, or until it dies of a
        bug (logged, kept in ``error``, and its watch left to go overdue)."""
        try:
            self._beat_until_stopped()
        finally:
            self._ended.set()

    def _beat_until_stopped(self) -> bool:
        liveness = self._liveness
        try:
            if liveness is not None:
                self._watch = liveness.enter(self.name, self._bound_s())
            last_start: float | None = None
            origin = time.monotonic()
            while not self._stop.is_set():
                if liveness is not None:
                    liveness.tick()
                if last_start is not None:
                    due = last_start + self._interval_s
                elif self._first_delay_s is not None:
                    due = origin + self._first_delay_s
                else:
                    due = origin + self._interval_s
                delay = due - time.monotonic()
                if delay > 0:
                    self._wake.wait(delay)
                    self._wake.clear()
                    continue  # woken or due: recompute, the interval may have changed
                last_start = time.monotonic()
                self._beat()
        except Exception as exc:  # noqa: BLE001 - thread top: log, keep, never die silently
            self._log.exception("heartbeat_crashed", heartbeat=self.name)
            self.error = exc
            return False  # watched still: a dead heartbeat goes overdue
        if liveness is not None:
            liveness.leave()
        return True

    def _beat(self) -> None:
        error: Exception | None = None
        try:
            self._fn()
        except RunnerError as exc:
            # An expected failure (the service is down, the task is gone): one line,
            # no traceback, so an outage does not bury the log in stack dumps.
            self._log.warning("heartbeat_failed", heartbeat=self.name, error=str(exc))
            error = exc
        except Exception as exc:  # noqa: BLE001 - a failed beat is recorded, not fatal
            self._log.exception("heartbeat_failed", heartbeat=self.name)
            error = exc
        with self._beats:
            self._calls += 1
            if error is None:
                self.last_success = time.monotonic()
            else:
                self._failures += 1
                self.error = error
            self._beats.notify_all()
