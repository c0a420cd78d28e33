"""One runner per work dir, held by the kernel (issue 22): a second runner started
on the work dir of a running one, after its ``dp-runner.lock`` was deleted, exits 78
at once, and the first runner's task lives on and finishes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import psutil

from runner.localservice import LocalService
from tests.support.pipelines import default_object, shell, statuses_sent, submit
from tests.support.runners import REPO, RunnerProcess, runner_command


def test_a_deleted_lock_file_does_not_let_a_second_runner_start(
    service: LocalService, dp: Any, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    wait = f"while [ ! -e {release} ]; do sleep 0.05; done; echo done"
    submit(dp, [default_object(), shell("Hold", wait)])
    work_dir = tmp_path / "work"
    command = runner_command(service.endpoint_url, work_dir, "--worker-group", "wg")
    log_path = tmp_path / "first.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
        )
    first = RunnerProcess(process, log_path, work_dir)
    try:
        started = first.wait_event("task_started")
        (work_dir / "dp-runner.lock").unlink()
        second = subprocess.run(
            command, capture_output=True, text=True, timeout=60, cwd=REPO, check=False
        )
        assert second.returncode == 78, second.stderr
        assert "another runner" in second.stderr
        assert psutil.pid_exists(started["pid"])  # the first runner's task lives on
        assert first.events("task_finished") == []
        release.touch()
        first.wait_event("task_finished")
        (status,) = statuses_sent(service)
        assert status["taskStatus"] == "FINISHED"
        first.signal()
        assert first.wait_exit() == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
