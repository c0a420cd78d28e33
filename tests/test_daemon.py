"""End to end: the real ``dp-runner run`` process against the local service.

Each test drives a pipeline through the service over HTTP and asserts what the
service received (``service.calls``, the attempts' fields) and which processes are
gone, never how the runner got there.
"""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.localservice import LocalService
from tests.support.pipelines import (
    default_object,
    instances,
    shell,
    statuses_sent,
    submit,
    wait_instances,
)
from tests.support.runners import RunnerProcess
from tests.support.trees import assert_all_gone, tree_command, wait_tree
from tests.support.waiting import wait_for

Spawn = Callable[..., RunnerProcess]


def test_success_reports_finished_and_keeps_output(
    service: LocalService, dp: Any, spawn_runner: Spawn
) -> None:
    pipeline_id = submit(
        dp, [default_object(), shell("Hello", 'echo "hello $1"', scriptArgument="a b")]
    )
    runner = spawn_runner()
    wait_instances(dp, pipeline_id, {"FINISHED"})
    sent = statuses_sent(service)
    assert [s["taskStatus"] for s in sent] == ["FINISHED"]
    outputs = list(runner.work_dir.glob("attempts/*/*/*/*/StdOutput"))
    assert [p.read_text() for p in outputs] == ["hello a b\n"]
    finished = runner.wait_event("task_finished")
    assert finished["outcome"] == "finished"
    assert finished["pipeline_id"] == pipeline_id
    assert len(finished["task_id"]) == 12
    runner.signal(signal.SIGTERM)
    assert runner.wait_exit() == 0


def test_failure_reports_exit_code_and_stderr_tail(
    service: LocalService, dp: Any, spawn_runner: Spawn
) -> None:
    command = r"printf 'it broke \033[31mred\033[0m\n' >&2; exit 3"
    pipeline_id = submit(
        dp, [default_object(), shell("Broken", command, maximumRetries="0")]
    )
    spawn_runner()
    wait_instances(dp, pipeline_id, {"FAILED"})
    (sent,) = statuses_sent(service)
    assert sent["taskStatus"] == "FAILED"
    assert sent["errorId"] == "ExitCode:3"
    assert "exited with code 3" in sent["errorMessage"]
    assert "it broke red" in sent["errorStackTrace"]
    assert "\x1b" not in sent["errorStackTrace"]


def test_precondition_that_does_not_hold_reports_false(
    service: LocalService, dp: Any, spawn_runner: Spawn
) -> None:
    check = {
        "id": "Check",
        "name": "Check",
        "type": "ShellCommandPrecondition",
        "command": "exit 1",
        "preconditionTimeout": "2 minutes",
    }
    submit(
        dp,
        [
            default_object(),
            check,
            shell("Guarded", "true", precondition={"ref": "Check"}),
        ],
    )
    spawn_runner()
    wait_for(lambda: statuses_sent(service), 15, "a status")
    assert statuses_sent(service)[0]["taskStatus"] == "FALSE"


def test_malformed_task_fails_precisely_and_runner_carries_on(
    service: LocalService, dp: Any, spawn_runner: Spawn
) -> None:
    odd = {
        "id": "Odd",
        "name": "Odd",
        "type": "HiveActivity",
        "hiveScript": "x",
        "maximumRetries": "0",
    }
    first = submit(dp, [default_object(), odd])
    runner = spawn_runner()
    wait_instances(dp, first, {"FAILED"})
    (sent,) = statuses_sent(service)
    assert sent["errorId"] == "UnsupportedActivity"
    second = submit(dp, [default_object(), shell("After", "true")])
    wait_instances(dp, second, {"FINISHED"})
    assert runner.process.poll() is None


def test_cancel_kills_whole_tree_and_sends_no_status(
    service: LocalService, dp: Any, spawn_runner: Spawn, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids.json"
    pipeline_id = submit(dp, [default_object(), shell("Tree", tree_command(pid_file))])
    runner = spawn_runner()
    pids = wait_tree(pid_file)
    (instance_id,) = instances(dp, pipeline_id)
    dp.set_status(pipelineId=pipeline_id, objectIds=[instance_id], status="TRY_CANCEL")
    runner.wait_event("task_finished", outcome="canceled")
    assert_all_gone(pids)
    assert statuses_sent(service) == []


def test_deleted_pipeline_kills_tree_without_status(
    service: LocalService, dp: Any, spawn_runner: Spawn, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids.json"
    pipeline_id = submit(dp, [default_object(), shell("Tree", tree_command(pid_file))])
    runner = spawn_runner()
    pids = wait_tree(pid_file)
    dp.delete_pipeline(pipelineId=pipeline_id)
    runner.wait_event("task_finished", outcome="lost")
    assert_all_gone(pids)
    assert statuses_sent(service) == []


def test_lost_lease_kills_tree_without_status(
    service: LocalService, dp: Any, spawn_runner: Spawn, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids.json"
    submit(dp, [default_object(), shell("Tree", tree_command(pid_file))])
    runner = spawn_runner()
    pids = wait_tree(pid_file)
    service.faults.add("ReportTaskProgress", error="drop", times=None)
    event = runner.wait_event("task_finished", outcome="lease_expired", timeout=20)
    assert "no heartbeat" in event["detail"]
    assert_all_gone(pids)
    assert statuses_sent(service) == []


def test_attempt_timeout_kills_and_fails(
    service: LocalService, dp: Any, spawn_runner: Spawn, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids.json"
    pipeline_id = submit(
        dp,
        [
            default_object(),
            shell(
                "Slow",
                tree_command(pid_file),
                # the tree is three Python starts, which a loaded machine has
                # taken more than 2 s to make: the timeout must not end it first
                attemptTimeout="10 seconds",
                maximumRetries="0",
            ),
        ],
    )
    spawn_runner()
    pids = wait_tree(pid_file)
    wait_instances(dp, pipeline_id, {"FAILED", "TIMEDOUT"})
    assert_all_gone(pids)
    (sent,) = statuses_sent(service)
    assert sent["errorId"] == "AttemptTimeout"


@pytest.mark.parametrize(
    "error", ["InternalServiceError", "ThrottlingException", "drop"]
)
def test_transient_errors_on_every_call_lose_nothing(
    service: LocalService, dp: Any, spawn_runner: Spawn, error: str
) -> None:
    for operation in (
        "PollForTask",
        "ReportTaskProgress",
        "SetTaskStatus",
        "ReportTaskRunnerHeartbeat",
    ):
        service.faults.add(operation, error=error, times=2)
    pipeline_id = submit(dp, [default_object(), shell("Hello", "echo hi")])
    spawn_runner()
    wait_instances(dp, pipeline_id, {"FINISHED"}, timeout=30)
    assert [s["taskStatus"] for s in statuses_sent(service)] == ["FINISHED"]
    attempts = [c for c in service.calls("PollForTask") if c.error is None]
    assert attempts


def test_sigterm_drains_running_task_then_exits_zero(
    service: LocalService, dp: Any, spawn_runner: Spawn
) -> None:
    pipeline_id = submit(dp, [default_object(), shell("Nap", "sleep 1; echo done")])
    runner = spawn_runner()
    runner.wait_event("task_started")
    runner.signal(signal.SIGTERM)
    assert runner.wait_exit() == 0
    wait_instances(dp, pipeline_id, {"FINISHED"})
    progress = service.calls("ReportTaskProgress")
    assert len(progress) >= 3  # the heartbeat went on during the drain


def test_drain_timeout_kills_and_reports_runner_shutdown(
    service: LocalService, dp: Any, spawn_runner: Spawn, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids.json"
    submit(
        dp,
        [default_object(), shell("Tree", tree_command(pid_file), maximumRetries="0")],
    )
    runner = spawn_runner("--drain-timeout", "1")
    pids = wait_tree(pid_file)
    runner.signal(signal.SIGTERM)
    assert runner.wait_exit() == 0
    assert_all_gone(pids)
    (sent,) = statuses_sent(service)
    assert sent["errorId"] == "RunnerShutdown"


def test_second_signal_stops_fast(
    service: LocalService, dp: Any, spawn_runner: Spawn, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids.json"
    submit(
        dp,
        [default_object(), shell("Tree", tree_command(pid_file), maximumRetries="0")],
    )
    runner = spawn_runner("--drain-timeout", "60")
    pids = wait_tree(pid_file)
    runner.signal(signal.SIGTERM)
    runner.wait_event("worker_draining")
    runner.signal(signal.SIGINT)
    assert runner.wait_exit(timeout=10) == 0
    assert_all_gone(pids)
    (sent,) = statuses_sent(service)
    assert sent["errorId"] == "RunnerShutdown"


def test_idle_runner_exits_at_once_on_sigterm(spawn_runner: Spawn) -> None:
    runner = spawn_runner()
    runner.wait_event("worker_started")
    runner.signal(signal.SIGTERM)
    assert runner.wait_exit(timeout=5) == 0


def test_terminate_from_service_drains_and_exits_zero(
    service: LocalService, spawn_runner: Spawn
) -> None:
    runner = spawn_runner()
    runner.wait_event("worker_started")
    service.set_terminate(True)
    assert runner.wait_exit() == 0
    runner_id = service.calls("ReportTaskRunnerHeartbeat")[0].request["taskrunnerId"]
    assert runner_id == (runner.work_dir / "taskrunner-id").read_text().strip()


def test_bad_config_exits_78_and_names_the_field(spawn_runner: Spawn) -> None:
    runner = spawn_runner("--max-tasks", "0")
    assert runner.wait_exit() == 78
    assert "max_tasks" in runner.log_path.read_text()


def test_second_runner_on_same_work_dir_exits_78(
    service: LocalService, tmp_path: Path
) -> None:
    import subprocess  # noqa: PLC0415

    from tests.support.runners import runner_command  # noqa: PLC0415

    work = tmp_path / "shared"
    command = runner_command(service.endpoint_url, work, "--worker-group", "wg")
    first = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        lock = work / "dp-runner.lock"
        wait_for(lambda: lock.exists() and lock.read_text().strip(), 15, "the lock")
        second = subprocess.run(command, capture_output=True, timeout=30, check=False)
        assert second.returncode == 78
        assert b"another runner" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(10)


def test_no_credentials_is_a_clear_error(
    service: LocalService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess  # noqa: PLC0415

    from tests.support.runners import runner_command  # noqa: PLC0415

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    command = runner_command(
        service.endpoint_url, tmp_path / "w", "--worker-group", "wg"
    )
    result = subprocess.run(
        command, capture_output=True, timeout=60, check=False, env=dict(os.environ)
    )
    assert result.returncode == 78
    assert b"credentials" in result.stderr.lower()


@pytest.mark.parametrize("max_tasks", [1, 2])
def test_slots_bound_the_tasks_and_polls_never_overlap(
    service: LocalService, dp: Any, spawn_runner: Spawn, max_tasks: int
) -> None:
    """``max_tasks`` tasks at most run at once (and that many do), a group never
    has two polls outstanding, and every task gets exactly one final status."""
    pipeline_id = submit(
        dp, [default_object()] + [shell(f"S{i}", "sleep 0.3") for i in range(5)]
    )
    runner = spawn_runner("--max-tasks", str(max_tasks))
    wait_instances(dp, pipeline_id, {"FINISHED"})
    runner.signal(signal.SIGTERM)
    assert runner.wait_exit() == 0

    polls = sorted(service.calls("PollForTask"), key=lambda c: c.at)
    for before, after in itertools.pairwise(polls):
        assert after.at >= before.answered, "two polls were outstanding at once"
    acks: dict[str, float] = {}
    for call in service.calls("ReportTaskProgress"):
        acks.setdefault(call.request["taskId"], call.at)
    ends = {c.request["taskId"]: c.at for c in service.calls("SetTaskStatus")}
    assert len(statuses_sent(service)) == 5
    assert sorted(ends) == sorted(acks)
    events = sorted(
        [(at, 1) for at in acks.values()] + [(at, -1) for at in ends.values()]
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == max_tasks


@pytest.mark.leases_hold  # the ack must not miss its window under load
def test_heartbeat_goes_on_while_a_slow_final_status_is_sent(
    service: LocalService, dp: Any, spawn_runner: Spawn
) -> None:
    """Even for a task rejected before any process ran, the progress heartbeat
    starts before the final status, so a slow SetTaskStatus loses no lease."""
    odd = {
        "id": "Odd",
        "name": "Odd",
        "type": "HiveActivity",
        "hiveScript": "x",
        "maximumRetries": "0",
    }
    service.faults.add("SetTaskStatus", latency_s=1.0)
    pipeline_id = submit(dp, [default_object(), odd])
    spawn_runner()
    wait_instances(dp, pipeline_id, {"FAILED"})
    (status,) = service.calls("SetTaskStatus")
    beats = [
        c
        for c in service.calls("ReportTaskProgress")
        if c.request["taskId"] == status.request["taskId"]
        and status.at < c.at < status.answered
    ]
    assert len(beats) >= 3
