"""``WorkerBooks``: the worker's counters, kept under one lock.

Owns: polls made and when the last one came back, tasks started and running, how
each ended (its outcome, error class and stop reason, by worker group and activity
type), how long tasks took and how long they waited to be taken (``Durations``).
``Worker.statistics()`` returns the snapshot,
``WorkerStatistics``; ``/metrics`` renders it, the ``STATUS=`` line and the
``runner_stopped`` line quote it.

Must not: log, read ``Settings``, or know what a task is beyond its labels
(``tasklabels.py`` reads them off the task and its result).

Why apart from ``worker.py``: that module is about threads and tasks; counting
grew with the metrics, and each count costs a task one lock and a ``bisect``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from runner.durations import (
    QUEUE_WAIT_BUCKETS_S,
    TASK_BUCKETS_S,
    Durations,
    DurationsSnapshot,
)


@dataclass(frozen=True, slots=True)
class WorkerStatistics:
    """A snapshot of the worker's counters. ``last_poll`` is the wall-clock time
    (``time.time()``) the last poll came back, with or without a task.

    By label: ``tasks`` counts ended tasks by (worker group, activity type,
    outcome); ``errors`` failed ones by (worker group, activity type, error
    class); ``stops`` stopped ones by (worker group, stop reason); ``durations``
    and ``queue_waits`` are by worker group, as is ``running``."""

    polls: int
    tasks_started: int
    worker_groups: tuple[str, ...]
    running: Mapping[str, int]
    tasks: Mapping[tuple[str, str, str], int]
    errors: Mapping[tuple[str, str, str], int]
    stops: Mapping[tuple[str, str], int]
    durations: Mapping[str, DurationsSnapshot]
    queue_waits: Mapping[str, DurationsSnapshot]
    last_poll: float | None
    max_tasks: int
    terminate_requested: bool

    @property
    def tasks_running(self) -> int:
        return sum(self.running.values())

    @property
    def outcomes(self) -> Mapping[str, int]:
        """Ended tasks by outcome, whatever their group and type."""
        totals: Counter[str] = Counter()
        for (_, _, outcome), count in self.tasks.items():
            totals[outcome] += count
        return dict(totals)

    @property
    def tasks_done(self) -> int:
        return sum(self.tasks.values())


class WorkerBooks:
    """Thread-safe."""

    def __init__(self, max_tasks: int, worker_groups: tuple[str, ...] = ()) -> None:
        self._max_tasks = max_tasks
        self._groups = tuple(worker_groups)
        self._lock = threading.Lock()
        self._polls = 0
        self._started = 0
        self._running: Counter[str] = Counter()
        self._tasks: Counter[tuple[str, str, str]] = Counter()
        self._errors: Counter[tuple[str, str, str]] = Counter()
        self._stops: Counter[tuple[str, str]] = Counter()
        self._durations: dict[str, Durations] = {}
        self._waits: dict[str, Durations] = {}
        self._last_poll: float | None = None
        self.terminate_requested = False

    def polling(self) -> None:
        with self._lock:
            self._polls += 1

    def polled(self) -> None:
        self._last_poll = time.time()

    def started(self, worker_group: str, queue_wait_s: float | None) -> None:
        """A task of ``worker_group`` was taken, ``queue_wait_s`` after its
        instance was scheduled (None: unknown, not counted)."""
        with self._lock:
            self._started += 1
            self._running[worker_group] += 1
            if queue_wait_s is not None:
                waits = self._waits.get(worker_group)
                if waits is None:
                    waits = self._waits[worker_group] = Durations(QUEUE_WAIT_BUCKETS_S)
                waits.observe(queue_wait_s)

    def ended(
        self,
        worker_group: str,
        activity_type: str,
        *,
        outcome: str,
        error_class: str | None,
        stop_reason: str | None,
        duration_s: float,
    ) -> None:
        """A started task has ended: ``outcome`` its label, ``error_class`` the
        class of its failure, ``stop_reason`` the reason it was stopped for (each
        None when it does not apply)."""
        with self._lock:
            self._running[worker_group] -= 1
            self._tasks[worker_group, activity_type, outcome] += 1
            if error_class is not None:
                self._errors[worker_group, activity_type, error_class] += 1
            if stop_reason is not None:
                self._stops[worker_group, stop_reason] += 1
            durations = self._durations.get(worker_group)
            if durations is None:
                durations = self._durations[worker_group] = Durations(TASK_BUCKETS_S)
            durations.observe(duration_s)

    def snapshot(self) -> WorkerStatistics:
        with self._lock:
            return WorkerStatistics(
                polls=self._polls,
                tasks_started=self._started,
                worker_groups=self._groups,
                running=dict(self._running),
                tasks=dict(self._tasks),
                errors=dict(self._errors),
                stops=dict(self._stops),
                durations={g: d.snapshot() for g, d in self._durations.items()},
                queue_waits={g: d.snapshot() for g, d in self._waits.items()},
                last_poll=self._last_poll,
                max_tasks=self._max_tasks,
                terminate_requested=self.terminate_requested,
            )
