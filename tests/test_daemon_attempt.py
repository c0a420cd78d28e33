"""End to end: one attempt read as AWS hands it out, and the bugs of its lifecycle.

The real ``dp-runner run`` process against the local service, which shapes each
task as AWS does (the attempt with every inherited field flattened in, plus the
objects its value fields name). The service's fault switch can rewrite an answer,
so a test can hand the runner a task missing an object, or missing its id.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from runner.localservice import LocalService
from tests.support.pipelines import (
    default_object,
    shell,
    statuses_sent,
    submit,
    wait_instances,
)
from tests.support.runners import RunnerProcess
from tests.support.waiting import wait_for

Spawn = Callable[..., RunnerProcess]


def calls_until_status(service: LocalService) -> dict[str, int]:
    """How many calls of each operation arrived until the first SetTaskStatus
    (the test itself calls nothing meanwhile but to create the pipeline)."""
    status = wait_for(lambda: service.calls("SetTaskStatus"), 15, "a status")[0]
    counts: dict[str, int] = {}
    for call in service.calls():
        if call.at <= status.at:
            counts[call.operation] = counts.get(call.operation, 0) + 1
    return counts


def test_a_task_shaped_as_aws_sends_it_costs_three_calls(
    service: LocalService, dp: Any, spawn_runner: Spawn
) -> None:
    # everything but its type is inherited from Default: worker group, command
    act = {"id": "Act", "name": "Act", "type": "ShellCommandActivity"}
    pipeline_id = submit(dp, [default_object(command="echo from-default"), act])
    runner = spawn_runner("--heartbeat-interval", "5", "--lease-timeout", "20")
    counts = calls_until_status(service)
    assert counts.get("PollForTask") == 1
    assert counts.get("ReportTaskProgress") == 1  # the ack; the next beat is 5 s off
    assert counts.get("SetTaskStatus") == 1
    assert "DescribeObjects" not in counts
    wait_instances(dp, pipeline_id, {"FINISHED"})
    outputs = list(runner.work_dir.glob("attempts/*/*/*/*/StdOutput"))
    assert [p.read_text() for p in outputs] == ["from-default\n"]


def test_a_required_object_the_task_lacks_is_fetched_once(
    service: LocalService, dp: Any, spawn_runner: Spawn
) -> None:
    """The activity inherits its command from Default, and the rewritten answer
    carries it only by reference: the runner must fetch Default, once."""
    act = {"id": "Act", "name": "Act", "type": "ShellCommandActivity"}
    pipeline_id = submit(dp, [default_object(command="echo fetched"), act])

    def as_if_not_flattened(answer: dict[str, Any]) -> dict[str, Any]:
        task = answer["taskObject"]
        head = task["objects"][task["attemptId"]]
        head["fields"] = [f for f in head["fields"] if f["key"] != "command"]
        head["fields"].append({"key": "parent", "refValue": "Default"})
        return answer

    service.faults.add("PollForTask", rewrite=as_if_not_flattened)
    runner = spawn_runner()
    assert calls_until_status(service).get("DescribeObjects") == 1
    (fetch,) = service.calls("DescribeObjects")
    assert "Default" in fetch.request["objectIds"]
    wait_instances(dp, pipeline_id, {"FINISHED"})
    assert [s["taskStatus"] for s in statuses_sent(service)] == ["FINISHED"]
    outputs = list(runner.work_dir.glob("attempts/*/*/*/*/StdOutput"))
    assert [p.read_text() for p in outputs] == ["fetched\n"]


def test_a_task_without_a_task_id_is_skipped_and_the_runner_carries_on(
    service: LocalService, dp: Any, spawn_runner: Spawn
) -> None:
    def without_task_id(answer: dict[str, Any]) -> dict[str, Any]:
        answer["taskObject"].pop("taskId")
        return answer

    service.faults.add("PollForTask", rewrite=without_task_id)
    first = submit(dp, [default_object(), shell("One", "true")])
    runner = spawn_runner()
    skipped = runner.wait_event("task_skipped")
    assert skipped["reason"] == "no taskId"
    wait_instances(
        dp, first, {"FINISHED"}, timeout=30
    )  # re-offered after the ack window
    assert not runner.events("task_thread_crashed")
    assert not runner.events("execution_crashed")
    assert len(runner.events("task_skipped")) == 1


def test_a_real_time_signal_is_named(
    service: LocalService, dp: Any, spawn_runner: Spawn
) -> None:
    pipeline_id = submit(
        dp, [default_object(), shell("Rt", "kill -40 $$", maximumRetries="0")]
    )
    spawn_runner()
    wait_instances(dp, pipeline_id, {"FAILED"})
    (sent,) = statuses_sent(service)
    assert sent["errorId"] == "Signal:SIGRTMIN+6"


def test_a_bad_pipeline_log_uri_skips_the_upload_and_the_command_runs(
    service: LocalService, dp: Any, spawn_runner: Spawn
) -> None:
    defaults = default_object(pipelineLogUri="https://not-s3.example/logs")
    pipeline_id = submit(dp, [defaults, shell("Step", "echo ran")])
    runner = spawn_runner()
    wait_instances(dp, pipeline_id, {"FINISHED"})
    assert runner.wait_event("pipeline_log_uri_invalid")
    assert [s["taskStatus"] for s in statuses_sent(service)] == ["FINISHED"]


def test_every_line_keeps_its_logger_name_once_the_attempt_log_opens(
    service: LocalService, dp: Any, spawn_runner: Spawn
) -> None:
    pipeline_id = submit(dp, [default_object(), shell("Step", "true")])
    runner = spawn_runner()
    wait_instances(dp, pipeline_id, {"FINISHED"})
    finished = runner.wait_event("task_finished")
    acked = runner.wait_event("task_acknowledged")  # logged before the folder opens
    assert finished["logger"] == acked["logger"] == "dp-runner"
    (kept,) = runner.work_dir.glob("attempts/*/*/*/*/TaskRunner.log")
    lines = [json.loads(line) for line in kept.read_text().splitlines()]
    assert lines
    assert {line["logger"] for line in lines} == {"dp-runner"}
    assert wait_for(lambda: runner.events("task_started"))


def test_pruning_never_touches_a_running_attempt(
    service: LocalService, dp: Any, spawn_runner: Spawn
) -> None:
    """With ``keep_attempts = 0`` every housekeeping pass prunes (about every 5 s):
    the finished attempt's folder goes, the running one's stays."""
    quick = submit(dp, [default_object(), shell("Quick", "true")])
    runner = spawn_runner("--keep-attempts", "0")
    wait_instances(dp, quick, {"FINISHED"})
    slow_id = submit(dp, [default_object(), shell("Slow", "sleep 30")])
    runner.wait_event("task_started", pipeline_id=slow_id)
    pruned = len(runner.events("attempts_pruned"))
    wait_for(lambda: len(runner.events("attempts_pruned")) > pruned, 15, "a prune")
    assert not list(runner.work_dir.glob("attempts/*/Quick"))
    (slow,) = runner.work_dir.glob("attempts/*/Slow/*/*")
    assert (slow / "work").is_dir()
    assert any(e["removed"] >= 1 for e in runner.events("attempts_pruned"))
