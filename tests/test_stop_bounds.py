"""Every stop within its bound, in every phase (issue 22): a SIGTERM while the
ack keeps failing, and a SIGTERM during a start-up recovery that stalls on a
service that does not answer. The runner is a real process against the local
service; the bound asserted is far below the 30 s status budget's."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from runner.localservice import LocalService
from runner.task.journal import Journal
from tests.support.pipelines import default_object, shell, submit
from tests.support.runners import REPO, RunnerProcess, runner_command
from tests.support.waiting import wait_for

Spawn = Callable[..., RunnerProcess]
#: What a stop may take here: drain 0, kill_grace 0.5 (conftest) and the time a
#: loaded machine takes to end a Python process.
BOUND_S = 5.0


def test_a_sigterm_while_the_ack_keeps_failing_abandons_it(
    service: LocalService, dp: Any, spawn_runner: Spawn
) -> None:
    service.faults.add("ReportTaskProgress", error="InternalServiceError", times=None)
    submit(dp, [default_object(), shell("Never", "echo ran")])
    runner = spawn_runner("--drain-timeout", "0")
    wait_for(lambda: len(service.calls("ReportTaskProgress")) >= 2, 20, "ack retries")
    stopped = time.monotonic()
    runner.signal(signal.SIGTERM)
    assert runner.wait_exit(30) == 0
    assert time.monotonic() - stopped < BOUND_S
    tries = len(service.calls("ReportTaskProgress"))
    service.faults.clear()
    assert runner.events("task_started") == []
    assert [c for c in service.calls("ReportTaskProgress") if c.error is None] == []
    assert len(service.calls("ReportTaskProgress")) == tries
    assert service.calls("SetTaskStatus") == []


#: A run that journaled 8 statuses and died before sending them.
LAST_RUN = """
import sys
from pathlib import Path
import structlog
from runner.task.journal import Journal
from runner.taskmodel import FinalStatus, TaskStatus
journal = Journal.open(Path(sys.argv[1]) / "journal.db", log=structlog.get_logger())
for n in range(8):
    journal.status_pending(f"task-{n}", FinalStatus(TaskStatus.FINISHED))
"""


def test_a_sigterm_during_a_stalled_recovery_exits_and_leaves_the_rows(
    service: LocalService, tmp_path: Path
) -> None:
    """8 statuses the last run left, and a service that holds every SetTaskStatus
    15 s before it fails: a SIGTERM ends the recovery within seconds (it took
    201 s), and the rows wait for the next start."""
    work_dir = tmp_path / "work"
    work_dir.mkdir(mode=0o700)
    subprocess.run([sys.executable, "-c", LAST_RUN, str(work_dir)], check=True)
    service.faults.add(
        "SetTaskStatus", error="InternalServiceError", latency_s=15, times=None
    )
    command = runner_command(service.endpoint_url, work_dir, "--worker-group", "wg")
    log_path = tmp_path / "runner.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
        )
    runner = RunnerProcess(process, log_path, work_dir)
    try:
        runner.wait_event("journal_recovering")
        stopped = time.monotonic()
        runner.signal(signal.SIGTERM)
        assert runner.wait_exit(60) == 0
        assert time.monotonic() - stopped < BOUND_S
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
    assert runner.events("worker_started") == []
    journal = Journal.open(work_dir / "journal.db", log=structlog.get_logger())
    assert len(journal.leftovers()) == 8
    journal.close()
