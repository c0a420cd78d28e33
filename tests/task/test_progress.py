"""task/progress.py on its own, against the local service over real HTTP: the ack,
the heartbeat that keeps the lease, and the stop reasons its answers become. The
service's leases hold for the whole test (``leases_hold``): what ends a lease here
is the test, never the machine's speed."""

from __future__ import annotations

from typing import Any

import pytest
import structlog

from runner.localservice import LocalService
from runner.task.progress import Progress
from runner.taskmodel import StopReason
from tests.support.leases import leased_task, new_client
from tests.support.waiting import wait_for

pytestmark = pytest.mark.leases_hold

LOG = structlog.get_logger()
GROUP = "wg-progress"


class Stops(list[tuple[StopReason, str]]):
    """What ``on_stop`` was told, in order."""

    def __call__(self, reason: StopReason, detail: str) -> None:
        self.append((reason, detail))


def acknowledge(service: LocalService, task_id: str, stops: Stops) -> Progress | None:
    return Progress.acknowledge(
        new_client(service.endpoint_url),
        task_id,
        name="test-progress",
        interval_s=0.05,
        lease_timeout_s=600.0,
        on_stop=stops,
        log=LOG,
    )


def reports(service: LocalService, task_id: str) -> int:
    calls = service.calls("ReportTaskProgress")
    return len([c for c in calls if c.request["taskId"] == task_id and not c.error])


def test_the_ack_comes_first_then_reports_keep_the_lease(
    service: LocalService, dp: Any
) -> None:
    task = leased_task(dp, GROUP)
    stops = Stops()
    progress = acknowledge(service, task["taskId"], stops)
    assert progress is not None
    try:
        first = progress.lease_deadline()
        wait_for(lambda: reports(service, task["taskId"]) >= 4, 15, "four reports")
        wait_for(lambda: progress.lease_deadline() > first, 15, "the lease moved")
    finally:
        progress.stop()
    assert stops == []
    (ack, *_) = service.calls("ReportTaskProgress")
    assert ack.request["taskId"] == task["taskId"]
    status = dp.describe_objects(
        pipelineId=task["pipelineId"], objectIds=[task["attemptId"]]
    )["pipelineObjects"][0]
    fields = {f["key"]: f.get("stringValue") for f in status["fields"]}
    assert fields["@status"] == "RUNNING"  # the service took the ack


def test_a_task_gone_before_the_ack_is_lost_and_not_run(service: LocalService) -> None:
    stops = Stops()
    assert acknowledge(service, "no-such-task", stops) is None
    ((reason, detail),) = stops
    assert reason is StopReason.LOST
    assert "TaskNotFound" in detail


def test_a_task_canceled_at_the_ack_is_not_run(service: LocalService, dp: Any) -> None:
    task = leased_task(dp, GROUP)
    instance = next(
        f["refValue"]
        for f in task["objects"][task["attemptId"]]["fields"]
        if f["key"] == "@instanceParent"
    )
    dp.set_status(
        pipelineId=task["pipelineId"], objectIds=[instance], status="TRY_CANCEL"
    )
    stops = Stops()
    assert acknowledge(service, task["taskId"], stops) is None
    assert [reason for reason, _ in stops] == [StopReason.CANCELED]


def test_a_task_that_goes_away_while_it_runs_is_lost(
    service: LocalService, dp: Any
) -> None:
    task = leased_task(dp, GROUP)
    stops = Stops()
    progress = acknowledge(service, task["taskId"], stops)
    assert progress is not None
    try:
        dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")  # elsewhere
        wait_for(lambda: stops, 15, "the heartbeat to learn the task is gone")
    finally:
        progress.stop()
    assert stops[0][0] is StopReason.LOST


def test_fit_timeout_beats_three_times_per_report_progress_timeout(
    service: LocalService, dp: Any
) -> None:
    task = leased_task(dp, GROUP)
    stops = Stops()
    progress = Progress.acknowledge(
        new_client(service.endpoint_url),
        task["taskId"],
        name="test-progress",
        interval_s=600.0,  # never, unless the task's timeout shortens it
        lease_timeout_s=600.0,
        on_stop=stops,
        log=LOG,
    )
    assert progress is not None
    try:
        progress.fit_timeout(0.3)  # three reports in 0.3 s: one every 0.1 s
        wait_for(lambda: reports(service, task["taskId"]) >= 4, 15, "reports")
    finally:
        progress.stop()
    assert stops == []
