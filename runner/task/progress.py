"""The progress heartbeat of one task, and the lease it keeps.

Owns: calling ReportTaskProgress every ``interval_s`` on the task's own
``task-<digest>-progress`` thread, from the ack until the final status is sent,
turning its answers into stop reasons
(``canceled: true`` -> CANCELED; the task or pipeline gone -> LOST), and telling
when the lease runs out: ``lease_timeout`` seconds after the last report that
succeeded (or the ack).

Must not: touch the task's process, or send a final status. It only reports what it
learns through the ``on_stop`` callback (the attempt's ``StopFlag.set``); the
execution waits on its clocks, ``lease_deadline`` among them, and acts.

Why its own thread: a task's output goes to files and slow uploads run elsewhere,
so nothing the task does can starve its heartbeat, and the heartbeat goes on while
the runner drains and until the final status is sent (Temporal #2903: a heartbeat
that stops during a drain makes the service re-run the work).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from structlog.typing import FilteringBoundLogger

from runner.aws.client import CALL_TIMEOUT_S, Client
from runner.errors import ServiceError, TaskNotFoundError
from runner.heartbeat import Heartbeat
from runner.taskmodel import StopReason

#: At least this many progress reports fit into a task's reportProgressTimeout.
BEATS_PER_PROGRESS_TIMEOUT = 3


class Progress:
    """Made and started by ``acknowledge``; ``stop`` after the final status."""

    @classmethod
    def acknowledge(
        cls,
        client: Client,
        task_id: str,
        *,
        name: str,
        interval_s: float,
        lease_timeout_s: float,
        on_stop: Callable[[StopReason, str], object],
        log: FilteringBoundLogger,
    ) -> Progress | None:
        """The ack (the first ReportTaskProgress, before anything else), then the
        heartbeat, started. None when there is nothing to run, ``on_stop`` told
        why: the task is gone, it was canceled, or the ack failed (the service
        re-offers an unacknowledged task after its ack window: dropping it loses
        nothing and cannot run it twice)."""
        try:
            canceled = client.report_task_progress(task_id, first=True)
        except TaskNotFoundError as exc:
            on_stop(StopReason.LOST, f"gone before the ack: {exc.code}")
            return None
        except ServiceError as exc:
            log.error("task_ack_failed", error=exc.code, message=exc.message)  # noqa: TRY400 - an outage: one line, no traceback
            on_stop(StopReason.LOST, f"ack failed: {exc.code}")
            return None
        log.info("task_acknowledged", canceled=canceled)
        if canceled:
            on_stop(StopReason.CANCELED, "canceled at the ack")
            return None
        progress = cls(
            client=client,
            task_id=task_id,
            name=name,
            interval_s=interval_s,
            lease_timeout_s=lease_timeout_s,
            on_stop=on_stop,
            log=log,
        )
        progress.start()
        return progress

    def __init__(
        self,
        *,
        client: Client,
        task_id: str,
        name: str,
        interval_s: float,
        lease_timeout_s: float,
        on_stop: Callable[[StopReason, str], object],
        log: FilteringBoundLogger,
    ) -> None:
        self._client = client
        self._task_id = task_id
        self._interval_s = interval_s
        self.lease_timeout_s = lease_timeout_s
        self._on_stop = on_stop
        self._acked_at = time.monotonic()
        self._heartbeat = Heartbeat(
            self._beat,
            interval_s=interval_s,
            name=name,
            log=log,
            liveness=client.liveness,
            call_timeout_s=CALL_TIMEOUT_S,
        )

    def start(self) -> None:
        """Start beating. The lease counts from the ack (when this object was made)."""
        self._heartbeat.start()

    def stop(self) -> None:
        self._heartbeat.stop()

    def fit_timeout(self, report_progress_timeout_s: float | None) -> None:
        """Beat often enough that three reports fit in the task's
        reportProgressTimeout, when it is shorter than the interval allows."""
        if report_progress_timeout_s:
            self._interval_s = min(
                self._interval_s,
                report_progress_timeout_s / BEATS_PER_PROGRESS_TIMEOUT,
            )
            self._heartbeat.set_interval(self._interval_s)

    def lease_deadline(self) -> float:
        """``time.monotonic()`` at which the lease runs out unless a report lands:
        ``lease_timeout`` after the last report that succeeded, or after the ack."""
        return (self._heartbeat.last_success or self._acked_at) + self.lease_timeout_s

    def _beat(self) -> None:
        """One report. A retry never overruns the next beat (``deadline_s``)."""
        try:
            canceled = self._client.report_task_progress(
                self._task_id, deadline_s=self._interval_s
            )
        except TaskNotFoundError as exc:
            self._on_stop(StopReason.LOST, f"the task is gone: {exc.code}")
            raise
        if canceled:
            self._on_stop(StopReason.CANCELED, "the service answered canceled")
