"""Planted secrets never reach any output, at any log level, on any path; and a
poll answer botocore cannot parse fails its task cleanly while the runner goes on.

The runner is the real process at ``--log-level debug`` (where botocore would print
request headers and bodies), with a planted session token in its environment. Each
path below plants a known secret, runs, and searches stdout, the file log, every
``TaskRunner.log`` and every field of every SetTaskStatus the service received.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

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
PASSWORD = "pw-planted-7d1c9a"  # noqa: S105 - a planted test secret
TOKEN = "token-planted-4be02f"  # noqa: S105 - a planted test secret


def everything(runner: RunnerProcess, service: LocalService) -> str:
    """Every output the runner made, and every status the service received."""
    texts = [runner.log_path.read_text(errors="replace")]
    texts += [p.read_text(errors="replace") for p in runner.work_dir.rglob("*.log*")]
    texts += [json.dumps(c.request) for c in service.calls("SetTaskStatus")]
    return "\n".join(texts)


@pytest.fixture
def planted_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)  # the runner signs with it


def with_password(*objects: dict[str, Any]) -> list[dict[str, Any]]:
    return [default_object(**{"*password": PASSWORD}), *objects]


def test_a_malformed_object_with_a_secret_leaks_it_nowhere(
    service: LocalService, dp: Any, spawn_runner: Spawn, planted_token: None
) -> None:
    def break_an_object(answer: dict[str, Any]) -> dict[str, Any]:
        task = answer.get("taskObject")
        if task:
            head = task["objects"][task["attemptId"]]
            head["fields"].append({"key": "*password", "stringValue": PASSWORD})
            head["fields"].append({"stringValue": "a field without a key"})
        return answer

    service.faults.add("PollForTask", rewrite=break_an_object, times=None)
    pipeline_id = submit(dp, with_password(shell("Step", "true", maximumRetries="0")))
    runner = spawn_runner("--log-level", "debug")
    wait_instances(dp, pipeline_id, {"FAILED"})
    (sent,) = statuses_sent(service)
    assert sent["errorId"] == "MalformedTaskObject"
    runner.wait_event("task_finished")
    output = everything(runner, service)
    assert runner.events("task_rejected")
    assert PASSWORD not in output
    assert TOKEN not in output


def test_a_secret_the_task_prints_is_masked_in_what_the_runner_reports(
    service: LocalService, dp: Any, spawn_runner: Spawn, planted_token: None
) -> None:
    """The command echoes the secret to stderr and fails: the stderr tail becomes
    errorStackTrace, and TaskRunner.log and the logs carry the task's lines."""
    step = shell("Step", f"echo 'pw was {PASSWORD}' >&2; exit 3", maximumRetries="0")
    pipeline_id = submit(dp, with_password(step))
    runner = spawn_runner("--log-level", "debug")
    wait_instances(dp, pipeline_id, {"FAILED"})
    (sent,) = statuses_sent(service)
    assert sent["errorId"] == "ExitCode:3"
    assert "pw was ***" in sent["errorStackTrace"]
    runner.wait_event("task_finished")
    output = everything(runner, service)
    assert PASSWORD not in output
    assert TOKEN not in output


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [
        (lambda task: task.__setitem__("objects", list(task["objects"].values())),
         "objects is a list"),
        (lambda task: task["objects"][task["attemptId"]].__setitem__("fields", "x"),
         "fields is a string"),
    ],
)  # fmt: skip
def test_a_poll_answer_botocore_cannot_parse_fails_the_task_and_polling_goes_on(
    service: LocalService,
    dp: Any,
    spawn_runner: Spawn,
    breakage: Callable[[dict[str, Any]], None],
    problem: str,
) -> None:
    def malformed(answer: dict[str, Any]) -> dict[str, Any]:
        if answer.get("taskObject"):
            breakage(answer["taskObject"])
        return answer

    service.faults.add("PollForTask", rewrite=malformed)
    first = submit(dp, with_password(shell("First", "true", maximumRetries="0")))
    runner = spawn_runner()
    wait_instances(dp, first, {"FAILED"})
    (sent,) = statuses_sent(service)
    assert sent["errorId"] == "MalformedTask"
    assert problem in sent["errorMessage"]
    second = submit(dp, [default_object(), shell("Second", "true")])
    wait_instances(dp, second, {"FINISHED"})  # at the normal pace, no backoff
    assert not runner.events("poll_failed")
    assert not [e for e in runner.events() if "exception" in e]
    assert PASSWORD not in everything(runner, service)
    assert wait_for(lambda: runner.events("poll_answer_malformed"))
