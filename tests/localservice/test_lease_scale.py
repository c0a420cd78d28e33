"""``lease_time_scale``: the lease windows (ack window, reportProgressTimeout) on a
clock of their own, so that a test's leases can outlast it while the rest of the
service's clock stays scaled down. Both services below lease at the same moment;
the one whose leases follow the fast clock shows that the window has passed."""

from __future__ import annotations

from typing import Any

import pytest

from runner.localservice import LocalService
from tests.support.localservice import (
    instance_status,
    make_client,
    run_pipeline,
    shell,
    wait_for,
)


def lapsed(dp: Any, task: dict[str, Any], window: str) -> bool:
    """The lease is gone, seen without touching it: the attempt is offered again
    (ack window) or timed out (reportProgressTimeout)."""
    if window == "ack":
        return "taskObject" in dp.poll_for_task(workerGroup="wg")
    pipeline_id, attempt_id = task["pipelineId"], task["attemptId"]
    return instance_status(dp, pipeline_id, attempt_id) == "TIMEDOUT"


@pytest.mark.parametrize("window", ["ack", "progress"])
def test_leases_on_a_clock_of_their_own_outlast_the_scaled_window(
    window: str,
) -> None:
    with (
        LocalService(time_scale=0.001, poll_hold_s=0.3) as fast,
        LocalService(time_scale=0.001, poll_hold_s=0.3, lease_time_scale=1.0) as held,
    ):
        clients = [make_client(fast.endpoint_url), make_client(held.endpoint_url)]
        tasks = []
        for dp in clients:
            run_pipeline(dp, [shell("Act", maximumRetries="0")])
            polled = wait_for(lambda dp=dp: dp.poll_for_task(workerGroup="wg"))
            tasks.append(polled["taskObject"])
        if window == "progress":  # acked: now the 15-minute progress window runs
            for dp, task in zip(clients, tasks, strict=True):
                dp.report_task_progress(taskId=task["taskId"])
        # 0.12 s (ack) or 0.9 s (progress) on the fast lease clock
        wait_for(lambda: lapsed(clients[0], tasks[0], window), 10)
        assert not lapsed(clients[1], tasks[1], window)
        clients[1].report_task_progress(taskId=tasks[1]["taskId"])  # still leased
