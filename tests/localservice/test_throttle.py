"""`--throttle aws`: AWS's call rates (DG dp-limits), one token bucket per
operation, in real time; a burst over a bucket is ThrottlingException, and a real
runner rides it out with no task lost."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from runner.localservice import LocalService
from runner.localservice.throttle import AWS_RATES, Throttle
from tests.support.localservice import make_client
from tests.support.pipelines import default_object, shell, submit, wait_instances
from tests.support.runners import REPO, RunnerProcess
from tests.support.waiting import wait_for

BOGUS_TASK = "not-a-task-of-this-service"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class HeldClock:
    """A clock that stands still until ``release``, then runs: buckets on it do
    not refill while the test holds it, however slow the machine."""

    def __init__(self) -> None:
        self.held_at: float | None = time.monotonic()
        self._offset = 0.0

    def __call__(self) -> float:
        if self.held_at is not None:
            return self.held_at
        return time.monotonic() - self._offset

    def release(self) -> None:
        if self.held_at is not None:
            self._offset = time.monotonic() - self.held_at
            self.held_at = None


def test_a_bucket_holds_the_burst_and_refills_at_the_rate() -> None:
    clock = Clock()
    buckets = Throttle(clock=clock)
    assert all(buckets.take("PollForTask") for _ in range(100))  # burst 100
    assert buckets.take("PollForTask") is False
    clock.now += 0.49
    assert buckets.take("PollForTask") is False  # 2/s: not one token yet
    clock.now += 0.01
    assert buckets.take("PollForTask") is True
    assert buckets.take("PollForTask") is False
    clock.now += 3600
    assert sum(buckets.take("PollForTask") for _ in range(150)) == 100  # capped
    assert buckets.take("SetTaskStatus") is True  # buckets are per operation
    assert all(buckets.take("AddTags") for _ in range(500))  # not on the page
    assert buckets.statistics().throttled == {"PollForTask": 53}


def test_the_rates_are_the_limits_page() -> None:
    assert AWS_RATES["PollForTask"] == (2.0, 100.0)
    assert AWS_RATES["ReportTaskProgress"] == (10.0, 100.0)
    assert AWS_RATES["SetTaskStatus"] == (10.0, 100.0)
    assert AWS_RATES["ReportTaskRunnerHeartbeat"] == (1.0, 100.0)
    assert AWS_RATES["DescribeObjects"] == (2.0, 100.0)
    assert len(AWS_RATES) == 15


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LocalService]:
    """The conftest service, with AWS's rates (overrides both conftests')."""
    with LocalService(
        state_path=tmp_path / "service.db",
        time_scale=0.01,
        poll_hold_s=0.5,
        throttle="aws",
        lease_time_scale=1.0,  # a throttled ack must not race a 1.2 s ack window
    ) as svc:
        yield svc


def drain(dp: Any, operation: str, **request: Any) -> tuple[int, dict[str, Any]]:
    """Call until the bucket answers ThrottlingException; return the calls made
    and that answer."""
    call = getattr(dp, operation)
    for made in range(1, 400):
        try:
            call(**request)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ThrottlingException":
                return made, exc.response
    pytest.fail(f"{operation} was never throttled")


def test_a_burst_over_a_bucket_is_throttled_as_aws_throttles(
    service: LocalService,
) -> None:
    dp = make_client(service.endpoint_url)
    made, answer = drain(dp, "report_task_runner_heartbeat", taskrunnerId="r")
    assert 101 <= made <= 105  # the burst, and what 1/s refilled meanwhile
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert answer["Error"]["Message"] == "Rate exceeded"
    assert dp.list_pipelines()["pipelineIdList"] == []  # other buckets are full
    throttled = [c for c in service.calls() if c.error == "ThrottlingException"]
    assert [c.operation for c in throttled] == ["ReportTaskRunnerHeartbeat"]


def test_without_the_flag_nothing_is_throttled(tmp_path: Path) -> None:
    with LocalService(state_path=tmp_path / "s.db") as svc:
        dp = make_client(svc.endpoint_url)
        for _ in range(150):
            dp.report_task_runner_heartbeat(taskrunnerId="r")


def test_a_runner_rides_out_throttling_with_no_task_lost(
    service: LocalService, spawn_runner: Callable[..., RunnerProcess]
) -> None:
    """Empty the task-progress and task-status buckets just before the tasks of
    three pipelines are ready: the runner's acks, heartbeats and statuses meet
    ThrottlingException, back off with jitter, and every instance finishes.

    The two buckets are on a clock the test holds until the runner's own calls
    have been refused, so that no refill in real time races a slow runner to
    its first ack; then the clock runs and the buckets refill at AWS's rates."""
    clock = HeldClock()
    held = ("ReportTaskProgress", "SetTaskStatus")
    service.throttle = Throttle({op: AWS_RATES[op] for op in held}, clock=clock)
    dp = make_client(service.endpoint_url)
    runner = spawn_runner("--max-tasks", "3")
    runner.wait_event("worker_started")
    drain(dp, "report_task_progress", taskId=BOGUS_TASK)
    drain(dp, "set_task_status", taskId=BOGUS_TASK, taskStatus="FINISHED")
    pipelines = [
        submit(
            dp,
            [
                default_object(),
                shell(f"First{n}", "sleep 0.2"),
                shell(f"Then{n}", "true", dependsOn={"ref": f"First{n}"}),
            ],
        )
        for n in range(3)
    ]

    def mine() -> list[Any]:
        return [
            c
            for c in service.calls()
            if c.error == "ThrottlingException"
            and c.request.get("taskId", "") not in {"", BOGUS_TASK}
        ]

    wait_for(mine, what="the runner's own calls throttled")
    clock.release()
    for pipeline_id in pipelines:
        wait_instances(dp, pipeline_id, {"FINISHED"})
    assert runner.process.poll() is None
    assert runner.events("task_finished")


def test_dp_runner_local_takes_the_flag(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runner", "local", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        cwd=REPO,
    )
    assert "--throttle [off|aws]" in result.stdout
