"""The runner's stdout as journald and as ``| head -1`` see it: the real daemon,
against the local service."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from runner.localservice import LocalService
from tests.support.pipelines import default_object, shell, submit, wait_instances
from tests.support.runners import REPO, runner_command
from tests.support.waiting import wait_for


def file_log_events(work_dir: Path) -> list[str]:
    path = work_dir / "logs" / "dp-runner.log"
    if not path.exists():
        return []
    return [json.loads(line)["event"] for line in path.read_text().splitlines()]


def test_lines_carry_syslog_priorities_on_the_journal_stream(
    service: LocalService, dp: Any, tmp_path: Path
) -> None:
    pipeline_id = submit(
        dp, [default_object(), shell("Bad", "exit 3", maximumRetries="0")]
    )
    out_path, work_dir = tmp_path / "journal", tmp_path / "work"
    command = runner_command(service.endpoint_url, work_dir, "--worker-group", "wg")
    with out_path.open("wb") as out:
        stat = os.fstat(out.fileno())
        env = os.environ | {"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"}
        runner = subprocess.Popen(
            command, stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=REPO
        )
    try:
        wait_instances(dp, pipeline_id, {"FAILED"})
        wait_for(lambda: "task_finished" in file_log_events(work_dir), 15, "finished")
    finally:
        runner.terminate()
        assert runner.wait(20) == 0
    lines = out_path.read_text().splitlines()
    prefixed = {json.loads(line[3:])["event"]: line[:3] for line in lines}
    assert prefixed["worker_started"] == "<6>"
    assert prefixed["task_finished"] == "<4>"  # a failed task is a warning
    assert all(line[0] == "<" for line in lines)
    assert "<3>" not in prefixed.values()
    assert "thread_left_behind" not in prefixed  # a normal stop says nothing of it


def test_a_closed_stdout_costs_one_stderr_line_and_the_file_log_goes_on(
    service: LocalService, dp: Any, tmp_path: Path
) -> None:
    """``dp-runner run … | head -1``."""
    work_dir = tmp_path / "work"
    command = runner_command(service.endpoint_url, work_dir, "--worker-group", "wg")
    runner = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO
    )
    assert runner.stdout is not None
    assert runner.stderr is not None
    try:
        first = runner.stdout.readline()
        runner.stdout.close()  # head -1 exits
        assert json.loads(first)["event"]
        pipeline_id = submit(dp, [default_object(), shell("Echo", "echo hi")])
        wait_instances(dp, pipeline_id, {"FINISHED"})
        wait_for(lambda: "task_finished" in file_log_events(work_dir), 15, "done")
    finally:
        runner.terminate()
        code = runner.wait(20)
    stderr = runner.stderr.read().decode()
    runner.stderr.close()
    assert code == 0
    assert len(stderr.splitlines()) <= 1, stderr
    assert "runner_stopped" in file_log_events(work_dir)
