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
                  COMMIT: the verdict, journaled
                    v
                  WIND DOWN: deliver stdout/stderr, upload logs; SetTaskStatus

Every way out is a ``StopReason`` on the attempt's ``StopFlag`` (first reason wins),
and ``verdict.final_status`` alone maps it, with the outcome, to the final call. The
verdict is journaled when the main step ends, before the wind-down: a stop during the
wind-down (the runner's shutdown cuts it to ``wind_down_s``) or a crash never changes
it, so work that ran to its end is never rerun by our doing, and the attempt's
``TaskRunner.log`` already says why it failed when it is uploaded. The progress
heartbeat starts at the ack and beats until the final status is sent.

Every wait blocks on the flag: a transfer or a check runs on a ``StepThread`` that a
stop abandons at once; the process is waited for through its pidfd, which the flag
wakes, and its tree is killed. The attempt's own clocks (attemptTimeout, the lease)
are deadlines of those waits, so nothing polls. A stopped attempt winds down in
bounded time: its tree gets ``kill_grace`` after TERM, then its output and logs get
``wind_down_s``; ``hurry`` (the second signal) ends both at once.

This module keeps the sequence; ``work.py`` runs the plan's steps (split by
concept). It runs no process, makes no HTTP call, moves no
byte and writes no record itself: the plan's steps do, ``Supervisor`` owns the tree,
``Client`` the API, and ``record.AttemptRecord`` what the attempt leaves behind (its
folder, journal rows, runner log, wind-down and the status's send). It catches
``Exception`` only once, at the top of ``run``, so a bug fails one task loudly, not
the runner.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from runner import activities, logs
from runner.attempt import AttemptPaths, ProcessExit
from runner.aws.client import Client
from runner.aws.pollanswer import MALFORMED
from runner.aws.s3 import S3
from runner.errors import ActivityError, SpawnError
from runner.masking import secret_values
from runner.shutdown import Shutdown
from runner.task import attemptlogs, references
from runner.task.journal import Journal
from runner.task.progress import Progress
from runner.task.record import AttemptRecord
from runner.task.steps import StepRunner, Stopped
from runner.task.stopflag import StopFlag
from runner.task.verdict import final_status
from runner.task.work import Work
from runner.taskmodel import FinalStatus, StopReason, Task, digest
from runner.workdir import WorkDir

#: The stop detail of a wind-down cut short by the runner's shutdown.
_WIND_DOWN_CUT = "the runner is stopping: the wind-down is cut short"


@dataclass(frozen=True, slots=True)
class ExecutionSettings:
    """What one execution needs from the settings (``cli`` builds it)."""

    heartbeat_interval: float
    lease_timeout: float
    kill_grace: float
    region: str | None
    #: How long a stopped attempt may still spend delivering its output and
    #: uploading its logs (``cli``: one S3 read timeout, max(1 s, kill_grace)).
    wind_down_s: float = 1.0
    #: The runner's environment as the settings are made (at the start), which each
    #: task's is made from: ``os.environ`` decodes every variable at every read.
    environment: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """How one execution ended, for the worker's books and the tests."""

    #: The run's label for the books: finished, failed, canceled, ...
    label: str
    status: FinalStatus | None
    reason: StopReason | None


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
        shutdown: Shutdown,
        journal: Journal,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._raw = raw_task
        self._shutdown = shutdown
        self._client = client
        self._s3 = s3
        self._work_dir = work_dir
        self._settings = settings
        # first of all: until _finish, no log line shows the task's *-field values
        self._masking = logs.mask_values(secret_values(raw_task))
        self.task_id = str(raw_task["taskId"])
        self.digest = digest(self.task_id)
        self.attempt_id = str(raw_task.get("attemptId") or "")
        #: ``DP_RUNNER_ATTEMPT`` in the tree's environment: how its processes are
        #: found again, by this run or by the next start (the journal keeps it).
        self.marker = f"{self.attempt_id}:{self.digest}"
        self._log = log.bind(
            task_id=self.digest,
            pipeline_id=raw_task.get("pipelineId"),
            attempt_id=raw_task.get("attemptId"),
        )
        self._flag = StopFlag()
        self._progress: Progress | None = None
        self._steps: StepRunner | None = None
        self._ran: Work | None = None  # the plan's steps, once they ran
        self._facts: dict[str, int | str] = {}  # the process's, for task_finished
        self._record = AttemptRecord(
            self.task_id,
            self.attempt_id,
            self.marker,
            client=client,
            s3=s3,
            work_dir=work_dir,
            journal=journal,
            shutdown=shutdown,
            log=self._log,
        )

    def stop(self, reason: StopReason, detail: str = "") -> bool:
        """Stop the attempt for ``reason``; True when it was the first reason."""
        return self._flag.set(reason, detail)

    def hurry(self, detail: str = "") -> None:
        """Stop now (the second signal): no grace for the tree or the logs."""
        self._flag.hurry(detail)

    def run(self) -> ExecutionResult:
        """Ack, run, report. Never raises: a bug is logged and reported FAILED,
        unless a verdict was committed before it (that verdict stands)."""
        started = time.monotonic()
        if not self._ack():
            return self._finish(started, None)
        try:
            status = self._attempt(started)
        except Exception as exc:  # noqa: BLE001 - the one catch-all: a bug fails one task
            self._log.exception("execution_crashed")
            record = self._record
            status = record.committed
            if not record.verdict_done:
                bug = ActivityError("RunnerError", f"dp-runner bug: {exc!r}")
                status = final_status(self._flag.reason, None, error=bug)
                record.commit(status)
        try:
            if status is not None:
                self._record.send(status)
        finally:
            if self._progress is not None:
                self._progress.stop()
            self._record.close(status)
        return self._finish(started, status)

    def drain(self) -> None:
        """The runner is stopping: a wind-down under way (or about to start) is cut
        to ``wind_down_s``; the committed verdict stands. Before the verdict, the
        drain runs its course (``Worker.expire``)."""
        if self._record.verdict_done:
            self._flag.set(StopReason.DRAIN_EXPIRED, _WIND_DOWN_CUT)

    # ------------------------------------------------------------ life phases

    def _ack(self) -> bool:
        """Acknowledge at once, then start the heartbeat. False: nothing to run."""
        self._progress = Progress.acknowledge(
            self._client,
            self.task_id,
            name=f"task-{self.digest}-progress",
            interval_s=self._settings.heartbeat_interval,
            lease_timeout_s=self._settings.lease_timeout,
            on_stop=self._flag.set,
            log=self._log,
        )
        return self._progress is not None

    def _attempt(self, started: float) -> FinalStatus | None:
        """Plan, work, wind down; the verdict."""
        task: Task | None = None
        paths: AttemptPaths | None = None
        plan: activities.Plan | None = None
        error: ActivityError | SpawnError | None = None
        try:
            task = self._parse()
            paths = self._open_attempt(task)
            steps = self._steps = self._step_runner()
            ctx = activities.ActivityContext(
                paths=paths,
                s3=self._s3,
                stop=self._flag.event,
                region=self._settings.region,
                run_as=self._work_dir.run_as,
                log=self._log,
            )
            task, plan = references.plan(
                task,
                self._raw,
                ctx,
                fetch=references.fetcher(self._client, steps.step, self._flag.event),
                log=self._log,
            )
            if plan.timeout_s:
                steps.timeout_at = started + plan.timeout_s
            work = Work(
                flag=self._flag,
                work_dir=self._work_dir,
                environment=self._settings.environment,
                marker=self.marker,
                record=self._record,
                log=self._log,
                facts=self._facts,
            )
            self._ran = work
            work.run(plan, paths, steps)
        except (ActivityError, SpawnError) as exc:
            error = exc
        except Stopped:
            pass
        status = self._verdict(task, plan, paths, error)
        self._record.commit(status)
        if task is not None and paths is not None:
            if self._shutdown.requested.is_set():
                self._flag.set(StopReason.DRAIN_EXPIRED, _WIND_DOWN_CUT)
            self._record.wind_down(task, plan, self._steps, self._flag)
        return status

    @property
    def process_exit(self) -> ProcessExit | None:
        """How the main step ended (a check as exit 0 or 1), once it did."""
        return None if self._ran is None else self._ran.process_exit

    def _verdict(
        self,
        task: Task | None,
        plan: activities.Plan | None,
        paths: AttemptPaths | None,
        error: ActivityError | SpawnError | None,
    ) -> FinalStatus | None:
        process_exit = self.process_exit
        succeeded = process_exit is not None and process_exit.succeeded and not error
        status = final_status(
            self._flag.reason,
            process_exit,
            error=error,
            precondition=plan.precondition if plan is not None else False,
            stderr_tail=""
            if succeeded or not paths
            else attemptlogs.stderr_tail(paths),
            secrets=task.secrets() if task is not None else (),
        )
        if error is not None and status is not None and self._flag.reason is None:
            self._log.warning(  # the status's text: redacted and cleaned
                "task_rejected", error_id=status.error_id, message=status.error_message
            )
        return status

    def _parse(self) -> Task:
        problem = self._raw.get(MALFORMED)
        if problem is not None:
            raise ActivityError("MalformedTask", f"the task is malformed: {problem}")
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
        """The attempt folder (``AttemptRecord.open``); from here on this
        attempt's lines also go to its ``TaskRunner.log``."""
        paths = self._record.open(task)
        self._log = self._record.log
        return paths

    def _step_runner(self) -> StepRunner:
        assert self._progress is not None  # noqa: S101 - made at the ack
        return StepRunner(
            flag=self._flag,
            progress=self._progress,
            name=f"task-{self.digest}",
            kill_grace=self._settings.kill_grace,
            wind_down_s=self._settings.wind_down_s,
            log=self._log,
        )

    # ----------------------------------------------------------------- finish

    def _finish(self, started: float, status: FinalStatus | None) -> ExecutionResult:
        """The one canonical ``task_finished`` line."""
        reason = self._flag.reason
        if status is not None:
            label = status.status.value.lower()
        else:
            label = reason.value if reason else "dropped"
        process_exit = self.process_exit
        self._log.log(
            logging.WARNING if label == "failed" else logging.INFO,
            "task_finished",
            outcome=label,
            error_id=status.error_id if status else None,
            returncode=process_exit.returncode if process_exit else None,
            signal=process_exit.signal if process_exit else None,
            duration_s=round(time.monotonic() - started, 3),
            detail=self._flag.detail or None,
            **self._facts,
        )
        self._masking.close()  # the attempt is over: its secrets are no longer masked
        return ExecutionResult(label=label, status=status, reason=reason)
