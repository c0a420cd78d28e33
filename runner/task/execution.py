"""ONE task's lifecycle, from the ack to the final status.

::

    PollForTask -> ACK (ReportTaskProgress, before anything else)
                    | canceled / gone ------------------------> drop, no status
                    v
                  PREPARE: parse, resolve refs, Command, stage in
                    | malformed / unsupported / staging ------> FAILED <errorId>
                    v
                  RUNNING: own session; progress heartbeat thread
                    |- exit 0 --------------------------------> FINISHED
                    |- exit n --------------------------------> FAILED ExitCode:n
                    |                          (FALSE for a precondition)
                    |- canceled / task or pipeline gone ------> kill, no status
                    |- no good heartbeat in lease_timeout ----> kill, no status
                    |- attemptTimeout passed -----------------> kill, FAILED
                    `- drain ran out / second signal ---------> kill, FAILED
                  FINISH: stage out, deliver output, upload logs, SetTaskStatus

Every way out has a ``StopReason`` (or none, when the child ended by itself), and
``verdict.final_status`` alone maps it to the final call. The progress heartbeat's
lease counts from the ack; its thread starts before the first step that can take long
(``_keep_beating``) and beats until the final status is sent, also while the runner
drains, so the service never re-offers a task that is still being worked on.

This module runs no process and makes no HTTP call itself: ``Supervisor`` owns the
process tree, ``Client`` the API, ``staging`` the S3 transfers. It must not catch
``Exception`` except once, at the top of ``run``, so a bug fails one task loudly
instead of the runner.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from runner import activities
from runner.aws.client import Client
from runner.aws.s3 import S3
from runner.drain import Drain
from runner.errors import (
    ActivityError,
    RejectedRequestError,
    ServiceError,
    SpawnError,
    TaskNotFoundError,
    TransientServiceError,
)
from runner.supervisor import Supervisor, task_environment
from runner.task import attemptlogs, staging
from runner.task.progress import Progress
from runner.task.verdict import final_status
from runner.taskmodel import (
    AttemptPaths,
    Command,
    FinalStatus,
    Outcome,
    StopReason,
    Task,
    digest,
)
from runner.workdir import WorkDir

#: How often the supervising loop looks at the child and the stop reasons.
TICK_S = 0.05


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


class Execution:
    """Runs one task to its end. ``run`` blocks; call it on the task's own thread."""

    def __init__(
        self,
        raw_task: dict[str, Any],
        *,
        client: Client,
        s3: S3,
        work_dir: WorkDir,
        settings: ExecutionSettings,
        drain: Drain,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._raw = raw_task
        self._client = client
        self._s3 = s3
        self._work_dir = work_dir
        self._settings = settings
        self._drain = drain
        self.task_id = str(raw_task["taskId"])
        self.digest = digest(self.task_id)
        self._log = log.bind(
            task_id=self.digest,
            pipeline_id=raw_task.get("pipelineId"),
            attempt_id=raw_task.get("attemptId"),
        )
        self._reason: StopReason | None = None
        self._reason_detail = ""
        self._progress: Progress | None = None
        self._attempt_log: attemptlogs.AttemptLog | None = None
        self.supervisor: Supervisor | None = None

    def run(self, after_ack: Callable[[], None] | None = None) -> ExecutionResult:
        """Ack, run, report. Never raises: a bug is logged and reported FAILED.
        ``after_ack`` is called once the ack is done with, whatever its answer."""
        started = time.monotonic()
        acked = self._ack()
        if after_ack is not None:
            after_ack()
        if not acked:
            return self._finish(started, None, None)
        try:
            return self._run_acked(started)
        except Exception as exc:  # noqa: BLE001 - the one catch-all: a bug fails one task
            self._log.exception("execution_crashed")
            status = FinalStatus.failed("RunnerError", f"dp-runner bug: {exc!r}")
            self._send_status(status)
            return self._finish(started, None, status)
        finally:
            if self._progress is not None:
                self._progress.stop()
            if self._attempt_log is not None:
                self._attempt_log.close()

    def request_stop(self, reason: StopReason, detail: str = "") -> None:
        """Ask the execution to stop its child (the first reason wins). Thread-safe:
        the progress heartbeat calls it."""
        if self._reason is None:
            self._reason, self._reason_detail = reason, detail
            if self.supervisor is not None:
                self.supervisor.interrupt_wait()

    # ------------------------------------------------------------ life phases

    def _ack(self) -> bool:
        """Acknowledge at once, then start the heartbeat. False: nothing to run."""
        try:
            canceled = self._client.report_task_progress(self.task_id, first=True)
        except TaskNotFoundError as exc:
            self.request_stop(StopReason.LOST, f"gone before the ack: {exc.code}")
            return False
        except ServiceError as exc:
            # The service re-offers an unacknowledged task after its ack window:
            # dropping it here loses nothing and cannot run it twice.
            self._log.error("task_ack_failed", error=exc.code, message=exc.message)
            self.request_stop(StopReason.LOST, f"ack failed: {exc.code}")
            return False
        self._log.info("task_acknowledged", canceled=canceled)
        if canceled:
            self.request_stop(StopReason.CANCELED, "canceled at the ack")
            return False
        self._progress = Progress(
            client=self._client,
            task_id=self.task_id,
            name=f"task-{self.digest}-progress",
            interval_s=self._settings.heartbeat_interval,
            lease_timeout_s=self._settings.lease_timeout,
            on_stop=self.request_stop,
            log=self._log,
        )
        return True

    def _keep_beating(self) -> None:
        """Start the progress heartbeat, if not yet started. Called before every
        step that can take long (a call to S3 or to the service, the task's own
        process), and only then: a task that is ready in a millisecond starts its
        heartbeat thread while its process already runs, off the way to the spawn."""
        if self._progress is not None:
            self._progress.start()

    def _run_acked(self, started: float) -> ExecutionResult:
        task: Task | None = None
        plan: staging.StagingPlan | None = None
        command: Command | None = None
        outcome: Outcome | None = None
        paths: AttemptPaths | None = None
        status: FinalStatus | None
        try:
            task = self._parse()
            paths = self._open_attempt(task)
            plan = staging.plan(task)
            command = activities.prepare(
                task, activities.ActivityContext(paths.workdir, self._settings.region)
            )
            if self._reason is None:
                outcome = self._execute(task, plan, command, paths)
            if self._reason is None and outcome is not None and outcome.succeeded:
                staging.stage_out(plan, self._s3, paths.root / "staging")
        except (ActivityError, SpawnError) as exc:
            status = self._rejected(exc, task)
        else:
            # a clean success needs no stack trace: spare it the read
            succeeded = outcome is not None and outcome.succeeded
            tail = "" if succeeded else attemptlogs.stderr_tail(paths)
            status = final_status(self._reason, outcome, command, tail, task.secrets())
        self._keep_beating()  # uploads and the final status ahead
        if task is not None and plan is not None and paths is not None:
            attemptlogs.finish(task, plan, self._s3, paths, log=self._log)
        return self._report(started, status, outcome)

    def _parse(self) -> Task:
        """Parse the task; fetch the referenced objects it does not carry."""
        try:
            task = Task.from_wire(self._raw)
        except (KeyError, TypeError) as exc:
            raise ActivityError(
                "MalformedTask", f"the task is malformed: {exc!r}"
            ) from exc
        _ = task.attempt  # MissingAttemptObject, before anything else
        if self._progress is not None:
            self._progress.fit_timeout(activities.report_progress_timeout_s(task))
        missing = task.missing_refs()
        if not missing:
            return task
        self._keep_beating()
        try:
            fetched = self._client.describe_objects(task.pipeline_id, missing)
        except ServiceError as exc:
            raise ActivityError(
                "UnresolvedReference",
                f"cannot fetch referenced objects {missing[:5]}: {exc.code}",
            ) from exc
        objects = dict(self._raw.get("objects") or {})
        objects.update({str(obj["id"]): obj for obj in fetched})
        return Task.from_wire({**self._raw, "objects": objects})

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

    def _rejected(
        self, exc: ActivityError | SpawnError, task: Task | None
    ) -> FinalStatus:
        """A task that could not be run: FAILED with an errorId that says why."""
        secrets = task.secrets() if task is not None else []
        if isinstance(exc, ActivityError):
            error_id, message = exc.error_id, exc.message
        else:
            error_id, message = "SpawnError", str(exc)
        self._log.warning("task_rejected", error_id=error_id, message=message)
        return FinalStatus.failed(error_id, message, secrets=secrets)

    def _execute(
        self,
        task: Task,
        plan: staging.StagingPlan,
        command: Command,
        paths: AttemptPaths,
    ) -> Outcome:
        """Stage in, then run the command (or the in-process check) to its end."""
        began = time.monotonic()
        if command.check or command.script_uri is not None or plan.stage:
            self._keep_beating()  # S3 ahead
        if command.check == activities.S3_EXISTS:
            holds = staging.exists_precondition(task, self._s3)
            return Outcome(0 if holds else 1, None, time.monotonic() - began)
        argv = list(command.argv)
        if command.script_uri is not None:
            argv = staging.fetch_script(plan, self._s3, paths.workdir) + argv
        staged = (
            staging.stage_in(plan, self._s3, paths.root / "staging")
            if plan.stage
            else {}
        )
        self.supervisor = Supervisor.spawn(
            argv,
            cwd=paths.workdir,
            env=task_environment(os.environ, {**command.env, **staged}),
            stdout=paths.stdout,
            stderr=paths.stderr,
            marker=f"{task.attempt_id}:{self.digest}",
            log=self._log,
        )
        self._keep_beating()
        self._log.info("task_started", pid=self.supervisor.pid)
        timeout_at = began + command.timeout_s if command.timeout_s else None
        return self._supervise(self.supervisor, timeout_at)

    def _supervise(self, child: Supervisor, timeout_at: float | None) -> Outcome:
        """Wait for the child; kill its tree as soon as a stop reason appears."""
        while True:
            outcome = child.wait_exit(TICK_S)
            if outcome is not None:
                child.kill_leftovers(self._settings.kill_grace)
                return outcome
            self._check_clocks(timeout_at)
            if self._reason is not None:
                self._log.info(
                    "task_stopping",
                    reason=self._reason.value,
                    detail=self._reason_detail,
                )
                grace = 0.0 if self._drain.fast.is_set() else self._settings.kill_grace
                return child.terminate(grace)

    def _check_clocks(self, timeout_at: float | None) -> None:
        """Turn the clocks into stop reasons (the heartbeat sets the others)."""
        silent_s = self._progress.silent_for_s() if self._progress else None
        if timeout_at is not None and time.monotonic() >= timeout_at:
            self.request_stop(StopReason.TIMEOUT, "attemptTimeout passed")
        elif self._drain.expired():
            self.request_stop(StopReason.SHUTDOWN, "the drain ran out")
        elif silent_s is not None:
            self.request_stop(
                StopReason.LOST, f"no heartbeat succeeded for {silent_s:.1f}s"
            )

    # ----------------------------------------------------------------- finish

    def _report(
        self, started: float, status: FinalStatus | None, outcome: Outcome | None
    ) -> ExecutionResult:
        if status is not None:
            self._send_status(status)
        return self._finish(started, outcome, status)

    def _send_status(self, status: FinalStatus) -> None:
        """The commit point: the longest retry budget, heartbeats still going."""
        self._keep_beating()
        try:
            self._client.set_task_status(self.task_id, status)
        except TaskNotFoundError as exc:
            self._log.warning("task_status_rejected", error=exc.code)
        except RejectedRequestError as exc:
            self._log.error("task_status_invalid", error=exc.code, message=exc.message)
        except TransientServiceError as exc:
            self._log.error("task_status_not_sent", error=exc.code, message=exc.message)

    def _finish(
        self, started: float, outcome: Outcome | None, status: FinalStatus | None
    ) -> ExecutionResult:
        """The one canonical ``task_finished`` line."""
        if status is not None:
            label = status.status.value.lower()
        else:
            label = self._reason.value if self._reason else "dropped"
        self._log.info(
            "task_finished",
            outcome=label,
            error_id=status.error_id if status else None,
            returncode=outcome.returncode if outcome else None,
            signal=outcome.signal if outcome else None,
            duration_s=round(time.monotonic() - started, 3),
            detail=self._reason_detail or None,
        )
        return ExecutionResult(outcome=label, status=status, reason=self._reason)
