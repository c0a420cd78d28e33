"""``task/execution.py`` on its own (issue 23): one ``Execution`` of a real shell
task polled from the local service over HTTP, run on a thread of the test, its
process a real child; a stop during the main step, for each kind of stop.

What is asserted is what the service received (the final status, or none) and
which processes are gone, never the execution's internals.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from runner.aws.client import Client, RetryPolicies
from runner.aws.s3 import S3
from runner.aws.session import new_session
from runner.localservice import LocalService
from runner.shutdown import Shutdown
from runner.task.execution import Execution, ExecutionResult, ExecutionSettings
from runner.task.journal import Journal
from runner.taskmodel import StopReason, TaskStatus
from runner.workdir import WorkDir
from tests.support.pipelines import REGION, default_object, shell, submit
from tests.support.waiting import wait_for


class Harness:
    """One execution of one task, on a thread; its process writes its pid."""

    def __init__(self, service: LocalService, dp: Any, tmp_path: Path) -> None:
        log = structlog.get_logger("test")
        self.service = service
        self.shutdown = Shutdown(drain_timeout=1.0, kill_grace=0.5)
        client = Client(
            region=REGION,
            endpoint_url=service.endpoint_url,
            stop=self.shutdown.requested,
            abort=self.shutdown.fast,
            policies=RetryPolicies.fast(),
            log=log,
            session=new_session(REGION, ("test", "test")),
            poll_read_timeout_s=2.0,
        )
        work_dir = WorkDir(tmp_path / "work")
        work_dir.lock()
        self.journal = Journal.open(work_dir.root / "journal.db", log=log)
        self.pid_file = tmp_path / "task.pid"
        submit(
            dp,
            [
                default_object(),
                shell("Hold", f"echo $$ > {self.pid_file}.tmp; "
                      f"mv {self.pid_file}.tmp {self.pid_file}; exec sleep 60"),
            ],
        )  # fmt: skip
        raw = wait_for(lambda: client.poll_for_task("wg", "test-host"), 15, "a task")
        self.task_id = raw["taskId"]
        self.execution = Execution(
            raw,
            client=client,
            s3=S3(region=REGION, log=log),
            work_dir=work_dir,
            settings=ExecutionSettings(
                heartbeat_interval=0.2, lease_timeout=5, kill_grace=0.5, region=REGION
            ),
            shutdown=self.shutdown,
            journal=self.journal,
            log=log,
        )
        self.result: list[ExecutionResult] = []
        self.thread = threading.Thread(
            target=lambda: self.result.append(self.execution.run()), daemon=True
        )

    def start_and_wait_for_the_process(self) -> int:
        self.thread.start()
        wait_for(self.pid_file.exists, 15, "the task's process")
        return int(self.pid_file.read_text())

    def ended(self) -> ExecutionResult:
        self.thread.join(15)
        assert not self.thread.is_alive()
        return self.result[0]

    def statuses(self) -> list[dict[str, Any]]:
        return [
            c.request
            for c in self.service.calls("SetTaskStatus")
            if c.request["taskId"] == self.task_id
        ]


@pytest.fixture
def harness(service: LocalService, dp: Any, tmp_path: Path) -> Iterator[Harness]:
    made = Harness(service, dp, tmp_path)
    yield made
    made.execution.hurry("the test ended")
    made.thread.join(15)
    made.journal.close()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize(
    ("reason", "error_id"),
    [
        (StopReason.TIMEOUT, "AttemptTimeout"),
        (StopReason.DRAIN_EXPIRED, "RunnerShutdown"),
    ],
)
def test_a_stop_during_the_process_kills_it_and_reports_why(
    harness: Harness, reason: StopReason, error_id: str
) -> None:
    pid = harness.start_and_wait_for_the_process()
    assert harness.execution.stop(reason, "the test")
    result = harness.ended()
    assert gone(pid)
    assert result.reason is reason
    (status,) = harness.statuses()
    assert (status["taskStatus"], status["errorId"]) == ("FAILED", error_id)


@pytest.mark.parametrize("reason", [StopReason.CANCELED, StopReason.LOST])
def test_a_stop_that_owes_no_status_kills_the_process_and_sends_none(
    harness: Harness, reason: StopReason
) -> None:
    pid = harness.start_and_wait_for_the_process()
    harness.execution.stop(reason, "the test")
    result = harness.ended()
    assert gone(pid)
    assert result.status is None
    assert harness.statuses() == []


def test_hurry_during_the_process_kills_it_at_once_and_reports_it(
    harness: Harness,
) -> None:
    pid = harness.start_and_wait_for_the_process()
    harness.execution.hurry("a second signal")
    result = harness.ended()
    assert gone(pid)
    assert result.reason is StopReason.FAST_STOP
    (status,) = harness.statuses()
    assert status["taskStatus"] == TaskStatus.FAILED.value


def test_the_first_reason_wins(harness: Harness) -> None:
    pid = harness.start_and_wait_for_the_process()
    assert harness.execution.stop(StopReason.TIMEOUT, "first")
    assert not harness.execution.stop(StopReason.CANCELED, "second")
    result = harness.ended()
    assert gone(pid)
    assert result.reason is StopReason.TIMEOUT
    (status,) = harness.statuses()
    assert status["errorId"] == "AttemptTimeout"
