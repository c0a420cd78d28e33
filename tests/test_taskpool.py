"""The ``TaskPool`` on its own (issue 23): real executions of real shell tasks,
polled from the local service over HTTP, their trees real child processes.

- ``shutdown_and_wait`` with one task that ends within the drain and one that
  outlives it: the first is FINISHED, the second stopped (DRAIN_EXPIRED) and its
  process gone, and the call returns only once both have reported.
- ``cancel_all``: every running attempt is stopped for the reason given, its
  process gone, and the pool idle again.
"""

from __future__ import annotations

import os
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
from runner.signals import Signals
from runner.task.execution import ExecutionSettings
from runner.task.journal import Journal
from runner.taskmodel import StopReason
from runner.taskpool import TaskPool
from runner.workdir import WorkDir
from runner.workerbooks import WorkerBooks
from tests.support.pipelines import (
    REGION,
    default_object,
    instances,
    shell,
    submit,
    wait_instances,
)
from tests.support.waiting import wait_for


class Pool:
    """A pool of two slots against the local service, and its own poll."""

    def __init__(self, service: LocalService, tmp_path: Path) -> None:
        log = structlog.get_logger("test")
        self.shutdown = Shutdown(drain_timeout=1.0, kill_grace=0.5)
        self.client = Client(
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
        self.pool = TaskPool(
            max_tasks=2,
            client=self.client,
            s3=S3(region=REGION, log=log),
            work_dir=work_dir,
            settings=ExecutionSettings(
                heartbeat_interval=0.2, lease_timeout=5, kill_grace=0.5, region=REGION
            ),
            shutdown=self.shutdown,
            journal=self.journal,
            books=WorkerBooks(2, ("wg",)),
            requests=Signals().inbox,
            log=log,
        )
        self.pool.start()

    def take(self, count: int) -> None:
        """Poll ``count`` tasks and submit each in a reserved slot."""
        for _ in range(count):
            assert self.pool.reserve("wg", 5.0)
            task = wait_for(
                lambda: self.client.poll_for_task("wg", "test-host"), 15, "a task"
            )
            self.pool.submit("wg", task)


@pytest.fixture
def pool(service: LocalService, tmp_path: Path) -> Iterator[Pool]:
    harness = Pool(service, tmp_path)
    yield harness
    harness.pool.cancel_all(StopReason.FAST_STOP, "the test ended")
    harness.pool.join()
    harness.journal.close()


def alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text()), 0)
    except ProcessLookupError:
        return False
    return True


def started(path: Path) -> str:
    """A command that writes its pid to ``path`` once it runs."""
    return f"echo $$ > {path}.tmp; mv {path}.tmp {path}"


def test_shutdown_and_wait_lets_one_end_and_stops_the_one_that_outlives_it(
    pool: Pool, dp: Any, tmp_path: Path
) -> None:
    quick, slow = tmp_path / "quick.pid", tmp_path / "slow.pid"
    pipeline_id = submit(
        dp,
        [
            default_object(),
            shell("Quick", f"{started(quick)}; sleep 0.3"),
            shell("Slow", f"{started(slow)}; exec sleep 60"),
        ],
    )
    pool.take(2)
    wait_for(lambda: quick.exists() and slow.exists(), 15, "both tasks to start")
    pool.shutdown.begin("test")
    assert pool.pool.shutdown_and_wait(drain_s=pool.shutdown.drain_timeout) is False
    assert pool.pool.idle()
    assert not alive(slow)
    # each reported before the call returned: Quick's FINISHED, Slow's failure
    by_name = {
        f["@componentParent"]: f["@status"] for f in instances(dp, pipeline_id).values()
    }
    assert by_name["Quick"] == "FINISHED"
    assert by_name["Slow"] not in {"FINISHED", "RUNNING"}


def test_shutdown_and_wait_returns_true_when_every_task_ends_in_the_drain(
    pool: Pool, dp: Any, tmp_path: Path
) -> None:
    quick = tmp_path / "quick.pid"
    pipeline_id = submit(dp, [default_object(), shell("Quick", started(quick))])
    pool.take(1)
    wait_for(quick.exists, 15, "the task to start")
    pool.shutdown.begin("test")
    assert pool.pool.shutdown_and_wait(drain_s=30.0) is True
    found = wait_instances(dp, pipeline_id, {"FINISHED", "FAILED"})
    assert [f["@status"] for f in found.values()] == ["FINISHED"]


def test_cancel_all_stops_every_running_attempt(
    pool: Pool, dp: Any, tmp_path: Path
) -> None:
    one, two = tmp_path / "one.pid", tmp_path / "two.pid"
    pipeline_id = submit(
        dp,
        [
            default_object(),
            shell("One", f"{started(one)}; exec sleep 60"),
            shell("Two", f"{started(two)}; exec sleep 60"),
        ],
    )
    pool.take(2)
    wait_for(lambda: one.exists() and two.exists(), 15, "both tasks to start")
    assert not pool.pool.idle()
    pool.pool.cancel_all(StopReason.TIMEOUT, "the test")
    assert pool.pool.wait_idle(15.0)
    assert not alive(one)
    assert not alive(two)
    found = instances(dp, pipeline_id)  # each reported before the pool was idle
    assert len(found) == 2
    assert all(f["@status"] not in {"FINISHED", "RUNNING"} for f in found.values())
