"""Fuzzing with hypothesis: task objects and configuration.

In process (the ``ci`` profile: derandomized, no database, no deadline, 200
examples a target): a task object of any shape goes the runner's way (the poll
answer's shape check, ``Task.from_wire``, the activity's plan, the verdict) and
ends as a plan or as a FAILED status with a precise errorId, never a crash, and
never shows its ``*password``; a configuration of any shape (TOML and environment)
gives ``Settings`` or a ``ConfigError`` that names the field.

Through the real CLI: 20 fuzzed task objects handed to a running ``dp-runner
run`` by the local service, and every invalid value of ``BAD_SETTINGS``, in four
configuration files that each hold a bad value for every setting (the ``n``-th
value of each, cycling): each ``dp-runner run --config`` exits 78 naming every
field. Four processes cover all eighteen values, where twenty random picks of
one value a file covered fewer in five times the processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.activities import ActivityContext, plan
from runner.attempt import AttemptPaths
from runner.aws.pollanswer import shape_problem
from runner.aws.s3 import S3
from runner.config import load_settings
from runner.errors import ActivityError, ConfigError, SpawnError
from runner.localservice import LocalService
from runner.task.verdict import final_status
from runner.taskmodel import Task, TaskStatus
from tests.support.pipelines import default_object, shell, statuses_sent, submit
from tests.support.runners import REPO, RunnerProcess
from tests.support.waiting import wait_for

PASSWORD = "fuzz-planted-secret-31f7"  # noqa: S105 - a planted test secret
ATTEMPT = "@Act_2024-01-01T00:00:00_Attempt=1"
KEYS = (
    "type", "command", "scriptUri", "scriptArgument", "stage", "input", "output",
    "stdout", "stderr", "attemptTimeout", "reportProgressTimeout", "parent",
    "@componentParent", "@instanceParent", "pipelineLogUri", "precondition",
    "directoryPath", "filePath", "workerGroup", "s3EncryptionType", "*password",
)  # fmt: skip
TYPES = ("ShellCommandActivity", "ShellCommandPrecondition", "Exists", "S3DataNode")
#: Every errorId a malformed task may be failed with (verdict and activities).
KNOWN_ERROR_IDS = {
    "MalformedTask", "MalformedTaskObject", "MissingAttemptObject", "MissingField",
    "InvalidField", "UnsupportedActivity", "UnsupportedStaging", "S3InvalidUri",
    "S3PathTraversal", "SpawnError", "StagingIOError", "UnresolvedReference",
}  # fmt: skip

ids = st.sampled_from([ATTEMPT, "Act", "Default", "In", "Out", "Gone"]) | st.text(
    max_size=20
)
texts = (
    st.text(max_size=40)
    | st.sampled_from(TYPES)
    | st.sampled_from(["s3://b/k", "s3://b/", "true", "2 hours", "/abs/path"])
    | st.text(alphabet="\x00\x01\x1b\n\t ", max_size=8)
    | st.just("x" * 20_000)
)
field = st.fixed_dictionaries(
    {"key": st.sampled_from(KEYS) | st.text(max_size=10)},
    optional={"stringValue": texts, "refValue": ids},
)
junk = st.none() | st.integers() | st.text(max_size=5) | st.booleans()
fields = st.lists(field | junk, max_size=8) | junk
pipeline_object = st.fixed_dictionaries(
    {"id": ids, "name": st.text(max_size=10)}, optional={"fields": fields}
) | st.lists(field, max_size=3)
objects = st.dictionaries(ids, pipeline_object | junk, max_size=5) | st.lists(
    pipeline_object, max_size=3
)
tasks = st.fixed_dictionaries(
    {
        "taskId": st.just("t" * 40),
        "pipelineId": st.just("df-1") | st.text(max_size=10),
        "attemptId": st.just(ATTEMPT) | ids,
    },
    optional={"objects": objects},
)


def with_secret(task: dict[str, Any]) -> dict[str, Any]:
    """``task`` with a ``*password`` field in its attempt object, when it has one
    that can carry it."""
    objects = task.get("objects")
    head = objects.get(task["attemptId"]) if isinstance(objects, dict) else None
    if isinstance(head, dict) and isinstance(head.get("fields"), list):
        head["fields"].append({"key": "*password", "stringValue": PASSWORD})
    return task


def plan_error(raw: dict[str, Any], workdir: Path) -> ActivityError | SpawnError | None:
    """The error the runner fails ``raw`` with before it runs anything, or None."""
    problem = shape_problem(raw)
    if problem is not None:
        return ActivityError("MalformedTask", f"the task is malformed: {problem}")
    try:
        task = Task.from_wire(raw)
        paths = AttemptPaths(workdir)
        paths.workdir.mkdir(parents=True, exist_ok=True)
        s3 = S3(region=None, log=structlog.get_logger())  # planning never calls it
        plan(task, ActivityContext(paths=paths, s3=s3))
    except (ActivityError, SpawnError) as exc:
        return exc
    except KeyError as exc:  # what execution.py turns into MalformedTask
        return ActivityError("MalformedTask", f"the task is malformed: {exc!r}")
    return None


def runner_way(raw: dict[str, Any], workdir: Path) -> str:
    """What the runner makes of ``raw``: "planned", or the errorId it fails with."""
    error = plan_error(raw, workdir)
    if error is None:
        return "planned"
    status = final_status(None, None, error=error, secrets=[PASSWORD])
    assert status is not None
    assert status.status is TaskStatus.FAILED
    assert PASSWORD not in json.dumps(status.to_api())
    assert status.error_id in KNOWN_ERROR_IDS, status
    return str(status.error_id)


@given(task=tasks)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_any_task_object_is_planned_or_failed_precisely(task: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        runner_way(with_secret(task), Path(tmp))


SETTING_VALUES = {
    "max_tasks": st.integers(-5, 100)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    "heartbeat_interval": st.floats(allow_nan=False, allow_infinity=False),
    "lease_timeout": st.floats(-10, 400, allow_nan=False),
    "kill_grace": st.floats(-1, 700, allow_nan=False) | st.booleans(),
    "drain_timeout": st.integers(-10, 100_000),
    "keep_attempts": st.floats(-1, 4000, allow_nan=False),
    "log_level": st.sampled_from(["debug", "info", "loud", "", "DEBUG"]),
    "log_format": st.sampled_from(["json", "console", "xml"]),
    "region": st.text(max_size=12),
    "endpoint_url": st.text(max_size=20) | st.just("http://127.0.0.1:9"),
    "worker_groups": st.lists(st.text(max_size=8), max_size=3),
    "log_uri": st.text(max_size=15) | st.just("s3://b/logs"),
}
configs = st.fixed_dictionaries({}, optional=dict(SETTING_VALUES)) | st.dictionaries(
    st.text(max_size=8), st.integers(), max_size=2
)
env_values = st.dictionaries(
    st.sampled_from([f"DP_RUNNER_{k.upper()}" for k in SETTING_VALUES]),
    st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=12),
    max_size=3,
)


def toml(config: dict[str, Any]) -> str:
    """A TOML file for ``config``: JSON's scalars and arrays read the same in TOML
    (strings escaped as JSON escapes them), floats written out in full."""
    lines = []
    for key, value in config.items():
        if isinstance(value, float) and value in (float("inf"), float("-inf")):
            shown = "inf" if value > 0 else "-inf"
        else:
            shown = json.dumps(value)
        lines.append(f"{json.dumps(key)} = {shown}")
    return "\n".join(lines) + "\n"


@given(config=configs, env=env_values)
def test_any_configuration_loads_or_names_what_is_wrong(
    config: dict[str, Any], env: dict[str, str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.toml"
        path.write_text(toml(config), encoding="utf-8")
        error: ConfigError | None = None
        try:
            load_settings(config_file=path, overrides={}, env=env)
        except ConfigError as exc:
            error = exc
    if error is not None:
        named = [*config, *(k.removeprefix("DP_RUNNER_").lower() for k in env)]
        assert any(name in str(error) for name in named) or str(path) in str(error)


# ---------------------------------------------------------------- through the CLI

Spawn = Callable[..., RunnerProcess]


@given(batch=st.lists(tasks, min_size=20, max_size=20))
@settings(max_examples=1, suppress_health_check=list(HealthCheck))
def test_twenty_task_objects_through_a_running_runner(
    service: LocalService, dp: Any, spawn_runner: Spawn, batch: list[dict[str, Any]]
) -> None:
    """Each of 20 tasks the service hands out is replaced by a fuzzed one: each
    ends FAILED with a precise errorId (or, planned, however its command ends),
    nothing crashes or logs a traceback, and the secret is never shown."""
    replacements: Iterator[dict[str, Any]] = iter(batch)

    def fuzzed(answer: dict[str, Any]) -> dict[str, Any]:
        task = answer.get("taskObject")
        if task:
            made = with_secret(dict(next(replacements, {})))
            answer["taskObject"] = {**made, "taskId": task["taskId"]}
        return answer

    service.faults.add("PollForTask", rewrite=fuzzed, times=None)
    for n in range(20):
        submit(dp, [default_object(), shell(f"Act{n}", "true", maximumRetries="0")])
    runner = spawn_runner("--max-tasks", "4")
    wait_for(lambda: len(runner.events("task_finished")) >= 20, 60, "20 tasks")
    for event in runner.events("task_finished"):
        assert event["outcome"] in {"failed", "finished", "false", "dropped"}, event
    for status in statuses_sent(service):
        if status["taskStatus"] == "FAILED":
            assert status["errorId"] in KNOWN_ERROR_IDS | {"ExitCode:127"}, status
    log = runner.log_path.read_text(errors="replace")
    assert "Traceback" not in log
    assert not [e for e in runner.events() if "exception" in e]
    assert PASSWORD not in log
    assert PASSWORD not in json.dumps(statuses_sent(service))


#: Every invalid value the CLI test writes, by setting.
BAD_SETTINGS: dict[str, list[Any]] = {
    "max_tasks": [0, -1, 65, 1000],
    "heartbeat_interval": [0, -1.5, 300, 1e9],
    "kill_grace": [-1, 601, 1e6],
    "drain_timeout": [-5, 86401],
    "keep_attempts": [-1, 3651],
    "log_level": ["loud", "", "trace"],
}
#: One file per value index: file ``n`` holds every setting's ``n``-th bad value
#: (cycling), so that the files hold every bad value of every setting.
BAD_FILES = [
    {key: values[n % len(values)] for key, values in BAD_SETTINGS.items()}
    for n in range(max(len(values) for values in BAD_SETTINGS.values()))
]


def test_invalid_config_files_exit_78_naming_every_field(tmp_path: Path) -> None:
    held = {(k, json.dumps(v)) for bad in BAD_FILES for k, v in bad.items()}
    assert held == {
        (k, json.dumps(v)) for k, values in BAD_SETTINGS.items() for v in values
    }
    started = []  # all at once: the test waits for one start-up, not four
    for n, bad in enumerate(BAD_FILES):
        path = tmp_path / f"config{n}.toml"
        path.write_text(toml({**bad, "worker_groups": ["wg"]}))
        process = subprocess.Popen(
            [sys.executable, "-m", "runner", "run", "--config", str(path),
             "--work-dir", str(tmp_path / f"work{n}")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            cwd=REPO,
        )  # fmt: skip
        started.append(process)
    for process in started:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 78, stderr
        for key in BAD_SETTINGS:
            assert f"{key}=" in stderr, (key, stderr)
        assert "Traceback" not in stderr
