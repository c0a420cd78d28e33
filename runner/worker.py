"""The worker: fixed pollers, a bounded pool of task threads, the runner heartbeat.

Threads (style.md), every one made at ``start`` and joined at ``stop``:

* ``poll-<group>``, one per worker group, for the life of the worker: reserve a free
  task slot, then poll. So a group never has two polls outstanding and is never
  polled without room for the answer. A task goes to the pool with its slot; an
  empty answer that came back at once is followed by a floor wait with jitter (at
  most one poll a second per group). Errors are retried inside the client (one
  retry loop, backing off up to a minute), cut short by the shutdown.
* ``task-slot-<n>``, ``max_tasks`` of them: each takes a task, runs its
  ``Execution`` (renamed ``task-<digest>`` meanwhile, for stack dumps), and gives
  its slot back. The ``Execution`` owns its ``task-<digest>-progress`` heartbeat.
* ``runner-heartbeat``: ReportTaskRunnerHeartbeat for every group
  (``runnerbeat.RunnerBeat``, and its preflight). ``terminate: true`` is put in
  the dispatcher's inbox, as a signal would be.

Given a ``Liveness``, the pollers and the heartbeats are watched (``liveness.py``):
a poller must come round within the poll's read timeout plus its longest
backoff, a heartbeat within its interval plus one call's timeout (each plus 10 s).
Task threads are not: a task may rightly run for hours. The counters are in
``workerbooks.py``.

The worker never handles signals and never decides to stop: the dispatcher
(``daemon.py``) calls ``drain``, ``expire``, ``hurry`` and ``stop``, following the one
shutdown state. On a drain the pollers stop at once (a poll in flight is abandoned:
if a task arrives on it, it is never acknowledged, so the service offers it again
after its ack window), while running executions keep heartbeating until they end or
the drain runs out; then ``expire`` sets DRAIN_EXPIRED on each one's stop flag, and
``hurry`` FAST_STOP.
"""

from __future__ import annotations

import queue
import random
import socket
import threading
import time
from typing import Any

import structlog

from runner import tasklabels
from runner.aws.client import Client
from runner.aws.s3 import S3
from runner.drain import Shutdown
from runner.liveness import Liveness
from runner.runnerbeat import RunnerBeat
from runner.signals import WAKE, Request
from runner.task.execution import Execution, ExecutionResult, ExecutionSettings
from runner.task.journal import Journal
from runner.taskmodel import StopReason
from runner.workdir import WorkDir
from runner.workerbooks import WorkerBooks, WorkerStatistics

#: At most one poll a second per group when the service answers at once.
POLL_FLOOR_S = 1.0
#: After a bug in a poller's loop (never a service error: the client retries those).
POLL_BUG_BACKOFF_S = 60.0
#: How long ``stop`` waits for a poller; one in a long poll is left behind (daemon).
POLLER_JOIN_S = 1.0
#: Pruning runs at most this often, and 24 times within ``keep_attempts`` at least
#: (so ``keep_attempts = 0`` prunes at every housekeeping pass).
PRUNE_EVERY_S = 3600.0

__all__ = ["Worker", "WorkerStatistics", "default_hostname"]


class Worker:
    """Serves worker groups until stopped. ``start`` returns at once."""

    def __init__(
        self,
        *,
        client: Client,
        s3: S3,
        work_dir: WorkDir,
        worker_groups: list[str],
        hostname: str,
        taskrunner_id: str,
        max_tasks: int,
        runner_heartbeat_interval: float,
        keep_attempts: float,
        execution_settings: ExecutionSettings,
        shutdown: Shutdown,
        requests: queue.SimpleQueue[Request],
        journal: Journal,
        log: structlog.typing.FilteringBoundLogger,
        poll_floor_s: float = POLL_FLOOR_S,
        liveness: Liveness | None = None,
    ) -> None:
        self._client = client
        self._s3 = s3
        self._work_dir = work_dir
        self._groups = worker_groups
        self._hostname = hostname
        self.taskrunner_id = taskrunner_id
        self._max_tasks = max_tasks
        self._slots = threading.BoundedSemaphore(max_tasks)
        self._keep_attempts = keep_attempts
        self._settings = execution_settings
        self._shutdown = shutdown
        self._requests = requests
        self._journal = journal
        #: Attempts whose earlier run left processes that could not be killed
        #: (``recovery``): never run beside them.
        self.blocked_attempts: frozenset[str] = frozenset()
        #: The EC2 identity document and signature (``ec2.py``), set before start.
        self.instance_identity: dict[str, str] | None = None
        self._log = log
        self._poll_floor_s = poll_floor_s
        self._lock = threading.Lock()
        self._running: dict[object, Execution] = {}
        self._tasks: queue.SimpleQueue[tuple[str, dict[str, Any]] | None]
        self._tasks = queue.SimpleQueue()
        self._books = WorkerBooks(max_tasks, tuple(worker_groups))
        self._liveness = liveness
        self._last_prune = 0.0
        self._runner_beat = RunnerBeat(
            client=client,
            taskrunner_id=taskrunner_id,
            groups=worker_groups,
            hostname=hostname,
            interval_s=runner_heartbeat_interval,
            requests=requests,
            books=self._books,
            log=log,
            liveness=liveness,
        )
        self._threads = [
            threading.Thread(
                target=self._serve, args=(g,), name=f"poll-{g}", daemon=True
            )
            for g in worker_groups
        ] + [
            threading.Thread(target=self._run_tasks, name=f"task-slot-{n}", daemon=True)
            for n in range(1, max_tasks + 1)
        ]
        self.error: BaseException | None = None

    # ----------------------------------------------------------------- public

    def preflight(self) -> None:
        """The runner heartbeat's preflight (``RunnerBeat.preflight``): raises
        ``ConfigError`` when the service refuses this runner."""
        self._runner_beat.preflight()

    def start(self, **details: Any) -> None:
        """Start the pollers, the task threads and the runner heartbeat; one
        ``worker_started`` line says so, with ``details`` (the daemon's)."""
        self._prune()
        self._runner_beat.start()
        for thread in self._threads:
            thread.start()
        self._log.info(
            "worker_started",
            worker_groups=self._groups,
            hostname=self._hostname,
            taskrunner_id=self.taskrunner_id,
            max_tasks=self._max_tasks,
            **details,
        )

    def drain(self) -> None:
        """The shutdown has begun: the pollers stop (they watch it), a wind-down
        under way is cut short (``Execution.drain``); say so."""
        for execution in self._executions():
            execution.drain()
        self._log.info(
            "worker_draining",
            running=len(self._executions()),
            drain_timeout=self._shutdown.drain_timeout,
            reason=self._shutdown.reason,
        )

    def expire(self) -> None:
        """Once the drain has run out: stop every running attempt (DRAIN_EXPIRED,
        unless another reason came first). Idempotent; call it until idle."""
        if self._shutdown.expired():
            for execution in self._executions():
                execution.stop(StopReason.DRAIN_EXPIRED, "the drain ran out")

    def hurry(self) -> None:
        """Second signal: stop running attempts now (FAST_STOP) and report them."""
        self._log.info("worker_stopping_fast", running=len(self._executions()))
        for execution in self._executions():
            execution.hurry("a second stop signal")

    def idle(self) -> bool:
        """True when no task is running (pollers do not count)."""
        with self._lock:
            return not self._running

    def stop(self) -> None:
        """After the drain: end the task threads and the heartbeat, and join every
        thread. A poller still in a long poll is left behind (a daemon thread): an
        HTTP read cannot be interrupted, and its task would not be acknowledged."""
        for _ in range(self._max_tasks):
            self._tasks.put(None)
        self._runner_beat.stop()
        for thread in self._threads:
            if thread.ident is None:
                continue  # never started: stopped during the start-up recovery
            thread.join(POLLER_JOIN_S if thread.name.startswith("poll-") else None)
            if thread.is_alive():  # a poller in its long poll: normal, said at debug
                self._log.debug("thread_left_behind", thread=thread.name)

    def housekeeping(self) -> None:
        """Called by the dispatcher: make the journal's owed writes again (every
        ``journal.RETRY_EVERY_S``), prune old attempts. (Reaping adopted orphans is
        the daemon's: the worker never touches processes.)"""
        self._journal.retry()
        every_s = min(PRUNE_EVERY_S, self._keep_attempts * 86400.0 / 24)
        if time.monotonic() - self._last_prune >= every_s:
            self._prune()

    def statistics(self) -> WorkerStatistics:
        """A snapshot of the counters (``workerbooks``). Thread-safe."""
        return self._books.snapshot()

    def journal_writable(self) -> bool:
        """False while the journal owes a write the host failed: no new task."""
        return self._journal.writable

    def pollers_alive(self) -> bool:
        """True while every poller thread runs (they end at the shutdown)."""
        return all(t.is_alive() for t in self._threads if t.name.startswith("poll-"))

    def _executions(self) -> list[Execution]:
        with self._lock:
            return list(self._running.values())

    # ---------------------------------------------------------------- polling

    def _serve(self, group: str) -> None:
        """A poller's thread body: reserve a slot, poll, hand a task over with its
        slot, until the shutdown begins."""
        stop, liveness = self._shutdown.requested, self._liveness
        if liveness is not None:
            policy = self._client.policies.poll
            bound_s = self._client.poll_read_timeout_s + policy.wait_max_s
            liveness.enter(f"poll-{group}", bound_s)
        try:
            while not stop.is_set():
                if liveness is not None:
                    liveness.tick()
                if not self._journal.writable:  # no new task until it is again
                    stop.wait(POLL_FLOOR_S)
                    continue
                if not self._slots.acquire(timeout=POLL_FLOOR_S):
                    continue
                task = self._poll(group)
                if task is None:
                    self._slots.release()
                else:
                    self._tasks.put((group, task))
        except Exception as exc:  # noqa: BLE001 - thread top: log, keep, never die silently
            self._log.exception("poller_crashed", worker_group=group)
            self.error = exc
            return  # still watched: a dead poller goes overdue
        if liveness is not None:
            liveness.leave()

    def _poll(self, group: str) -> dict[str, Any] | None:
        """One poll (the client retries errors until the shutdown), then the floor
        wait after an empty answer that came at once. None: no task to run."""
        stop = self._shutdown.requested
        began = time.monotonic()
        self._books.polling()
        try:
            task = self._client.poll_for_task(
                group, self._hostname, self.instance_identity
            )
        except Exception:  # noqa: BLE001 - one catch per loop iteration: a bug
            if not stop.is_set():  # else the shutdown cut the retries short
                self._log.exception("poll_failed", worker_group=group)
                stop.wait(POLL_BUG_BACKOFF_S)
            return None
        self._books.polled()
        if task is not None and stop.is_set():
            # Abandoned: never acknowledged, so the service re-offers it.
            self._log.info(
                "task_abandoned_on_shutdown",
                worker_group=group,
                attempt_id=task.get("attemptId"),
            )
            return None
        spent = time.monotonic() - began
        if task is None and spent < self._poll_floor_s:
            stop.wait((self._poll_floor_s - spent) * random.uniform(1.0, 1.2))  # noqa: S311 - jitter
        return task

    # ------------------------------------------------------------------ tasks

    def _run_tasks(self) -> None:
        """A task thread's body: run each task handed over, until told to end."""
        try:
            while (item := self._tasks.get()) is not None:
                self._run_task(*item)
        except Exception as exc:  # noqa: BLE001 - thread top: log, keep, never die silently
            self._log.exception("task_thread_crashed")
            self.error = exc

    def _run_task(self, group: str, raw_task: dict[str, Any]) -> None:
        """Run one task on this thread, then give its slot back. Never raises."""
        thread = threading.current_thread()
        own_name = thread.name
        key = object()  # the task id may be what is broken
        result: ExecutionResult | None = None
        began = time.monotonic()
        try:
            # metrics' labels; ``ran`` below is True only once they are read
            arrived = tasklabels.arrival(group, raw_task, time.time())
            if not isinstance(raw_task.get("taskId"), str) or not raw_task["taskId"]:
                # Nothing can be reported without it; the service re-offers it
                # after its ack window, which is all that can be done.
                self._log.warning(
                    "task_skipped",
                    worker_group=group,
                    reason="no taskId",
                    attempt_id=raw_task.get("attemptId"),
                )
                return
            if raw_task.get("attemptId") in self.blocked_attempts:
                # Never acknowledged: the service offers it again, maybe elsewhere.
                self._log.error(
                    "task_skipped",
                    worker_group=group,
                    reason="an earlier run of this attempt is still alive",
                    attempt_id=raw_task.get("attemptId"),
                )
                return
            execution = Execution(
                raw_task,
                client=self._client,
                s3=self._s3,
                work_dir=self._work_dir,
                settings=self._settings,
                shutdown=self._shutdown,
                journal=self._journal,
                log=self._log.bind(worker_group=group),
            )
            thread.name = f"task-{execution.digest}"
            with self._lock:
                self._running[key] = execution
            self._books.started(group, arrived.queue_wait_s)
            result = execution.run()
        except Exception:  # noqa: BLE001 - the task's top: log, record, go on
            self._log.exception("task_run_crashed")
        finally:
            with self._lock:
                ran = self._running.pop(key, None) is not None
            if ran:
                end = tasklabels.ending(result)
                self._books.ended(
                    group,
                    arrived.activity_type,
                    outcome=end.outcome,
                    error_class=end.error_class,
                    stop_reason=end.stop_reason,
                    duration_s=time.monotonic() - began,
                )
            self._slots.release()
            thread.name = own_name
            if self._shutdown.requested.is_set():
                self._requests.put(WAKE)  # the dispatcher may be waiting for idle

    # ------------------------------------------------------------ housekeeping

    def _prune(self) -> None:
        """Prune old attempt folders, never one whose attempt is running or that
        the journal still holds."""
        self._last_prune = time.monotonic()
        running = {e.paths.root for e in self._executions() if e.paths is not None}
        keep = running | self._journal.folders()
        removed = self._work_dir.prune_attempts(self._keep_attempts, keep=keep)
        if removed:
            self._log.info("attempts_pruned", removed=removed)


def default_hostname() -> str:
    """The host's FQDN, as PollForTask and the runner heartbeat send it."""
    return socket.getfqdn()
