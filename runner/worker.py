"""The worker: fixed pollers feeding a ``TaskPool``, and the runner heartbeat beside
them.

Threads (style.md), every one made at ``start`` and joined at ``stop``:

* ``poll-<group>``, one per worker group, for the life of the worker: reserve a free
  task slot of the pool, then poll. So a group never has two polls outstanding and
  is never polled without room for the answer. Slots go to the pollers first come,
  first served (``slots.py``): with fewer free slots than groups, every group still
  gets its turn. A task goes to the pool with its slot (``TaskPool.submit``); an
  empty answer gives the slot back, and if it came back at once, a floor wait with
  jitter follows (at most one poll a second per group). Errors are
  retried inside the client (one retry loop, backing off up to a minute), cut
  short by the shutdown.
* the pool's ``task-slot-<n>`` threads (``taskpool.py``).
* ``runner-heartbeat``: ReportTaskRunnerHeartbeat for every group
  (``runnerbeat.RunnerBeat``). ``terminate: true`` is put in the dispatcher's
  inbox, as a signal would be.

Given a ``Liveness``, the pollers and the heartbeats are watched (``liveness.py``):
a poller must come round within the poll's read timeout plus its longest
backoff, a heartbeat within its interval plus one call's timeout (each plus 10 s).
Task threads are not: a task may rightly run for hours. The counters are in
``workerbooks.py``. Housekeeping (the journal's owed writes, pruning, reaping) is
``housekeeping.py``'s, driven by the journal.

Everything the worker needs is a constructor argument: nothing is set on it
after it is built. The worker never handles signals and never decides to stop:
the dispatcher calls ``drain``, ``expire``, ``hurry`` and ``stop``, following the
one shutdown state. On a drain the pollers stop at once (a poll in flight is
abandoned: if a task arrives on it, it is never acknowledged, so the service
offers it again after its ack window), while running executions keep
heartbeating until they end or the drain runs out; then ``expire`` sets
DRAIN_EXPIRED on each one's stop flag, and ``hurry`` FAST_STOP.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import structlog

from runner.aws.client import Client
from runner.liveness import Liveness
from runner.runnerbeat import RunnerBeat
from runner.shutdown import Shutdown
from runner.task.journal import Journal
from runner.taskmodel import StopReason
from runner.taskpool import TaskPool
from runner.workerbooks import WorkerBooks, WorkerStatistics

#: At most one poll a second per group when the service answers at once.
POLL_FLOOR_S = 1.0
#: After a bug in a poller's loop (never a service error: the client retries those).
POLL_BUG_BACKOFF_S = 60.0
#: How long ``stop`` waits for a poller; one in a long poll is left behind (daemon).
POLLER_JOIN_S = 1.0

__all__ = ["Worker", "WorkerStatistics", "default_hostname"]


class Worker:
    """Serves worker groups until stopped. ``start`` returns at once."""

    def __init__(
        self,
        *,
        client: Client,
        pool: TaskPool,
        runner_beat: RunnerBeat,
        books: WorkerBooks,
        worker_groups: list[str],
        hostname: str,
        taskrunner_id: str,
        shutdown: Shutdown,
        journal: Journal,
        log: structlog.typing.FilteringBoundLogger,
        poll_floor_s: float = POLL_FLOOR_S,
        liveness: Liveness | None = None,
        instance_identity: Mapping[str, str] | None = None,
    ) -> None:
        self._client = client
        self._pool = pool
        self._runner_beat = runner_beat
        self._books = books
        self._groups = worker_groups
        self._hostname = hostname
        self.taskrunner_id = taskrunner_id
        self._shutdown = shutdown
        self._journal = journal
        self._log = log
        self._poll_floor_s = poll_floor_s
        self._liveness = liveness
        #: The EC2 identity document and signature (``ec2.py``), sent with polls.
        self._instance_identity = instance_identity
        self._pollers = [
            threading.Thread(
                target=self._serve, args=(g,), name=f"poll-{g}", daemon=True
            )
            for g in worker_groups
        ]

    # ----------------------------------------------------------------- public

    def start(self, **details: Any) -> None:
        """Start the pollers, the task threads and the runner heartbeat; one
        ``worker_started`` line says so, with ``details`` (the daemon's)."""
        self._runner_beat.start()
        self._pool.start()
        for thread in self._pollers:
            thread.start()
        self._log.info(
            "worker_started",
            worker_groups=self._groups,
            hostname=self._hostname,
            taskrunner_id=self.taskrunner_id,
            max_tasks=self._pool.max_tasks,
            **details,
        )

    def drain(self) -> None:
        """The shutdown has begun: the pollers stop (they watch it), a wind-down
        under way is cut short (``Execution.drain``); say so."""
        self._pool.drain()
        self._log.info(
            "worker_draining",
            running=self._pool.running(),
            drain_timeout=self._shutdown.drain_timeout,
            reason=self._shutdown.reason,
        )

    def expire(self) -> None:
        """Once the drain has run out: stop every running attempt (DRAIN_EXPIRED,
        unless another reason came first). Idempotent; call it until idle."""
        if self._shutdown.expired():
            self._pool.cancel_all(StopReason.DRAIN_EXPIRED, "the drain ran out")

    def hurry(self) -> None:
        """Second signal: stop running attempts now (FAST_STOP) and report them."""
        self._log.info("worker_stopping_fast", running=self._pool.running())
        self._pool.hurry("a second stop signal")

    def idle(self) -> bool:
        """True when no task is running (pollers do not count)."""
        return self._pool.idle()

    def stop(self) -> None:
        """After the drain: end the task threads and the heartbeat, and join every
        thread. A poller still in a long poll is left behind (a daemon thread): an
        HTTP read cannot be interrupted, and its task would not be acknowledged."""
        self._pool.join()
        self._runner_beat.stop()
        for thread in self._pollers:
            if thread.ident is None:
                continue  # never started: stopped during the start-up recovery
            thread.join(POLLER_JOIN_S)
            if thread.is_alive():  # a poller in its long poll: normal, said at debug
                self._log.debug("thread_left_behind", thread=thread.name)

    def statistics(self) -> WorkerStatistics:
        """A snapshot of the counters (``workerbooks``). Thread-safe."""
        return self._books.snapshot()

    def journal_writable(self) -> bool:
        """False while the journal owes a write the host failed: no new task."""
        return self._journal.writable

    def pollers_alive(self) -> bool:
        """True while every poller thread runs (they end at the shutdown)."""
        return all(thread.is_alive() for thread in self._pollers)

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
                if not self._pool.reserve(group, POLL_FLOOR_S):
                    continue
                task, rest_s = self._poll(group)
                if task is None:
                    self._pool.release()  # first: another group may be waiting
                    stop.wait(rest_s)
                else:
                    self._pool.submit(group, task)
        except Exception:  # noqa: BLE001 - thread top: log, never die silently
            self._log.exception("poller_crashed", worker_group=group)
            return  # still watched: a dead poller goes overdue
        finally:
            self._pool.leave(group)
        if liveness is not None:
            liveness.leave()

    def _poll(self, group: str) -> tuple[dict[str, Any] | None, float]:
        """One poll (the client retries errors until the shutdown): the task, or
        None and how long to rest before the next (the floor wait after an empty
        answer that came at once, with jitter), which the caller waits out after
        it gives the slot back."""
        stop = self._shutdown.requested
        began = time.monotonic()
        self._books.polling()
        try:
            task = self._client.poll_for_task(
                group, self._hostname, self._instance_identity
            )
        except Exception:  # noqa: BLE001 - one catch per loop iteration: a bug
            if not stop.is_set():  # else the shutdown cut the retries short
                self._log.exception("poll_failed", worker_group=group)
            return None, POLL_BUG_BACKOFF_S
        self._books.polled()
        if task is not None and stop.is_set():
            # Abandoned: never acknowledged, so the service re-offers it.
            self._log.info(
                "task_abandoned_on_shutdown",
                worker_group=group,
                attempt_id=task.get("attemptId"),
            )
            return None, 0.0
        spent = time.monotonic() - began
        if task is None and spent < self._poll_floor_s:
            jitter = random.uniform(1.0, 1.2)  # noqa: S311 - not for secrets
            return None, (self._poll_floor_s - spent) * jitter
        return task, 0.0


def default_hostname() -> str:
    """The host's FQDN, as PollForTask and the runner heartbeat send it."""
    return socket.getfqdn()
