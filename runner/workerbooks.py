"""``WorkerBooks``: the worker's counters, kept under one lock.

Owns: polls made and when the last one came back, tasks started and running, how
each ended (its outcome label, and the stop reason of one that was stopped), and
how long tasks took (``Durations``). ``Worker.statistics()`` returns the snapshot,
``WorkerStatistics``; ``/metrics`` renders it, the ``STATUS=`` line and the
``runner_stopped`` line quote it.

Must not: log, read ``Settings``, or know what a task is beyond its outcome label.

Why apart from ``worker.py``: that module is about threads and tasks; counting
grew with the metrics, and each count costs a task one lock and a ``bisect``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from runner.durations import TASK_BUCKETS_S, Durations, DurationsSnapshot


@dataclass(frozen=True, slots=True)
class WorkerStatistics:
    """A snapshot of the worker's counters. ``last_poll`` is the wall-clock time
    (``time.time()``) the last poll came back, with or without a task."""

    polls: int
    tasks_started: int
    tasks_running: int
    outcomes: Mapping[str, int]
    stops: Mapping[str, int]
    durations: DurationsSnapshot
    last_poll: float | None
    max_tasks: int
    terminate_requested: bool

    @property
    def tasks_done(self) -> int:
        return sum(self.outcomes.values())


class WorkerBooks:
    """Thread-safe."""

    def __init__(self, max_tasks: int) -> None:
        self._max_tasks = max_tasks
        self._lock = threading.Lock()
        self._polls = 0
        self._started = 0
        self._running = 0
        self._outcomes: Counter[str] = Counter()
        self._stops: Counter[str] = Counter()
        self._durations = Durations(TASK_BUCKETS_S)
        self._last_poll: float | None = None
        self.terminate_requested = False

    def polling(self) -> None:
        with self._lock:
            self._polls += 1

    def polled(self) -> None:
        self._last_poll = time.time()

    def started(self) -> None:
        with self._lock:
            self._started += 1
            self._running += 1

    def ended(self, outcome: str, stop_reason: str | None, duration_s: float) -> None:
        """A started task has ended: ``outcome`` its label, ``stop_reason`` the
        reason it was stopped for (None when it ended by itself)."""
        with self._lock:
            self._running -= 1
            self._outcomes[outcome] += 1
            if stop_reason is not None:
                self._stops[stop_reason] += 1
            self._durations.observe(duration_s)

    def snapshot(self) -> WorkerStatistics:
        with self._lock:
            return WorkerStatistics(
                polls=self._polls,
                tasks_started=self._started,
                tasks_running=self._running,
                outcomes=dict(self._outcomes),
                stops=dict(self._stops),
                durations=self._durations.snapshot(),
                last_poll=self._last_poll,
                max_tasks=self._max_tasks,
                terminate_requested=self.terminate_requested,
            )
