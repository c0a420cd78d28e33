"""ONE attempt, from the ack to the final status, under one stop flag.

::

    PollForTask -> ACK (ReportTaskProgress first), progress heartbeat
                    | canceled / gone ---------------------> drop, no status
                    v
                  PLAN: parse, the activity's plan (objects fetched if needed)
                    | malformed / unsupported -------------> FAILED <errorId>
                    v
                  WORK: before steps, the main step (process or check), and
                    | after a success the after steps, under the stop flag
                    |- exit 0 / check holds ---------------> FINISHED
                    |- exit n / signal / check fails ------> FAILED (or FALSE)
                    |- canceled / task or pipeline gone ---> stop, no status
                    |- no good heartbeat in lease_timeout -> stop, no status
                    |- attemptTimeout passed --------------> stop, FAILED AttemptTimeout
                    `- drain ran out / second signal ------> stop, FAILED RunnerShutdown
                  WIND DOWN: deliver stdout/stderr, upload logs; SetTaskStatus

Every way out is a ``StopReason`` on the attempt's ``StopFlag`` (first reason wins),
and ``verdict.final_status`` alone maps it, with the outcome, to the final call. The
progress heartbeat starts at the ack and beats until the final status is sent.

Every wait blocks on the flag: a transfer or a check runs on a ``StepThread`` that a
stop abandons at once; the process is waited for through its pidfd, which the flag
wakes, and its tree is killed. The attempt's own clocks (attemptTimeout, the lease)
are deadlines of those waits, so nothing polls. A stopped attempt winds down within
``kill_grace`` of the stop (its tree, then its logs); ``hurry`` ends that at once.

This module runs no process, makes no HTTP call and moves no byte itself: the plan's
steps do, ``Supervisor`` owns the tree, ``Client`` the API. It catches ``Exception``
only once, at the top of ``run``, so a bug fails one task loudly, not the runner.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from runner import activities
from runner.activities import staging
from runner.aws.client import Client
from runner.aws.s3 import S3
from runner.errors import (
    ActivityError,
    RejectedRequestError,
    ServiceError,
    SpawnError,
    TaskNotFoundError,
    TransientServiceError,
)
from runner.supervisor import Supervisor, task_environment
from runner.task import attemptlogs
from runner.task.progress import Progress
from runner.task.stepthread import StepThread
from runner.task.stopflag import StopFlag
from runner.task.verdict import final_status
from runner.taskmodel import (
    AttemptPaths,
    FinalStatus,
    Outcome,
    StopReason,
    Task,
    digest,
    redact,
)
from runner.workdir import WorkDir

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ExecutionSettings:
    """What one execution needs from the settings (``cli`` builds it)."""

    heartbeat_interval: float
    lease_timeout: float
    kill_grace: float
    region: str | None


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """How one execution ended, for the worker's books and the tests."""

    outcome: str
    status: FinalStatus | None
    reason: StopReason | None


class _Stopped(Exception):  # noqa: N818 - control flow inside this module only
    """The stop flag was set while the attempt waited: leave the work phase."""


class Execution:
    """Runs one task to its end. ``run`` blocks; call it on the task's own thread.
    ``stop`` and ``hurry`` may be called from any thread."""

    def __init__(
        self,
        raw_task: dict[str, Any],
        *,
        client: Client,
        s3: S3,
        work_dir: WorkDir,
        settings: ExecutionSettings,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._raw = raw_task
        self._client = client
        self._s3 = s3
        self._work_dir = work_dir
        self._settings = settings
        self.task_id = str(raw_task["taskId"])
        self.digest = digest(self.task_id)
        self._log = log.bind(
            task_id=self.digest,
            pipeline_id=raw_task.get("pipelineId"),
            attempt_id=raw_task.get("attemptId"),
        )
        self._flag = StopFlag()
        self._progress: Progress | None = None
        self._attempt_log: attemptlogs.AttemptLog | None = None
        self._timeout_at: float | None = None
        self._stop_logged = False
        self.outcome: Outcome | None = None
        self.supervisor: Supervisor | None = None

    def stop(self, reason: StopReason, detail: str = "") -> bool:
        """Stop the attempt for ``reason``; True when it was the first reason."""
        return self._flag.set(reason, detail)

    def hurry(self, detail: str = "") -> None:
        """Stop now (the second signal): no grace for the tree or the logs."""
        self._flag.hurry(detail)

    def run(self, after_ack: Callable[[], None] | None = None) -> ExecutionResult:
        """Ack, run, report. Never raises: a bug is logged and reported FAILED.
        ``after_ack`` is called once the ack is done with, whatever its answer."""
        started = time.monotonic()
        acked = self._ack()
        if after_ack is not None:
            after_ack()
        if not acked:
            return self._finish(started, None)
        try:
            status = self._attempt(started)
        except Exception as exc:  # noqa: BLE001 - the one catch-all: a bug fails one task
            self._log.exception("execution_crashed")
            bug = ActivityError("RunnerError", f"dp-runner bug: {exc!r}")
            status = final_status(self._flag.reason, None, error=bug)
        try:
            if status is not None:
                self._send_status(status)
        finally:
            if self._progress is not None:
                self._progress.stop()
            if self._attempt_log is not None:
                self._attempt_log.close()
        return self._finish(started, status)

    # ------------------------------------------------------------ life phases

    def _ack(self) -> bool:
        """Acknowledge at once, then start the heartbeat. False: nothing to run."""
        try:
            canceled = self._client.report_task_progress(self.task_id, first=True)
        except TaskNotFoundError as exc:
            self._flag.set(StopReason.LOST, f"gone before the ack: {exc.code}")
            return False
        except ServiceError as exc:
            # The service re-offers an unacknowledged task after its ack window:
            # dropping it here loses nothing and cannot run it twice.
            self._log.error("task_ack_failed", error=exc.code, message=exc.message)
            self._flag.set(StopReason.LOST, f"ack failed: {exc.code}")
            return False
        self._log.info("task_acknowledged", canceled=canceled)
        if canceled:
            self._flag.set(StopReason.CANCELED, "canceled at the ack")
            return False
        self._progress = Progress(
            client=self._client,
            task_id=self.task_id,
            name=f"task-{self.digest}-progress",
            interval_s=self._settings.heartbeat_interval,
            lease_timeout_s=self._settings.lease_timeout,
            on_stop=self._flag.set,
            log=self._log,
        )
        self._progress.start()
        return True

    def _attempt(self, started: float) -> FinalStatus | None:
        """Plan, work, wind down; the verdict."""
        task: Task | None = None
        paths: AttemptPaths | None = None
        plan: activities.Plan | None = None
        error: ActivityError | SpawnError | None = None
        try:
            task = self._parse()
            paths = self._open_attempt(task)
            task, plan = self._plan(task, paths)
            if plan.timeout_s:
                self._timeout_at = started + plan.timeout_s
            self._work(plan, paths)
        except (ActivityError, SpawnError) as exc:
            error = exc
        except _Stopped:
            pass
        if task is not None and paths is not None:
            self._wind_down(task, plan, paths)
        succeeded = self.outcome is not None and self.outcome.succeeded and not error
        secrets = task.secrets() if task is not None else []
        if error is not None and self._flag.reason is None:
            message = error.message if isinstance(error, ActivityError) else str(error)
            error_id = getattr(error, "error_id", "SpawnError")
            self._log.warning(
                "task_rejected", error_id=error_id, message=redact(message, secrets)
            )
        return final_status(
            self._flag.reason,
            self.outcome,
            error=error,
            precondition=plan.precondition if plan is not None else False,
            stderr_tail=""
            if succeeded or paths is None
            else attemptlogs.stderr_tail(paths),
            secrets=secrets,
        )

    def _parse(self) -> Task:
        try:
            task = Task.from_wire(self._raw)
        except (KeyError, TypeError) as exc:
            raise ActivityError(
                "MalformedTask", f"the task is malformed: {exc!r}"
            ) from exc
        _ = task.attempt  # MissingAttemptObject, before anything else
        if self._progress is not None:
            self._progress.fit_timeout(activities.report_progress_timeout_s(task))
        return task

    def _open_attempt(self, task: Task) -> AttemptPaths:
        """The attempt folder; from here on the runner's lines about this attempt
        are also kept in it (``TaskRunner.log``)."""
        paths = self._work_dir.attempt(
            activities.safe_path_part(task.pipeline_id or "unknown"),
            *activities.component_ids(task),
        )
        self._attempt_log = attemptlogs.AttemptLog(
            paths.root / attemptlogs.RUNNER_LOG_NAME
        )
        self._log = self._attempt_log.bind(self._log)
        return paths

    def _plan(self, task: Task, paths: AttemptPaths) -> tuple[Task, activities.Plan]:
        """The activity's plan. AWS flattens every inherited field into the attempt,
        so the task is first read as it came; only when a required field is missing
        and the task names objects it does not carry are they fetched (once, with
        DescribeObjects), and the plan made again."""
        ctx = activities.ActivityContext(
            paths=paths,
            s3=self._s3,
            stop=self._flag.event,
            region=self._settings.region,
        )
        try:
            return task, activities.plan(task, ctx)
        except ActivityError as exc:
            missing = task.missing_refs()
            if exc.error_id != "MissingField" or not missing:
                raise
        task = self._fetch(task, missing)
        return task, activities.plan(task, ctx)

    def _fetch(self, task: Task, missing: list[str]) -> Task:
        """``task`` with the objects it names but does not carry, fetched."""
        events = (self._flag.event,)
        try:
            fetched = self._step(
                "describe_objects",
                lambda: self._client.describe_objects(
                    task.pipeline_id, missing, interrupt=events
                ),
            )
        except ServiceError as exc:
            raise ActivityError(
                "UnresolvedReference",
                f"a required field is missing and the objects the task refers to "
                f"({', '.join(missing[:5])}) could not be fetched: {exc.code}",
            ) from exc
        objects = dict(self._raw.get("objects") or {})
        objects.update({str(obj["id"]): obj for obj in fetched})
        self._log.info("task_objects_fetched", count=len(fetched))
        return Task.from_wire({**self._raw, "objects": objects})

    def _work(self, plan: activities.Plan, paths: AttemptPaths) -> None:
        """The before steps, the main step, and after a success the after steps."""
        for step in plan.before:
            self._step(step.name, step.run)
        began = time.monotonic()
        if isinstance(plan.main, activities.Check):
            holds = self._step(plan.main.name, plan.main.holds)
            self.outcome = Outcome(0 if holds else 1, None, time.monotonic() - began)
        else:
            self.outcome = self._run_process(plan.main, paths)
        if self.outcome.succeeded and not self._flag.is_set():
            for step in plan.after_success:
                self._step(step.name, step.run)

    def _run_process(self, main: activities.Process, paths: AttemptPaths) -> Outcome:
        """Spawn the one process (unless a stop came first) and supervise it."""
        argv = main.argv()
        if self._flag.is_set():
            raise _Stopped
        self.supervisor = child = Supervisor.spawn(
            argv,
            cwd=paths.workdir,
            env=task_environment(os.environ, main.env),
            stdout=paths.stdout,
            stderr=paths.stderr,
            marker=f"{self._raw.get('attemptId', '')}:{self.digest}",
            log=self._log,
        )
        self._log.info("task_started", pid=child.pid)
        remove = self._flag.add_waker(child.interrupt_wait)
        try:
            while True:
                outcome = child.wait_exit(self._until_next_clock())
                if outcome is not None:
                    child.kill_leftovers(self._settings.kill_grace)
                    return outcome
                self._check_clocks()
                if self._flag.is_set():
                    self._log_stop()
                    return child.terminate(self._grace_left(), self._flag.urgent)
        finally:
            remove()

    def _step(self, name: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` on a step thread and wait for it under the flag and the
        clocks: its value, its error, or ``_Stopped`` (the thread is abandoned)."""
        if self._flag.is_set():
            raise _Stopped
        step = StepThread(fn, name=f"task-{self.digest}-{name}")
        remove = self._flag.add_waker(step.done.set)
        try:
            step.start()
            while not step.done.wait(self._until_next_clock()):
                self._check_clocks()
        finally:
            remove()
        if self._flag.is_set():
            self._log_stop(step=name)
            raise _Stopped
        return step.result()

    def _wind_down(
        self, task: Task, plan: activities.Plan | None, paths: AttemptPaths
    ) -> None:
        """Deliver the output and upload the logs, within ``UPLOAD_BUDGET_S``, or
        within the stop's grace once the flag is set; clean up. Never raises."""
        steps = list(plan.deliver) if plan is not None else []
        uri = attemptlogs.log_uri(task, self._log)
        if uri is not None:
            event = self._flag.event
            steps.append(
                activities.Transfer(
                    "upload_logs",
                    lambda: attemptlogs.upload(task, self._s3, paths, uri, event),
                )
            )
        deadline = time.monotonic() + attemptlogs.UPLOAD_BUDGET_S
        for step in steps:
            self._wind_down_step(step, deadline)
        staging.cleanup(paths.staging)

    def _wind_down_step(self, step: activities.Transfer, deadline: float) -> None:
        """One wind-down step, until ``deadline``; a stop abandons it, and once
        stopped, the stop's grace bounds it and only ``hurry`` abandons it."""
        stopped = self._flag.is_set()
        budget_s = deadline - time.monotonic()
        if stopped:
            budget_s = min(budget_s, self._grace_left())
        if budget_s <= 0:
            self._log.warning("task_step_skipped", step=step.name, stopped=stopped)
            return
        thread = StepThread(step.run, name=f"task-{self.digest}-{step.name}")
        remove = self._flag.add_waker(thread.done.set, urgent=stopped)
        try:
            thread.start()
            thread.done.wait(max(0.0, budget_s))
        finally:
            remove()
        if not thread.ended:
            self._log.warning("task_step_abandoned", step=step.name, stopped=stopped)
        elif thread.error is not None:
            error = thread.error
            self._log.warning(
                "task_step_failed",
                step=step.name,
                error_id=getattr(error, "error_id", type(error).__name__),
                error=str(error),
            )

    # ----------------------------------------------------------------- clocks

    def _until_next_clock(self) -> float:
        """Seconds until the attempt's next clock runs out (timeout, lease)."""
        assert self._progress is not None  # noqa: S101 - only after the ack
        clocks = [self._progress.lease_deadline()]
        if self._timeout_at is not None:
            clocks.append(self._timeout_at)
        return max(0.0, min(clocks) - time.monotonic())

    def _check_clocks(self) -> None:
        """Turn a clock that ran out into a stop reason (the heartbeat and the
        worker set the others)."""
        assert self._progress is not None  # noqa: S101 - only after the ack
        now = time.monotonic()
        if self._timeout_at is not None and now >= self._timeout_at:
            self._flag.set(StopReason.TIMEOUT, "attemptTimeout passed")
        elif now >= self._progress.lease_deadline():
            self._flag.set(
                StopReason.LEASE_EXPIRED,
                f"no heartbeat succeeded for {self._settings.lease_timeout:g}s",
            )

    def _grace_left(self) -> float:
        """What is left of the stop's grace: ``kill_grace`` from the stop, none once
        hurried."""
        set_at = self._flag.set_at
        if self._flag.urgent.is_set() or set_at is None:
            return 0.0
        return max(0.0, set_at + self._settings.kill_grace - time.monotonic())

    def _log_stop(self, step: str | None = None) -> None:
        if not self._stop_logged:
            self._stop_logged = True
            reason = self._flag.reason
            self._log.info(
                "task_stopping",
                reason=reason.value if reason else None,
                detail=self._flag.detail,
                step=step,
            )

    # ----------------------------------------------------------------- finish

    def _send_status(self, status: FinalStatus) -> None:
        """The commit point: the longest retry budget, heartbeats still going."""
        try:
            self._client.set_task_status(self.task_id, status)
        except TaskNotFoundError as exc:
            self._log.warning("task_status_rejected", error=exc.code)
        except RejectedRequestError as exc:
            self._log.error("task_status_invalid", error=exc.code, message=exc.message)
        except TransientServiceError as exc:
            self._log.error("task_status_not_sent", error=exc.code, message=exc.message)

    def _finish(self, started: float, status: FinalStatus | None) -> ExecutionResult:
        """The one canonical ``task_finished`` line."""
        reason = self._flag.reason
        if status is not None:
            label = status.status.value.lower()
        else:
            label = reason.value if reason else "dropped"
        outcome = self.outcome
        self._log.info(
            "task_finished",
            outcome=label,
            error_id=status.error_id if status else None,
            returncode=outcome.returncode if outcome else None,
            signal=outcome.signal if outcome else None,
            duration_s=round(time.monotonic() - started, 3),
            detail=self._flag.detail or None,
        )
        return ExecutionResult(outcome=label, status=status, reason=reason)
