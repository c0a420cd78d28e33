"""Shared fixtures: the local service over real HTTP, and the runner as a process.

* ``clean_env`` (autouse): no AWS or DP_RUNNER_* setting of the machine leaks into a
  test, and boto3 signs with dummy keys (httpx ``clean_environ``).
* ``service``: a ``LocalService`` on 127.0.0.1 with an OS-chosen port and its clock
  scaled down, so that the 2-minute ack window is 1.2 s.
* ``dp``: a boto3 client for it, with botocore's retries off.
* ``spawn_runner``: ``python -m runner run`` as a real process against it, with short
  intervals; terminated and reaped at teardown (dramatiq ``start_cli``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from hypothesis import settings as hypothesis_settings

from runner.localservice import LocalService
from runner.pipelinefile import definition_from_json

pytest_plugins = ["tests.imds", "tests.s3server", "tests.users", "tests.dbservers"]

#: Fuzzing (tests/test_fuzz.py) the same way on every run and machine: no example
#: database, no deadline on a noisy host, 200 examples a target.
hypothesis_settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, max_examples=200
)
hypothesis_settings.load_profile("ci")

REGION = "us-east-1"
TIME_SCALE = 0.01
REPO = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "scripts"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith(
            ("AWS_", "DP_RUNNER_", "NOTIFY_SOCKET", "WATCHDOG_", "STATE_DIRECTORY")
        ):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-creds"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LocalService]:
    svc = LocalService(
        host="127.0.0.1",
        port=0,
        state_path=tmp_path / "service.db",
        time_scale=TIME_SCALE,
        poll_hold_s=0.5,
        runs_on_worker_group="local",
    )
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture
def dp(service: LocalService) -> Any:
    return boto3.client(
        "datapipeline",
        region_name=REGION,
        endpoint_url=service.endpoint_url,
        config=Config(retries={"total_max_attempts": 1}),
    )


def submit(dp: Any, objects: list[dict[str, Any]], *, activate: bool = True) -> str:
    """Create a pipeline from definition-file objects, put it and activate it."""
    defn = definition_from_json({"objects": objects})
    pipeline_id = str(
        dp.create_pipeline(name="test", uniqueId=os.urandom(8).hex())["pipelineId"]
    )
    answer = dp.put_pipeline_definition(
        pipelineId=pipeline_id, pipelineObjects=defn.pipeline_objects
    )
    assert not answer["errored"], answer
    if activate:
        dp.activate_pipeline(pipelineId=pipeline_id)
    return pipeline_id


def default_object(worker_group: str = "wg", **fields: Any) -> dict[str, Any]:
    return {
        "id": "Default",
        "name": "Default",
        "scheduleType": "ondemand",
        "failureAndRerunMode": "CASCADE",
        "workerGroup": worker_group,
        **fields,
    }


def shell(obj_id: str, command: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": obj_id,
        "name": obj_id,
        "type": "ShellCommandActivity",
        "command": command,
        **fields,
    }


def fields_of(obj: dict[str, Any]) -> dict[str, str]:
    return {
        f["key"]: f.get("stringValue", f.get("refValue", "")) for f in obj["fields"]
    }


def instances(dp: Any, pipeline_id: str) -> dict[str, dict[str, str]]:
    """Every instance of a pipeline: id -> its fields."""
    ids = dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE")["ids"]
    if not ids:
        return {}
    objs = dp.describe_objects(pipelineId=pipeline_id, objectIds=ids)["pipelineObjects"]
    return {obj["id"]: fields_of(obj) for obj in objs}


def wait_for(
    predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def wait_instances(
    dp: Any, pipeline_id: str, statuses: set[str], timeout: float = 20.0
) -> dict[str, dict[str, str]]:
    """Wait until every instance has one of ``statuses``."""

    def ended() -> dict[str, dict[str, str]] | None:
        found = instances(dp, pipeline_id)
        if found and all(f.get("@status") in statuses for f in found.values()):
            return found
        return None

    return wait_for(ended, timeout, f"instances of {pipeline_id} in {statuses}")


@dataclass
class RunnerProcess:
    """A ``dp-runner run`` process and its JSON log."""

    process: subprocess.Popen[bytes]
    log_path: Path
    work_dir: Path
    _seen: list[dict[str, Any]] = field(default_factory=list)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        parsed = []
        for line in lines:
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return [e for e in parsed if name is None or e.get("event") == name]

    def wait_event(
        self, name: str, timeout: float = 15.0, **match: Any
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for event in self.events(name):
                if all(event.get(k) == v for k, v in match.items()):
                    return event
            if self.process.poll() is not None:
                pytest.fail(
                    f"runner exited ({self.process.returncode}) before "
                    f"{name}:\n{self.log_path.read_text()[-3000:]}"
                )
            return None

        return wait_for(found, timeout, f"event {name} {match}")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def wait_exit(self, timeout: float = 20.0) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"runner did not exit:\n{self.log_path.read_text()[-3000:]}")


def runner_command(endpoint_url: str, work_dir: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "runner",
        "run",
        "--endpoint-url",
        endpoint_url,
        "--region",
        REGION,
        "--work-dir",
        str(work_dir),
        "--heartbeat-interval",
        "0.1",
        "--runner-heartbeat-interval",
        "0.5",
        "--lease-timeout",
        "2",
        "--kill-grace",
        "0.5",
        "--drain-timeout",
        "5",
        "--log-format",
        "json",
        *args,
    ]


@pytest.fixture
def spawn_runner(
    service: LocalService, tmp_path: Path
) -> Iterator[Callable[..., RunnerProcess]]:
    started: list[RunnerProcess] = []

    def spawn(*args: str, worker_group: str = "wg") -> RunnerProcess:
        work_dir = tmp_path / f"work{len(started)}"
        log_path = tmp_path / f"runner{len(started)}.log"
        command = runner_command(
            service.endpoint_url, work_dir, "--worker-group", worker_group, *args
        )
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
            )
        runner = RunnerProcess(process, log_path, work_dir)
        started.append(runner)
        return runner

    yield spawn
    for runner in started:
        if runner.process.poll() is None:
            runner.process.kill()
        runner.process.wait(10)


def run_local(
    definition: Path,
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    prefix: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """``dp-runner run --local DEFINITION`` as a newcomer runs it, with the work
    dir under ``tmp_path`` and JSON logs; the finished process. ``prefix``: the
    argv the runner's command is run through (say, ``unshare``)."""
    return subprocess.run(
        [
            *prefix,
            sys.executable,
            "-m",
            "runner",
            "run",
            "--local",
            str(definition),
            "--work-dir",
            str(tmp_path / "work"),
            "--log-format",
            "json",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
        env=env,
    )
