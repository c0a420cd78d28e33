"""What one attempt leaves behind: its folder, its journal rows, its runner log, its
wind-down (output delivered, logs uploaded) and the send of its final status.

Owns: ``AttemptRecord``, made by the execution at its start and told each fact in
order: the folder opened (``open``), the process started (``process_started``),
the verdict committed (``commit``, journaled before the wind-down), the wind-down
(``wind_down``), the status sent (``send``) or none due (``close``).

Must not: decide the verdict (``verdict.py``), sequence the attempt
(``execution.py``), or wait on its own: the wind-down's waits are the attempt's
``StepRunner``'s, the send's retries the client's, until the shutdown's deadline.

Why apart from the sequence: ``execution.py`` reads as the attempt's phases (ack,
plan, work, commit, wind down, send); where each fact is recorded (on disk, in the
journal, in S3, at the service) is one concept of its own, and the commit point
(a verdict journaled before anything can still change it) is easiest to check
where every write of the attempt is in one place.
"""

from __future__ import annotations

import time

import structlog

from runner import activities, supervisor
from runner.activities import staging
from runner.attempt import AttemptPaths
from runner.aws.client import Client
from runner.aws.s3 import S3
from runner.shutdown import Shutdown
from runner.task import attemptlogs, commit
from runner.task.journal import Journal
from runner.task.steps import StepRunner
from runner.task.stopflag import StopFlag
from runner.taskmodel import FinalStatus, Task
from runner.workdir import WorkDir


class AttemptRecord:
    """The record of one attempt; used from its own thread (``verdict_done`` and
    ``paths`` are read from others)."""

    def __init__(
        self,
        task_id: str,
        attempt_id: str,
        marker: str,
        *,
        client: Client,
        s3: S3,
        work_dir: WorkDir,
        journal: Journal,
        shutdown: Shutdown,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self.task_id = task_id
        self.attempt_id = attempt_id
        self.marker = marker
        self._client = client
        self._s3 = s3
        self._work_dir = work_dir
        self._journal = journal
        self._shutdown = shutdown
        #: The attempt's logger; once ``open``, it also writes ``TaskRunner.log``.
        self.log = log
        self._runner_log: attemptlogs.AttemptLog | None = None
        #: The attempt's folder, once known (pruning keeps it).
        self.paths: AttemptPaths | None = None
        #: The committed verdict (None: no status is due), once ``verdict_done``.
        self.committed: FinalStatus | None = None
        self.verdict_done = False

    def open(self, task: Task) -> AttemptPaths:
        """The attempt folder, made and journaled; from here on the runner's lines
        about this attempt are also kept in it (``TaskRunner.log``)."""
        paths = self._work_dir.attempt_paths(
            activities.safe_path_part(task.pipeline_id or "unknown"),
            *activities.component_ids(task),
        )
        self.paths = paths
        # journaled before it is made: pruning keeps every folder the journal holds
        self._journal.attempt_opened(
            self.task_id, self.attempt_id, paths.root, self.marker
        )
        self._work_dir.make_attempt(paths)
        self._runner_log = attemptlogs.AttemptLog(
            paths.root / attemptlogs.RUNNER_LOG_NAME
        )
        self.log = self._runner_log.bind(self.log)
        return paths

    def cgroup_opened(self, path: str) -> None:
        """Before anything runs in it: the attempt's cgroup, journaled, so that
        recovery after a crash kills what is left in it and removes it."""
        self._journal.cgroup_opened(self.task_id, path)

    def process_started(self, pid: int) -> None:
        """Right after the spawn: the process and its start time, journaled."""
        start = supervisor.start_time(pid) or time.time()
        self._journal.process_started(self.task_id, pid, pid, start)

    def commit(self, status: FinalStatus | None) -> None:
        """The verdict, journaled before the wind-down: from here on no stop and no
        crash changes it (a restart sends the journaled status)."""
        if status is not None:
            self._journal.status_pending(
                self.task_id, status, attempt_id=self.attempt_id
            )
        self.committed = status
        self.verdict_done = True

    def wind_down(
        self,
        task: Task,
        plan: activities.Plan | None,
        steps: StepRunner | None,
        flag: StopFlag,
    ) -> None:
        """Deliver the output and upload the logs (``StepRunner.wind_down``: a
        budget, shorter once stopped); clean the staging folders. Never raises."""
        paths = self.paths
        if paths is None:
            return
        transfers = list(plan.deliver) if plan is not None else []
        uri = attemptlogs.log_uri(task, self.log)
        if uri is not None:
            event, urgent = flag.event, flag.urgent
            transfers.append(
                activities.Transfer(
                    "upload_logs",
                    lambda: attemptlogs.upload(
                        task, self._s3, paths, uri, event, hurry=urgent
                    ),
                )
            )
        if steps is not None:
            steps.wind_down(transfers, attemptlogs.UPLOAD_BUDGET_S)
        staging.cleanup(paths.staging)

    def send(self, status: FinalStatus) -> None:
        """The committed verdict, sent with the longest retry budget, heartbeats
        still going; once the runner is stopping, only until the shutdown's status
        deadline. What is not sent stays in the journal."""
        shutdown = self._shutdown
        sent = commit.send(
            self._client,
            self._journal,
            self.task_id,
            status,
            until=shutdown.status_deadline,
            wake=(shutdown.requested, shutdown.fast),
        )
        if sent.delivery == "dropped":  # the service moved on: TaskNotFound
            self.log.warning("task_status_dropped", error=sent.error)
        elif sent.delivery != "sent":  # invalid (our bug) or not sent (journaled)
            event = f"task_status_{sent.delivery}"
            self.log.error(event, error=sent.error, message=sent.message)

    def close(self, status: FinalStatus | None) -> None:
        """The end: with no status due, the row is closed (the tree is gone); the
        runner log is closed either way."""
        try:
            if status is None:
                self._journal.attempt_closed(self.task_id)
        finally:
            if self._runner_log is not None:
                self._runner_log.close()
