"""``task/execution.py`` on its own (issue 23): one ``Execution`` of a real shell
task polled from the local service over HTTP, run on a thread of the test, its
process a real child; a stop during each step of the sequence:

- the ack (a held or failing ReportTaskProgress);
- the fetch of the script, the stage-in and the stage-out (an S3 that accepts
  and never answers, ``SilentS3``), for each kind of stop;
- the main step (the process running), for each kind of stop;
- the wind-down after the verdict (delivering stdout to the silent S3);
- the status send (a held SetTaskStatus).

What is asserted is what the service received (the final status, or none), the
bound on the stop, and which processes are gone, never the execution's internals.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from runner.aws.client import Client, RetryPolicies, RetryPolicy
from runner.aws.s3 import S3
from runner.aws.session import new_session
from runner.localservice import LocalService
from runner.shutdown import FAST_STATUS_BUDGET_S, Shutdown
from runner.task.execution import Execution, ExecutionResult, ExecutionSettings
from runner.task.journal import Journal
from runner.taskmodel import StopReason, TaskStatus
from runner.workdir import WorkDir
from tests.support.pipelines import REGION, default_object, shell, submit
from tests.support.silents3 import BUCKET, SilentS3
from tests.support.waiting import wait_for

#: A stop is acted on within this long: kill_grace (0.5 s) and a loaded machine's
#: slack; the step is abandoned, never awaited.
STOP_BOUND_S = 2.5
#: Fast retries, except that only a stop ends the ack's and the status's.
PATIENT = dataclasses.replace(
    RetryPolicies.fast(),
    ack=RetryPolicy(1000, 600.0, 0.01, 0.05),
    status=RetryPolicy(1000, 600.0, 0.01, 0.05),
)
#: The statuses each stop owes when it comes before the verdict.
OWED = {
    StopReason.CANCELED: None,
    StopReason.LOST: None,
    StopReason.TIMEOUT: ("FAILED", "AttemptTimeout"),
    StopReason.DRAIN_EXPIRED: ("FAILED", "RunnerShutdown"),
}


def activity(**fields: Any) -> dict[str, Any]:
    return {
        "id": "Act",
        "name": "Act",
        "type": "ShellCommandActivity",
        "maximumRetries": "0",
        **fields,
    }


def s3_node(node_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "name": node_id, "type": "S3DataNode", **fields}


#: The steps that move bytes before the verdict, each hanging on the silent S3.
BEFORE_THE_VERDICT: dict[str, list[dict[str, Any]]] = {
    "fetch_script": [activity(scriptUri=f"{BUCKET}/run.sh")],
    "stage_in": [
        activity(command="true", stage="true", input={"ref": "In"}),
        s3_node("In", directoryPath=f"{BUCKET}/in"),
    ],
    "stage_out": [
        activity(
            command='echo done > "$OUTPUT1_STAGING_DIR/out.txt"',
            stage="true",
            output={"ref": "Out"},
        ),
        s3_node("Out", directoryPath=f"{BUCKET}/out"),
    ],
}


class Harness:
    """One execution of one task, on a thread. By default its process writes its
    pid and sleeps; ``objects`` replaces the activity."""

    def __init__(
        self,
        service: LocalService,
        dp: Any,
        tmp_path: Path,
        objects: list[dict[str, Any]] | None = None,
    ) -> None:
        log = structlog.get_logger("test")
        self.service = service
        self.shutdown = Shutdown(drain_timeout=1.0, kill_grace=0.5)
        client = Client(
            region=REGION,
            endpoint_url=service.endpoint_url,
            stop=self.shutdown.requested,
            abort=self.shutdown.fast,
            policies=PATIENT,
            log=log,
            session=new_session(REGION, ("test", "test")),
            poll_read_timeout_s=2.0,
        )
        work_dir = WorkDir(tmp_path / "work")
        work_dir.lock()
        self.journal = Journal.open(work_dir.root / "journal.db", log=log)
        self.pid_file = tmp_path / "task.pid"
        hold = shell(
            "Hold",
            f"echo $$ > {self.pid_file}.tmp; "
            f"mv {self.pid_file}.tmp {self.pid_file}; exec sleep 60",
        )
        submit(dp, [default_object(), *(objects or [hold])])
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

    def ended(self, within_s: float = 15.0) -> ExecutionResult:
        self.thread.join(within_s)
        assert not self.thread.is_alive()
        return self.result[0]

    def stop_and_time(self, reason: StopReason) -> float:
        """Stop the attempt for ``reason``; the seconds until ``run`` returned."""
        stopped = time.monotonic()
        self.execution.stop(reason, "the test")
        self.ended()
        return time.monotonic() - stopped

    def statuses(self) -> list[dict[str, Any]]:
        return [
            c.request
            for c in self.service.calls("SetTaskStatus")
            if c.request["taskId"] == self.task_id
        ]

    def owed(self) -> tuple[str, str | None] | None:
        """What the service received: (taskStatus, errorId), or None for nothing."""
        sent = self.statuses()
        assert len(sent) <= 1
        return (sent[0]["taskStatus"], sent[0].get("errorId")) if sent else None


@pytest.fixture
def made() -> Iterator[list[Harness]]:
    """Harnesses a test made; each is hurried and closed at teardown."""
    harnesses: list[Harness] = []
    yield harnesses
    for harness in harnesses:
        harness.execution.hurry("the test ended")
        harness.shutdown.hurry("the test ended")
        harness.thread.join(15)
        harness.journal.close()


@pytest.fixture
def harness(
    service: LocalService, dp: Any, tmp_path: Path, made: list[Harness]
) -> Harness:
    made.append(Harness(service, dp, tmp_path))
    return made[0]


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


# -- a stop during each step before the process: the ack ------------------------------


def test_a_stop_during_the_ack_runs_nothing_and_sends_nothing(
    harness: Harness,
) -> None:
    held = threading.Event()
    harness.service.faults.add("ReportTaskProgress", hold=held)
    harness.thread.start()
    wait_for(
        lambda: harness.service.faults.pending("ReportTaskProgress") == 0,
        15,
        "the ack held at the service",
    )
    assert harness.execution.stop(StopReason.CANCELED, "the test")
    released = time.monotonic()
    held.set()
    result = harness.ended()
    assert time.monotonic() - released < STOP_BOUND_S
    assert result.status is None
    assert not harness.pid_file.exists()  # the process never started
    assert harness.owed() is None


def test_the_runner_stopping_while_the_ack_keeps_failing_abandons_it(
    harness: Harness,
) -> None:
    harness.service.faults.add(
        "ReportTaskProgress", error="InternalServiceError", times=None
    )
    harness.thread.start()
    wait_for(
        lambda: len(harness.service.calls("ReportTaskProgress")) >= 2, 15, "ack retries"
    )
    stopped = time.monotonic()
    harness.shutdown.begin("the test")
    result = harness.ended()
    assert time.monotonic() - stopped < STOP_BOUND_S
    assert result.status is None
    assert not harness.pid_file.exists()
    assert harness.owed() is None


# -- the fetch of the script, the stage-in, the stage-out ----------------------------


@pytest.mark.parametrize("reason", list(OWED))
@pytest.mark.parametrize("step", list(BEFORE_THE_VERDICT))
def test_a_stop_while_a_transfer_hangs_before_the_verdict_owes_its_status(
    service: LocalService,
    dp: Any,
    tmp_path: Path,
    made: list[Harness],
    silent_s3: SilentS3,
    step: str,
    reason: StopReason,
) -> None:
    harness = Harness(service, dp, tmp_path, BEFORE_THE_VERDICT[step])
    made.append(harness)
    harness.thread.start()
    wait_for(lambda: silent_s3.held, 15, f"{step} hanging on S3")
    assert harness.stop_and_time(reason) < STOP_BOUND_S
    result = harness.ended()
    assert result.reason is reason
    assert harness.owed() == OWED[reason]
    assert (result.status is None) == (OWED[reason] is None)


# -- after the verdict: the wind-down, the status send -------------------------------


@pytest.mark.parametrize(
    "reason", [StopReason.CANCELED, StopReason.LOST, StopReason.DRAIN_EXPIRED]
)
def test_a_stop_during_the_wind_down_keeps_the_committed_verdict(
    service: LocalService,
    dp: Any,
    tmp_path: Path,
    made: list[Harness],
    silent_s3: SilentS3,
    reason: StopReason,
) -> None:
    deliver = [activity(command="echo hi", stdout=f"{BUCKET}/stdout.txt")]
    harness = Harness(service, dp, tmp_path, deliver)
    made.append(harness)
    harness.thread.start()
    wait_for(lambda: silent_s3.held, 15, "stdout's delivery hanging on S3")
    assert harness.stop_and_time(reason) < STOP_BOUND_S
    assert harness.owed() == ("FINISHED", None)  # exit 0 was committed first


def test_a_cancel_during_the_status_send_keeps_the_committed_verdict(
    service: LocalService, dp: Any, tmp_path: Path, made: list[Harness]
) -> None:
    harness = Harness(service, dp, tmp_path, [activity(command="true")])
    made.append(harness)
    held = threading.Event()
    service.faults.add("SetTaskStatus", hold=held)
    harness.thread.start()
    wait_for(lambda: service.faults.pending("SetTaskStatus") == 0, 15, "the send held")
    harness.execution.stop(StopReason.CANCELED, "the test")
    held.set()
    result = harness.ended()
    assert harness.owed() == ("FINISHED", None)
    assert result.status is not None
    assert result.status.status is TaskStatus.FINISHED


def test_the_runner_stopping_during_a_failing_send_keeps_the_status_for_the_next_start(
    service: LocalService, dp: Any, tmp_path: Path, made: list[Harness]
) -> None:
    harness = Harness(service, dp, tmp_path, [activity(command="true")])
    made.append(harness)
    service.faults.add("SetTaskStatus", error="InternalServiceError", times=None)
    harness.thread.start()
    wait_for(lambda: len(service.calls("SetTaskStatus")) >= 2, 15, "send retries")
    stopped = time.monotonic()
    harness.shutdown.hurry("the test")
    harness.ended()
    assert time.monotonic() - stopped < FAST_STATUS_BUDGET_S + STOP_BOUND_S
    assert [c.error for c in service.calls("SetTaskStatus")] == (
        ["InternalServiceError"] * len(service.calls("SetTaskStatus"))
    )
    (row,) = harness.journal.entries()  # what the next start sends
    assert row.status is not None
    assert row.status.status is TaskStatus.FINISHED
