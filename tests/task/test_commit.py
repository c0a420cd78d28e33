"""task/commit.py on its own: a journaled final status sent to the local service
over real HTTP, and what becomes of its journal row: closed once the service has
it or the task is gone, kept (for the next start) when the service keeps failing
until the caller's deadline."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import structlog

from runner.aws.client import RetryPolicies
from runner.aws.retries import RetryPolicy
from runner.localservice import LocalService
from runner.task.commit import Sent, send
from runner.task.journal import Journal
from runner.taskmodel import FinalStatus, TaskStatus
from tests.support.leases import leased_task, new_client
from tests.support.waiting import wait_for

pytestmark = pytest.mark.leases_hold

LOG = structlog.get_logger()
GROUP = "wg-commit"
FINISHED = FinalStatus(TaskStatus.FINISHED)


def journaled(tmp_path: Path, task: dict[str, Any], status: FinalStatus) -> Journal:
    journal = Journal.open(tmp_path / "journal.db", log=LOG)
    journal.attempt_opened(task["taskId"], task["attemptId"], tmp_path, "marker")
    journal.status_pending(task["taskId"], status)
    return journal


def never() -> float | None:
    return time.monotonic() + 60.0


def test_a_status_the_service_takes_closes_its_row(
    service: LocalService, dp: Any, tmp_path: Path
) -> None:
    task = leased_task(dp, GROUP)
    dp.report_task_progress(taskId=task["taskId"])
    journal = journaled(tmp_path, task, FINISHED)
    sent = send(
        new_client(service.endpoint_url), journal, task["taskId"], FINISHED, until=never
    )
    assert sent == Sent("sent")
    assert journal.entries() == []
    (call,) = service.calls("SetTaskStatus")
    assert call.request == {"taskId": task["taskId"], "taskStatus": "FINISHED"}
    journal.close()


def test_a_status_for_a_task_that_is_gone_is_dropped_and_closed(
    service: LocalService, dp: Any, tmp_path: Path
) -> None:
    task = leased_task(dp, GROUP)
    dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")  # moved on
    failed = FinalStatus.failed("Boom", "it broke")
    journal = journaled(tmp_path, task, failed)
    sent = send(
        new_client(service.endpoint_url), journal, task["taskId"], failed, until=never
    )
    assert (sent.delivery, sent.error) == ("dropped", "TaskNotFoundException")
    assert journal.entries() == []
    journal.close()


def test_a_status_the_service_keeps_failing_stays_for_the_next_start(
    service: LocalService, dp: Any, tmp_path: Path
) -> None:
    task = leased_task(dp, GROUP)
    dp.report_task_progress(taskId=task["taskId"])
    journal = journaled(tmp_path, task, FINISHED)
    service.faults.add("SetTaskStatus", error="InternalServiceError", times=None)
    patient = RetryPolicy(
        attempts=1000, budget_s=600.0, wait_initial_s=0.01, wait_max_s=0.05
    )
    client = new_client(service.endpoint_url, RetryPolicies(*[patient] * 6))
    tries = 3
    moved = threading.Event()  # the caller's deadline came: as a shutdown brings it

    def bring_the_deadline() -> None:
        wait_for(lambda: len(service.calls("SetTaskStatus")) >= tries, 30, "tries")
        moved.set()

    threading.Thread(target=bring_the_deadline, daemon=True).start()
    sent = send(
        client,
        journal,
        task["taskId"],
        FINISHED,
        until=lambda: time.monotonic() if moved.is_set() else None,
        wake=[moved],
    )
    assert (sent.delivery, sent.error) == ("not_sent", "InternalServiceError")
    assert len(service.calls("SetTaskStatus")) >= tries  # retried, not given up
    (left,) = journal.entries()
    assert left.status == FINISHED  # kept, for the next start
    journal.close()

    service.faults.clear()  # the next start
    journal = Journal.open(tmp_path / "journal.db", log=LOG)
    again = send(client, journal, task["taskId"], FINISHED, until=never)
    assert again == Sent("sent")
    assert journal.entries() == []
    journal.close()
