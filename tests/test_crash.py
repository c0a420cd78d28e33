"""Crash safety end to end: the runner SIGKILLed mid-task and mid-report, and a
single SIGTERM while SetTaskStatus fails, each followed by a start on the same work
dir. The runner runs below ``tests/scripts/kill9_harness.py``, a child subreaper
that reaps what it adopts (these machines' PID 1 does not), so what a killed runner
leaves stays findable. The local service records what it received.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from runner.localservice import LocalService
from runner.supervisor import MARKER_ENV
from tests.support.harness import HarnessedRunner
from tests.support.pipelines import default_object, sent, shell, submit
from tests.support.runners import REPO, SCRIPTS, runner_command
from tests.support.waiting import wait_for

#: The runner's status budget here (``status_budget``; the default is 30 s).
STATUS_BUDGET_S = 1.0


def marked(marker: str) -> list[psutil.Process]:
    """Live processes whose environment carries ``marker``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(MARKER_ENV) == marker:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def markers_of(command_part: str) -> set[str]:
    markers = set()
    for proc in psutil.process_iter():
        try:
            if command_part in " ".join(proc.cmdline()):
                markers.add(proc.environ().get(MARKER_ENV, ""))
        except psutil.Error:
            continue
    return markers - {""}


def test_a_runner_killed_mid_task_leaves_nothing_running_beside_its_restart(
    service: LocalService, dp: Any, tmp_path: Path, harnessed: list[HarnessedRunner]
) -> None:
    lock, clashes = tmp_path / "task.lock", tmp_path / "clashes"
    hold = f"exec {sys.executable} {SCRIPTS / 'flock_task.py'} {lock} {clashes} 60"
    submit(dp, [default_object(), shell("Hold", hold, maximumRetries="1")])
    runner = HarnessedRunner(service, tmp_path)
    harnessed.append(runner)
    first = runner.wait_event("task_started")
    (old_marker,) = wait_for(lambda: markers_of("flock_task.py"), 10, "the task")
    assert marked(old_marker)

    runner.kill9_and_restart()
    runner.wait_event("journal_recovered", count=2)  # the restart's
    assert marked(old_marker) == []  # killed by the restart, found by its marker

    def restarted() -> list[dict[str, Any]]:
        return [s for s in sent(service) if s.get("errorId") == "RunnerRestarted"]

    wait_for(restarted, 20, "the interrupted attempt's status")
    assert len(restarted()) == 1
    # the service retries the attempt; its new run takes the lock, with no clash
    second = runner.wait_event("task_started", count=2)
    assert second["attempt_id"] != first["attempt_id"]
    wait_for(lambda: len(markers_of("flock_task.py")) == 1, 10, "the retry's tree")
    assert not clashes.exists()


def test_a_runner_killed_mid_report_sends_the_journaled_status_once(
    service: LocalService, dp: Any, tmp_path: Path, harnessed: list[HarnessedRunner]
) -> None:
    service.faults.add("SetTaskStatus", error="InternalServiceError", times=None)
    submit(dp, [default_object(), shell("Quick", "echo done")])
    runner = HarnessedRunner(service, tmp_path)
    harnessed.append(runner)
    wait_for(lambda: len(service.calls("SetTaskStatus")) >= 2, what="status retries")
    (task_id,) = {c.request["taskId"] for c in service.calls("SetTaskStatus")}
    before = len(service.calls("SetTaskStatus"))

    runner.kill9_and_restart()
    # the restart's recovery tries it too; then the service comes back
    wait_for(lambda: len(service.calls("SetTaskStatus")) > before, what="a resend")
    service.faults.clear()
    runner.wait_event("journal_status_sent")
    (status,) = sent(service, task_id)
    assert status["taskStatus"] == "FINISHED"


def test_one_sigterm_bounds_the_exit_while_the_status_fails_and_the_next_start_sends_it(
    service: LocalService, dp: Any, tmp_path: Path
) -> None:
    """drain_timeout 0 and kill_grace 0: the bound is the status budget, which
    the runner is given small (``status_budget``, one value for the exit and for
    the recovery)."""
    service.faults.add("SetTaskStatus", error="InternalServiceError", times=None)
    submit(dp, [default_object(), shell("Quick", "echo done")])
    work_dir = tmp_path / "work"
    quick = ("--drain-timeout", "0", "--kill-grace", "0", "--worker-group", "wg")
    command = runner_command(service.endpoint_url, work_dir, *quick)
    env = {**os.environ, "DP_RUNNER_STATUS_BUDGET": str(STATUS_BUDGET_S)}
    with (tmp_path / "first.log").open("wb") as log:
        first = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env
        )
    try:
        wait_for(lambda: len(service.calls("SetTaskStatus")) >= 1, 20, "a status try")
        stopped = time.monotonic()
        first.send_signal(signal.SIGTERM)
        assert first.wait(STATUS_BUDGET_S + 10) == 0
        took_s = time.monotonic() - stopped
    finally:
        if first.poll() is None:
            first.kill()
    assert STATUS_BUDGET_S <= took_s < STATUS_BUDGET_S + 3  # retried its budget out
    assert sent(service) == []

    service.faults.clear()
    with (tmp_path / "second.log").open("wb") as log:
        second = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
        )
    try:
        wait_for(lambda: sent(service), 20, "the journaled status")
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
    finally:
        if second.poll() is None:
            second.kill()
    (status,) = sent(service)
    assert status["taskStatus"] == "FINISHED"
