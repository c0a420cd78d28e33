"""The task pool: ``max_tasks`` task threads, each running one ``Execution`` at a
time, and the slots the pollers reserve before they poll.

Threads: ``task-slot-<n>``, ``max_tasks`` of them, made at ``start`` and joined
at ``join``: each takes a task handed over with its slot (``submit``), runs its
``Execution`` (renamed ``task-<digest>`` meanwhile, for stack dumps) and gives the
slot back. The ``Execution`` owns its ``task-<digest>-progress`` heartbeat.

Owns: the slots, the running executions, and the stops that reach them: ``drain``
(a wind-down under way is cut short), ``cancel_all`` (each running attempt is
stopped for one reason), ``hurry`` (a second signal). ``shutdown_and_wait`` is the
drain in one call, for a caller that has nothing else to watch meanwhile.

Must not: poll, decide to stop (the dispatcher follows the one shutdown state),
or touch processes itself (each execution owns its tree). Split from
``worker.py`` by concept: the worker keeps the pollers and the runner heartbeat.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import structlog

from runner import tasklabels
from runner.aws.client import Client
from runner.aws.s3 import S3
from runner.shutdown import Shutdown
from runner.signals import WAKE, Request
from runner.slots import Slots
from runner.task.execution import Execution, ExecutionResult, ExecutionSettings
from runner.task.journal import Journal
from runner.taskmodel import StopReason
from runner.workdir import WorkDir
from runner.workerbooks import WorkerBooks


class TaskPool:
    """A bounded pool of task threads. Thread-safe: ``submit``, ``reserve`` and
    ``release`` from the pollers, the stops from the dispatcher."""

    def __init__(
        self,
        *,
        max_tasks: int,
        client: Client,
        s3: S3,
        work_dir: WorkDir,
        settings: ExecutionSettings,
        shutdown: Shutdown,
        journal: Journal,
        books: WorkerBooks,
        requests: queue.SimpleQueue[Request],
        log: structlog.typing.FilteringBoundLogger,
        blocked_attempts: frozenset[str] = frozenset(),
    ) -> None:
        self.max_tasks = max_tasks
        self._client = client
        self._s3 = s3
        self._work_dir = work_dir
        self._settings = settings
        self._shutdown = shutdown
        self._journal = journal
        self._books = books
        self._requests = requests
        self._log = log
        #: Attempts whose earlier run left processes that could not be killed
        #: (``recovery``): never run beside them.
        self._blocked_attempts = blocked_attempts
        self._slots = Slots(max_tasks)
        self._lock = threading.Lock()
        self._running: dict[object, Execution] = {}
        #: Set while no task runs; waited on by ``wait_idle``.
        self._idle = threading.Event()
        self._idle.set()
        self._tasks: queue.SimpleQueue[tuple[str, dict[str, Any]] | None]
        self._tasks = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run_tasks, name=f"task-slot-{n}", daemon=True)
            for n in range(1, max_tasks + 1)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    # -- slots and tasks ------------------------------------------------------------

    def reserve(self, group: str, timeout_s: float) -> bool:
        """Take a free slot for ``group``'s poller, waiting up to ``timeout_s``;
        False: none came free (the poller keeps its place: ``slots.Slots``)."""
        return self._slots.take(group, timeout_s)

    def release(self) -> None:
        """Give back a slot reserved for a poll that brought no task."""
        self._slots.give_back()

    def leave(self, group: str) -> None:
        """``group``'s poller has ended: it waits for no slot any more."""
        self._slots.leave(group)

    def submit(self, group: str, raw_task: dict[str, Any]) -> None:
        """Run ``raw_task`` on a task thread, in the slot the caller reserved."""
        self._tasks.put((group, raw_task))

    # -- stops ------------------------------------------------------------------------

    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def idle(self) -> bool:
        """True when no task is running."""
        return self._idle.is_set()

    def wait_idle(self, timeout_s: float | None) -> bool:
        """Block until no task runs, or ``timeout_s``; True when idle."""
        return self._idle.wait(timeout_s)

    def drain(self) -> None:
        """The shutdown has begun: a wind-down under way is cut short
        (``Execution.drain``); the running attempts go on."""
        for execution in self._executions():
            execution.drain()

    def cancel_all(self, reason: StopReason, detail: str) -> None:
        """Stop every running attempt for ``reason`` (unless another came first)."""
        for execution in self._executions():
            execution.stop(reason, detail)

    def hurry(self, detail: str) -> None:
        """Stop every running attempt now (FAST_STOP) and report it."""
        for execution in self._executions():
            execution.hurry(detail)

    def shutdown_and_wait(self, drain_s: float) -> bool:
        """The drain in one call: cut wind-downs short, let the running attempts
        end within ``drain_s``, then stop the rest (DRAIN_EXPIRED) and wait until
        each has reported; then end the task threads (``join``). True when every
        task ended within the drain."""
        self.drain()
        ended = self.wait_idle(drain_s)
        if not ended:
            self.cancel_all(StopReason.DRAIN_EXPIRED, "the drain ran out")
            self.wait_idle(None)
        self.join()
        return ended

    def join(self) -> None:
        """End the task threads once the tasks have ended, and join them."""
        for _ in range(self.max_tasks):
            self._tasks.put(None)
        for thread in self._threads:
            if thread.ident is not None:  # else never started
                thread.join()

    def _executions(self) -> list[Execution]:
        with self._lock:
            return list(self._running.values())

    # -- task threads ---------------------------------------------------------------

    def _run_tasks(self) -> None:
        """A task thread's body: run each task handed over, until told to end."""
        try:
            while (item := self._tasks.get()) is not None:
                self._run_task(*item)
        except Exception:  # noqa: BLE001 - thread top: log, never die silently
            self._log.exception("task_thread_crashed")

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
            if self._skipped(group, raw_task):
                return
            execution = self._execution(group, raw_task)
            thread.name = f"task-{execution.digest}"
            with self._lock:
                self._running[key] = execution
                self._idle.clear()
            self._books.started(group, arrived.queue_wait_s)
            result = execution.run()
        except Exception:  # noqa: BLE001 - the task's top: log, record, go on
            self._log.exception("task_run_crashed")
        finally:
            with self._lock:
                ran = self._running.pop(key, None) is not None
                if not self._running:
                    self._idle.set()
            if ran:
                self._ended(group, arrived.activity_type, began, result)
            self._slots.give_back()
            thread.name = own_name
            if self._shutdown.requested.is_set():
                self._requests.put(WAKE)  # the dispatcher may be waiting for idle

    def _ended(
        self,
        group: str,
        activity_type: str,
        began: float,
        result: ExecutionResult | None,
    ) -> None:
        end = tasklabels.ending(result)
        self._books.ended(
            group,
            activity_type,
            outcome=end.outcome,
            error_class=end.error_class,
            stop_reason=end.stop_reason,
            duration_s=time.monotonic() - began,
        )

    def _skipped(self, group: str, raw_task: dict[str, Any]) -> bool:
        """True, and said, for a task that cannot or must not run here."""
        if not isinstance(raw_task.get("taskId"), str) or not raw_task["taskId"]:
            # Nothing can be reported without it; the service re-offers it
            # after its ack window, which is all that can be done.
            self._log.warning(
                "task_skipped",
                worker_group=group,
                reason="no taskId",
                attempt_id=raw_task.get("attemptId"),
            )
            return True
        if raw_task.get("attemptId") in self._blocked_attempts:
            # Never acknowledged: the service offers it again, maybe elsewhere.
            self._log.error(
                "task_skipped",
                worker_group=group,
                reason="an earlier run of this attempt is still alive",
                attempt_id=raw_task.get("attemptId"),
            )
            return True
        return False

    def _execution(self, group: str, raw_task: dict[str, Any]) -> Execution:
        return Execution(
            raw_task,
            client=self._client,
            s3=self._s3,
            work_dir=self._work_dir,
            settings=self._settings,
            shutdown=self._shutdown,
            journal=self._journal,
            log=self._log.bind(worker_group=group),
        )
