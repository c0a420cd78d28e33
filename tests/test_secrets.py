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


#: Secrets that a substring mask would turn into broken JSON or mangled keys.
SHORT_SECRETS = ("e", '"', "0", "true")


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` parsed as JSON (a line that is not fails the test)."""
    return [json.loads(line) for line in text.splitlines() if line]


@pytest.mark.parametrize("own_secret", SHORT_SECRETS)
def test_short_secrets_leave_every_line_valid_json_with_its_keys(
    service: LocalService,
    dp: Any,
    spawn_runner: Spawn,
    monkeypatch: pytest.MonkeyPatch,
    own_secret: str,
) -> None:
    """``e``, ``"``, ``0`` and ``true`` as ``*``-fields and as the runner's own
    secret key: stdout, the file log and TaskRunner.log stay JSON, keys intact."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", own_secret)
    secrets = {f"*s{n}": value for n, value in enumerate(SHORT_SECRETS)}
    pipeline_id = submit(
        dp,
        [
            default_object(**secrets),
            shell("Good", "echo true e 0", myField="e"),
            shell("Bad", 'echo "e" >&2; exit 3', maximumRetries="0"),
        ],
    )
    runner = spawn_runner()
    wait_instances(dp, pipeline_id, {"FINISHED", "FAILED"})
    wait_for(lambda: len(runner.events("task_finished")) == 2, 15, "two tasks")
    runner.signal()
    assert runner.wait_exit() == 0
    stdout = json_lines(runner.log_path.read_text())
    files = [runner.work_dir.rglob(name) for name in ("dp-runner.log*", "*.log")]
    others = [json_lines(p.read_text()) for found in files for p in found]
    attempt_logs = list(runner.work_dir.rglob("TaskRunner.log"))
    assert len(attempt_logs) == 2
    for line in stdout + [line for lines in others for line in lines]:
        assert {"event", "level", "timestamp"} <= line.keys(), line
        assert "***" not in "".join(line.keys())
    events = [line["event"] for line in stdout]
    assert "worker_started" in events
    assert events.count("secret_too_short_to_mask") == 1
    started = next(line for line in stdout if line["event"] == "worker_started")
    assert "***" not in started["hostname"]  # a short secret is never a substring
    finished = [line for line in stdout if line["event"] == "task_finished"]
    assert {line["level"] for line in finished} == {"info", "warning"}
