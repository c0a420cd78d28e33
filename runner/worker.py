"""The worker: pollers, task slots, the runner heartbeat and the drain.

Threads (style.md):

* ``poll-<group>``, one polling per worker group: reserve a free slot, then poll. So
  a group never has two polls outstanding and is never polled without room for the
  answer. An empty answer that came back at once is followed by a floor wait with
  jitter (at most one poll a second per group); errors back off exponentially.
* The thread that received a task runs it (renamed ``task-<digest>``): nothing lies
  between the answer and the ack, and a one-slot runner creates no thread per task.
  With more slots it starts the group's next poller once the task is acknowledged,
  and ends with its task.
  The ``Execution`` owns its own ``task-<digest>-progress`` heartbeat thread.
* ``runner-heartbeat``: ReportTaskRunnerHeartbeat for every group; ``terminate: true``
  starts a drain exactly as SIGTERM does.

The worker never handles signals: ``cli`` owns the main thread and calls ``drain``,
``expire``, ``hurry`` and ``wait_done``. On a drain the pollers stop at once (a poll in
flight is abandoned: if a task arrives on it, it is never acknowledged, so the service
offers it again after its ack window), while running executions keep heartbeating
until they end or the drain runs out; then ``expire`` sets DRAIN_EXPIRED on each
one's stop flag, and ``hurry`` FAST_STOP.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from runner import supervisor
from runner.aws.client import Client
from runner.aws.s3 import S3
from runner.drain import Drain
from runner.errors import ConfigError, RejectedRequestError, TransientServiceError
from runner.heartbeat import Heartbeat
from runner.task.execution import Execution, ExecutionResult, ExecutionSettings
from runner.taskmodel import StopReason
from runner.workdir import WorkDir

#: At most one poll a second per group when the service answers at once.
POLL_FLOOR_S = 1.0
#: Backoff after failed polls: doubles per consecutive error, capped.
POLL_BACKOFF_INITIAL_S = 1.0
POLL_BACKOFF_MAX_S = 60.0
#: How often idle waits look up (slot free? stopping?).
SLOT_WAIT_S = 0.5
PRUNE_EVERY_S = 3600.0
#: Orphan reaping scans the process table: often enough to keep zombies few,
#: rarely enough that an idle runner stays near 0 % CPU.
REAP_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class WorkerStatistics:
    """A snapshot of the worker's counters."""

    polls: int
    tasks_started: int
    tasks_running: int
    outcomes: dict[str, int]
    terminate_requested: bool


class Worker:
    """Serves worker groups until drained. ``start`` returns at once."""

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
        drain_timeout: float,
        keep_attempts: float,
        execution_settings: ExecutionSettings,
        log: structlog.typing.FilteringBoundLogger,
        poll_floor_s: float = POLL_FLOOR_S,
    ) -> None:
        self._client = client
        self._s3 = s3
        self._work_dir = work_dir
        self._groups = worker_groups
        self._hostname = hostname
        self._taskrunner_id = taskrunner_id
        self._max_tasks = max_tasks
        self._slots = threading.BoundedSemaphore(max_tasks)
        self._drain_timeout = drain_timeout
        self._keep_attempts = keep_attempts
        self._settings = execution_settings
        self._log = log
        self._poll_floor_s = poll_floor_s
        self.drain_state = Drain()
        self._lock = threading.Lock()
        self._all_done = threading.Condition(self._lock)
        self._running: dict[object, Execution] = {}
        self._polls = 0
        self._started = 0
        self._outcomes: dict[str, int] = {}
        self._terminate = False
        self._last_prune = 0.0
        self._last_reap = 0.0
        self._runner_heartbeat = Heartbeat(
            self._beat_runner,
            interval_s=runner_heartbeat_interval,
            name="runner-heartbeat",
            log=log,
            first_delay_s=0.0,
        )
        self.error: BaseException | None = None

    # ----------------------------------------------------------------- public

    def preflight(self) -> None:
        """One runner heartbeat per group before anything starts, so that bad
        credentials, a wrong endpoint or a missing permission stop the runner at
        once with a clear message (``ConfigError``, exit 78) instead of a log of
        failed polls. A transient failure only warns: the service may come back."""
        try:
            self._beat_runner()
        except RejectedRequestError as exc:
            raise ConfigError(
                f"the Data Pipeline service refused this runner ({exc.code}): "
                f"{exc.message}. Check the credentials, region and endpoint_url."
            ) from exc
        except TransientServiceError as exc:
            self._log.warning("preflight_failed", error=exc.code, message=exc.message)

    def start(self) -> None:
        """Start the pollers and the runner heartbeat."""
        self._prune()
        self._runner_heartbeat.start()
        for group in self._groups:
            self._spawn_poller(group)
        self._log.info(
            "worker_started",
            worker_groups=self._groups,
            hostname=self._hostname,
            taskrunner_id=self._taskrunner_id,
        )

    def drain(self) -> None:
        """Stop polling; running tasks get ``drain_timeout`` to finish."""
        if not self.drain_state.requested.is_set():
            self._log.info(
                "worker_draining",
                running=len(self._running),
                drain_timeout=self._drain_timeout,
            )
        self.drain_state.begin(self._drain_timeout)

    def expire(self) -> None:
        """Once the drain has run out: stop every running attempt (DRAIN_EXPIRED,
        unless another reason came first). Idempotent; call it until idle."""
        if self.drain_state.expired():
            for execution in self._executions():
                execution.stop(StopReason.DRAIN_EXPIRED, "the drain ran out")

    def hurry(self) -> None:
        """Second signal: kill running trees now and report them."""
        if not self.drain_state.fast.is_set():
            self._log.info("worker_stopping_fast", running=len(self._running))
        self.drain_state.hurry()
        for execution in self._executions():
            execution.hurry("a second stop signal")

    def _executions(self) -> list[Execution]:
        with self._lock:
            return list(self._running.values())

    @property
    def draining(self) -> bool:
        return self.drain_state.requested.is_set()

    def idle(self) -> bool:
        """True when no task is running (pollers do not count)."""
        with self._lock:
            return not self._running

    def wait_done(self, timeout: float) -> bool:
        """After ``drain``: True once every running task has been seen to its end
        (its final status sent, its slot given back)."""
        with self._all_done:
            return self._all_done.wait_for(lambda: not self._running, timeout)

    def stop(self) -> None:
        """After the drain: stop the runner heartbeat."""
        self._runner_heartbeat.stop()
        self._runner_heartbeat.join(1.0)

    def housekeeping(self) -> None:
        """Called by the main loop: reap adopted orphans, prune old attempts."""
        now = time.monotonic()
        if now - self._last_reap < REAP_EVERY_S:
            return
        self._last_reap = now
        with self._lock:
            owned = [e.supervisor.pid for e in self._running.values() if e.supervisor]
        for pid in supervisor.reap_orphans(owned):
            self._log.info("orphan_reaped", pid=pid)
        if time.monotonic() - self._last_prune > PRUNE_EVERY_S:
            self._prune()

    def statistics(self) -> WorkerStatistics:
        with self._lock:
            return WorkerStatistics(
                polls=self._polls,
                tasks_started=self._started,
                tasks_running=len(self._running),
                outcomes=dict(self._outcomes),
                terminate_requested=self._terminate,
            )

    @property
    def terminate_requested(self) -> bool:
        return self._terminate

    # ---------------------------------------------------------------- polling

    def _serve(self, group: str) -> None:
        """A poller's thread body: poll for ``group`` and run each task on this very
        thread, so that no hand-off stands between the answer and the ack. With more
        than one slot, polling goes on in a new thread, started once the task is
        acknowledged (its poll never delays the ack), and this thread ends with the
        task; with one slot, this thread polls again after it."""
        while True:
            task = self._next_task(group)
            if task is None:
                return
            if self._max_tasks > 1:
                self._run_handing_over(group, task)
                return
            self._run_task(group, task, after_ack=None)

    def _run_handing_over(self, group: str, task: dict[str, Any]) -> None:
        """Run ``task`` here; the group's next poller starts once the task is
        acknowledged, or at the end if no ack came to pass (a crash before it)."""
        handed = threading.Event()

        def hand_over() -> None:
            if not handed.is_set():
                handed.set()
                self._spawn_poller(group)

        self._run_task(group, task, after_ack=hand_over)
        hand_over()

    def _spawn_poller(self, group: str) -> None:
        thread = threading.Thread(
            target=self._serve, args=(group,), name=f"poll-{group}", daemon=True
        )
        thread.start()

    def _next_task(self, group: str) -> dict[str, Any] | None:
        """Reserve a slot, poll, repeat until a task comes (returned with its slot
        held) or the drain begins (None, no slot held)."""
        errors = 0
        stop = self.drain_state.requested
        while not stop.is_set():
            if not self._slots.acquire(timeout=SLOT_WAIT_S):
                continue
            began = time.monotonic()
            try:
                task = None if stop.is_set() else self._poll_once(group)
                errors = 0
            except Exception as exc:  # noqa: BLE001 - one catch per loop iteration
                self._slots.release()
                errors += 1
                wait = min(
                    POLL_BACKOFF_MAX_S, POLL_BACKOFF_INITIAL_S * 2 ** (errors - 1)
                )
                self._log.warning(
                    "poll_failed",
                    worker_group=group,
                    error=repr(exc),
                    consecutive=errors,
                    backoff_s=wait,
                )
                stop.wait(wait * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
                continue
            if task is not None:
                return task
            self._slots.release()
            spent = time.monotonic() - began
            if spent < self._poll_floor_s:
                stop.wait((self._poll_floor_s - spent) * random.uniform(1.0, 1.2))  # noqa: S311
        return None

    def _poll_once(self, group: str) -> dict[str, Any] | None:
        with self._lock:
            self._polls += 1
        task = self._client.poll_for_task(group, self._hostname)
        if task is not None and self.drain_state.requested.is_set():
            # Abandoned: never acknowledged, so the service re-offers it.
            self._log.info(
                "task_abandoned_on_shutdown",
                worker_group=group,
                attempt_id=task.get("attemptId"),
            )
            return None
        return task

    def _run_task(
        self,
        group: str,
        raw_task: dict[str, Any],
        after_ack: Callable[[], None] | None,
    ) -> None:
        """Run one task on this thread (renamed ``task-<digest>`` meanwhile, for
        stack dumps), then give its slot back. Never raises: a bug is logged.
        ``after_ack``: see ``Execution.run``."""
        thread = threading.current_thread()
        own_name = thread.name
        key = object()  # the task id may be what is broken
        result: ExecutionResult | None = None
        if not isinstance(raw_task.get("taskId"), str) or not raw_task["taskId"]:
            # Nothing can be reported without it; the service re-offers it after
            # its ack window, which is all that can be done.
            self._log.warning(
                "task_skipped",
                worker_group=group,
                reason="no taskId",
                attempt_id=raw_task.get("attemptId"),
            )
            self._slots.release()
            return
        try:
            execution = Execution(
                raw_task,
                client=self._client,
                s3=self._s3,
                work_dir=self._work_dir,
                settings=self._settings,
                log=self._log.bind(worker_group=group),
            )
            thread.name = f"task-{execution.digest}"
            with self._lock:
                self._running[key] = execution
                self._started += 1
            result = execution.run(after_ack)
        except Exception as exc:  # noqa: BLE001 - the task's top: log, record, go on
            self._log.exception("task_thread_crashed")
            self.error = exc
        finally:
            with self._lock:
                self._running.pop(key, None)
                label = result.outcome if result else "crashed"
                self._outcomes[label] = self._outcomes.get(label, 0) + 1
                self._all_done.notify_all()
            self._slots.release()
            thread.name = own_name

    # --------------------------------------------------------------- heartbeat

    def _beat_runner(self) -> None:
        for group in self._groups:
            terminate = self._client.report_task_runner_heartbeat(
                self._taskrunner_id, group, self._hostname
            )
            if terminate and not self._terminate:
                self._terminate = True
                self._log.info("runner_terminate_requested", worker_group=group)
                self.drain()

    def _prune(self) -> None:
        self._last_prune = time.monotonic()
        removed = self._work_dir.prune_attempts(self._keep_attempts)
        if removed:
            self._log.info("attempts_pruned", removed=removed)


def default_hostname() -> str:
    """The host's FQDN, as PollForTask and the runner heartbeat send it."""
    return socket.getfqdn()
