"""The local service's working set: records, indexes, queues, timers, one lock.

Owns: the in-memory records loaded from the store, the indexes over them (runs by
pipeline and component, task id to attempt, per-worker-group FIFO queues of
ready attempts), the timer heap of wall-clock deadlines, and `commit()`, which
writes every record touched since the last commit in one transaction.

Must not: decide state transitions (that is `lifecycle`) or speak the wire
protocol. Every method expects the caller to hold `cond` unless it says so.

`masked` is the exception: the masked values of every definition seen so far,
an immutable set replaced (never mutated) under the lock and read without it by
the log filter (`parameters.RedactingFilter`), which may run while the lock is
held.

Why: one Condition serializes all mutations (so SQLite sees one writer and no
two pollers can lease the same attempt) and is also what held polls wait on, so
a task that becomes ready wakes them at once. Timers are idempotent checks: a
stale timer finds nothing to do, which keeps restart recovery trivial (push a
check for everything that is not finished).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable

from runner.localservice.definition import SERVICE_PRECONDITIONS, Definition
from runner.localservice.model import (
    PAUSED,
    WAITING_FOR_RUNNER,
    WAITING_ON_DEPENDENCIES,
    Pipeline,
    Run,
)
from runner.localservice.protocol import ServiceError
from runner.localservice.store import Store

Timer = tuple[float, int, str, str, str]  # (when, tie, kind, pipeline_id, run_id)


class Engine:
    """Shared state. Thread-safe only under `cond`."""

    def __init__(
        self,
        store: Store,
        *,
        time_scale: float,
        runs_on_worker_group: str,
        lease_time_scale: float | None = None,
    ) -> None:
        self.store = store
        self.time_scale = time_scale
        self.lease_time_scale = (
            time_scale if lease_time_scale is None else lease_time_scale
        )
        self.runs_on_worker_group = runs_on_worker_group
        #: AWS refuses a schedule that starts over a day ago; `exec` lifts that.
        self.refuse_old_starts = True
        #: uniqueId -> the id CreatePipeline gives it: `exec --pipeline-id`.
        self.named_pipeline_ids: dict[str, str] = {}
        self.cond = threading.Condition(threading.Lock())
        self.stopping = False
        self.pipelines: dict[str, Pipeline] = {}
        self.runs: dict[str, dict[str, Run]] = {}
        self.by_component: dict[str, dict[str, list[Run]]] = {}
        self.waiting: dict[str, set[str]] = {}
        self.tasks: dict[str, tuple[str, str]] = {}
        self.queues: dict[str, deque[tuple[str, str]]] = {}
        # attempts of the system-managed preconditions (S3KeyExists, DynamoDB...):
        # for the `preconditions` thread, not for runners
        self.service_checks: deque[tuple[str, str]] = deque()
        self.timers: list[Timer] = []
        self.handlers: dict[str, Callable[[Engine, str, str, float], None]] = {}
        self._tie = itertools.count()
        self._seq = 0
        self._dirty_pipelines: dict[str, Pipeline] = {}
        self._dirty_runs: dict[tuple[str, str], Run] = {}
        self._definitions: dict[tuple[str, int], Definition] = {}
        self.masked: frozenset[str] = frozenset()

    # ---- loading and committing -----------------------------------------------
    def load(self) -> None:
        """Rebuild the working set from the store and re-arm every check."""
        pipelines, runs = self.store.load()
        for pipeline in pipelines:
            self.pipelines[pipeline.id] = pipeline
            self.runs.setdefault(pipeline.id, {})
            self._seq = max(self._seq, pipeline.seq)
            self.add_timer(0.0, "schedule", pipeline.id, "")
            self.definition(pipeline)
            self.definition(pipeline, active=False)
        for run in runs:
            self._index(run)
            if run.terminal:
                continue
            if run.sphere == "INSTANCE" and WAITING_ON_DEPENDENCIES in {
                run.status,
                run.paused_from,
            }:
                self.waiting.setdefault(run.pipeline_id, set()).add(run.id)
            if (
                run.sphere == "ATTEMPT"
                and run.status == WAITING_FOR_RUNNER
                and not run.task_id
            ):
                self.enqueue(run)
            self.add_timer(0.0, "check", run.pipeline_id, run.id)

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def touch(self, record: Pipeline | Run) -> None:
        if isinstance(record, Pipeline):
            self._dirty_pipelines[record.id] = record
        else:
            self._dirty_runs[(record.pipeline_id, record.id)] = record

    def commit(self) -> None:
        if not (self._dirty_pipelines or self._dirty_runs):
            return
        self.store.save(self._dirty_pipelines.values(), self._dirty_runs.values())
        self._dirty_pipelines.clear()
        self._dirty_runs.clear()

    # ---- records --------------------------------------------------------------
    def pipeline(self, pipeline_id: str, *, allow_deleted: bool = False) -> Pipeline:
        pipeline = self.pipelines.get(pipeline_id)
        if pipeline is None:
            raise ServiceError(
                "PipelineNotFoundException", f"Pipeline {pipeline_id} not found"
            )
        if pipeline.deleted and not allow_deleted:
            raise ServiceError(
                "PipelineDeletedException", f"Pipeline {pipeline_id} was deleted"
            )
        return pipeline

    def definition(self, pipeline: Pipeline, *, active: bool = True) -> Definition:
        raw = pipeline.active if active and pipeline.active else pipeline.definition
        if raw is None:
            return Definition({})
        values = pipeline.activation_values if active and pipeline.active else None
        key = (pipeline.id, pipeline.version if active else -pipeline.version)
        cached = self._definitions.get(key)
        if cached is None:
            cached = self.remember(Definition(raw, values))
            self._definitions[key] = cached
        return cached

    def remember(self, defn: Definition) -> Definition:
        """Add the definition's masked values to `masked`; return it."""
        if not defn.masked <= self.masked:
            self.masked = self.masked | defn.masked
        return defn

    def forget_definitions(self, pipeline_id: str) -> None:
        for key in [k for k in self._definitions if k[0] == pipeline_id]:
            del self._definitions[key]

    def add_run(self, run: Run) -> Run:
        run.seq = self.next_seq()
        self._index(run)
        self.touch(run)
        return run

    def _index(self, run: Run) -> None:
        self.runs.setdefault(run.pipeline_id, {})[run.id] = run
        self._seq = max(self._seq, run.seq)
        if run.sphere == "INSTANCE":
            by_comp = self.by_component.setdefault(run.pipeline_id, {})
            by_comp.setdefault(run.component, []).append(run)
        elif run.task_id:
            self.tasks[run.task_id] = (run.pipeline_id, run.id)

    def run(self, pipeline_id: str, run_id: str) -> Run | None:
        return self.runs.get(pipeline_id, {}).get(run_id)

    def instances(self, pipeline_id: str, component: str) -> list[Run]:
        return self.by_component.get(pipeline_id, {}).get(component, [])

    # ---- queues ----------------------------------------------------------------
    def enqueue(self, attempt: Run) -> None:
        """Queue a ready attempt for its worker group, or for the service's own
        precondition checks."""
        key = (attempt.pipeline_id, attempt.id)
        if self.checked_by_service(attempt):
            self.service_checks.append(key)
        else:
            self.queues.setdefault(attempt.worker_group, deque()).append(key)
        self.cond.notify_all()

    def checked_by_service(self, run: Run) -> bool:
        pipeline = self.pipelines.get(run.pipeline_id)
        if run.kind != "precondition" or pipeline is None:
            return False
        return self.definition(pipeline).type_of(run.component) in SERVICE_PRECONDITIONS

    def take(self, worker_group: str) -> Run | None:
        """Pop the oldest attempt of the group that is still ready to lease."""
        queue = self.queues.get(worker_group)
        while queue:
            pipeline_id, attempt_id = queue.popleft()
            attempt = self.run(pipeline_id, attempt_id)
            pipeline = self.pipelines.get(pipeline_id)
            if (
                attempt is not None
                and pipeline is not None
                and not pipeline.deleted
                and attempt.status == WAITING_FOR_RUNNER
                and not attempt.task_id
            ):
                return attempt
        return None

    # ---- timers ----------------------------------------------------------------
    def add_timer(self, when: float, kind: str, pipeline_id: str, run_id: str) -> None:
        heapq.heappush(self.timers, (when, next(self._tie), kind, pipeline_id, run_id))
        self.cond.notify_all()

    def advance(self, now: float | None = None) -> None:
        """Run every timer due that was set before this call (each check is
        idempotent). One set by a check runs on the next call, after the
        caller has let go of the lock: a check that re-arms itself at `now`
        cannot hold the lock for a backlog."""
        now = time.time() if now is None else now
        limit = next(self._tie)
        while self.timers and self.timers[0][0] <= now and self.timers[0][1] < limit:
            _, _, kind, pipeline_id, run_id = heapq.heappop(self.timers)
            pipeline = self.pipelines.get(pipeline_id)
            if pipeline is None or pipeline.deleted:
                continue
            self.handlers[kind](self, pipeline_id, run_id, now)

    def next_timer_in(self, now: float) -> float | None:
        return max(0.0, self.timers[0][0] - now) if self.timers else None

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    def scaled_lease(self, seconds: float) -> float:
        """A lease window (the ack window, reportProgressTimeout) on the service's
        clock: scaled by `lease_time_scale`, which is `time_scale` unless set."""
        return seconds * self.lease_time_scale

    def is_paused(self, run: Run) -> bool:
        return run.status == PAUSED
