"""The verdict is committed when the main step ends (issue 22).

A task that exited 0 and whose log upload then hangs (an S3 that accepts and never
answers) is FINISHED whatever stops the runner during that wind-down: a SIGTERM
abandons the upload, says so, and sends FINISHED; a kill -9 leaves the journaled
FINISHED for the restart to send. Either way the service gets FINISHED once and
never reruns the work. And an attempt that fails before its process starts still
uploads its ``TaskRunner.log``, with the reason in it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.localservice import LocalService
from tests.support.harness import HarnessedRunner
from tests.support.pipelines import default_object, sent, shell, submit
from tests.support.runners import RunnerProcess
from tests.support.s3server import body, keys
from tests.support.silents3 import BUCKET, SilentS3
from tests.support.waiting import HANG_GUARD_S, wait_for

Spawn = Callable[..., RunnerProcess]
#: The tasks' leases must not lapse while a loaded machine is slow to ack or to
#: restart the runner: the tests are about the verdict, not about lease expiry.
pytestmark = pytest.mark.leases_hold


def hanging_upload(dp: Any) -> str:
    """A task that exits 0, with its logs going to the silent S3."""
    defaults = default_object(pipelineLogUri=f"{BUCKET}/logs")
    return submit(dp, [defaults, shell("Done", "echo done", maximumRetries="1")])


def test_a_sigterm_during_a_hanging_upload_after_exit_0_sends_finished_once(
    service: LocalService, dp: Any, spawn_runner: Spawn, silent_s3: SilentS3
) -> None:
    hanging_upload(dp)
    runner = spawn_runner("--drain-timeout", "30")
    runner.wait_event("task_started")
    wait_for(lambda: silent_s3.held, HANG_GUARD_S, "the log upload hanging on S3")
    runner.signal()
    assert runner.wait_exit() == 0
    abandoned = runner.events("task_step_abandoned")
    assert [e["step"] for e in abandoned] == ["upload_logs"]
    (status,) = sent(service)
    assert status["taskStatus"] == "FINISHED"
    (finished,) = runner.events("task_finished")
    assert finished["outcome"] == "finished"
    assert len(runner.events("task_started")) == 1  # never run again


def test_a_kill_9_during_a_hanging_upload_after_exit_0_sends_finished_once(
    service: LocalService,
    dp: Any,
    tmp_path: Path,
    harnessed: list[HarnessedRunner],
    silent_s3: SilentS3,
) -> None:
    hanging_upload(dp)
    runner = HarnessedRunner(service, tmp_path)
    harnessed.append(runner)
    runner.wait_event("task_started")
    wait_for(lambda: silent_s3.held, HANG_GUARD_S, "the log upload hanging on S3")
    runner.kill9_and_restart()
    runner.wait_event("journal_recovered", count=2)  # the restart's
    wait_for(lambda: sent(service), HANG_GUARD_S, "the journaled status")
    (status,) = sent(service)
    assert status["taskStatus"] == "FINISHED"
    assert runner.events("journal_status_sent")
    assert len(runner.events("task_started")) == 1  # never run again


def test_an_attempt_that_fails_before_its_process_uploads_its_runner_log(
    service: LocalService,
    dp: Any,
    spawn_runner: Spawn,
    s3_admin: Any,
    s3_bucket: str,
) -> None:
    missing = f"s3://{s3_bucket}/scripts/missing.sh"
    activity = {
        "id": "Script",
        "name": "Script",
        "type": "ShellCommandActivity",
        "scriptUri": missing,
        "maximumRetries": "0",
    }
    defaults = default_object(pipelineLogUri=f"s3://{s3_bucket}/logs")
    submit(dp, [defaults, activity])
    runner = spawn_runner()
    runner.wait_event("task_finished")
    uploaded = wait_for(lambda: keys(s3_admin, s3_bucket, "logs/"), what="log upload")
    (runner_key,) = [k for k in uploaded if k.endswith("/TaskRunner.log")]
    text = body(s3_admin, s3_bucket, runner_key)
    assert "task_rejected" in text
    assert "missing.sh" in text
    (status,) = sent(service)
    assert status["taskStatus"] == "FAILED"
