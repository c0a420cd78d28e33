"""Every stop is honoured in every kind of step, with S3 that never answers.

The runner is a real process against the local service; its S3 endpoint is a socket
that accepts connections and never answers, so each step below hangs where a real
fleet hangs. For each kind of step, three pipelines run at once on one runner, each
on its own worker group, and each is stopped its own way while it hangs:

* ``attemptTimeout`` -> FAILED ``AttemptTimeout``;
* ``TRY_CANCEL`` (the heartbeat answers ``canceled``) -> no SetTaskStatus;
* SIGTERM then SIGINT (the fast stop) -> FAILED ``RunnerShutdown``, exit 0.

Each within ``kill_grace`` + 2 s of its stop (``kill_grace`` is 0.5 s here).
"""

from __future__ import annotations

import datetime as dt
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from runner.localservice import LocalService
from tests.support.pipelines import default_object, instances, statuses_sent, submit
from tests.support.runners import RunnerProcess
from tests.support.silents3 import SilentS3
from tests.support.waiting import wait_for

Spawn = Callable[..., RunnerProcess]
KILL_GRACE_S = 0.5  # conftest's --kill-grace
BOUND_S = KILL_GRACE_S + 2.0
TIMEOUT_S = 2.0
BUCKET = "s3://silent-bucket"
GROUPS = ("wg-timeout", "wg-cancel", "wg-fast")


@pytest.fixture
def silent_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[SilentS3]:
    server = SilentS3()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.endpoint)  # the runner inherits it
    yield server
    server.close()


def activity(**fields: Any) -> dict[str, Any]:
    return {
        "id": "Act",
        "name": "Act",
        "type": "ShellCommandActivity",
        "maximumRetries": "0",
        **fields,
    }


def s3_node(node_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "name": node_id, "type": "S3DataNode", **fields}


def fetch_script(extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [activity(scriptUri=f"{BUCKET}/run.sh", **extra)]


def stage_in(extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        activity(command="true", stage="true", input={"ref": "In"}, **extra),
        s3_node("In", directoryPath=f"{BUCKET}/in"),
    ]


def exists_check(extra: dict[str, Any]) -> list[dict[str, Any]]:
    ready = {"id": "Ready", "name": "Ready", "type": "Exists", "maximumRetries": "0"}
    return [
        activity(command="true", input={"ref": "Node"}),
        s3_node("Node", filePath=f"{BUCKET}/ready", precondition={"ref": "Ready"}),
        {**ready, **extra},
    ]


def stage_out(extra: dict[str, Any]) -> list[dict[str, Any]]:
    write = 'echo done > "$OUTPUT1_STAGING_DIR/out.txt"'
    return [
        activity(command=write, stage="true", output={"ref": "Out"}, **extra),
        s3_node("Out", directoryPath=f"{BUCKET}/out"),
    ]


def deliver_output(extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [activity(command="echo hi", stdout=f"{BUCKET}/stdout.txt", **extra)]


def log_upload(extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [activity(command="echo hi", **extra)]


STEPS: dict[str, tuple[Callable[[dict[str, Any]], list[dict[str, Any]]], str]] = {
    # kind of step: (its objects, the component the stops are aimed at)
    "fetch_script": (fetch_script, "Act"),
    "stage_in": (stage_in, "Act"),
    "exists_check": (exists_check, "Ready"),
    "stage_out": (stage_out, "Act"),
    "deliver_output": (deliver_output, "Act"),
    "upload_logs": (log_upload, "Act"),
}


def finished(runner: RunnerProcess, pipeline_id: str) -> dict[str, Any] | None:
    for event in runner.events("task_finished"):
        if event.get("pipeline_id") == pipeline_id:
            return event
    return None


def at(event: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(event["timestamp"]).timestamp()


def instance_of(dp: Any, pipeline_id: str, component: str) -> str:
    def find() -> str | None:
        for instance_id, fields in instances(dp, pipeline_id).items():
            if fields.get("@componentParent") == component:
                return instance_id
        return None

    found: str = wait_for(find, 10, f"an instance of {component}")
    return found


@pytest.mark.leases_hold  # the hanging tasks' leases must not lapse under load
@pytest.mark.parametrize("kind", list(STEPS))
def test_every_stop_is_honoured_while_a_step_hangs(
    kind: str, service: LocalService, dp: Any, spawn_runner: Spawn, silent_s3: SilentS3
) -> None:
    objects, target = STEPS[kind]
    log_uri = {"pipelineLogUri": f"{BUCKET}/logs"} if kind == "upload_logs" else {}
    timeout = {"attemptTimeout": f"{int(TIMEOUT_S)} seconds"}
    pipelines = {
        group: submit(
            dp,
            [
                default_object(group, **log_uri),
                *objects(timeout if group == "wg-timeout" else {}),
            ],
        )
        for group in GROUPS
    }
    runner = spawn_runner(
        "--worker-group", GROUPS[1], "--worker-group", GROUPS[2], "--max-tasks", "3",
        worker_group=GROUPS[0],
    )  # fmt: skip
    wait_for(lambda: len(silent_s3.held) >= 3, 15, "three steps hanging on S3")

    cancel_id = pipelines["wg-cancel"]
    canceled_at = time.time()
    dp.set_status(
        pipelineId=cancel_id,
        objectIds=[instance_of(dp, cancel_id, target)],
        status="TRY_CANCEL",
    )
    canceled = wait_for(lambda: finished(runner, cancel_id), 10, "the cancel")
    assert canceled["outcome"] == "canceled"
    assert at(canceled) - canceled_at < BOUND_S

    timeout_id = pipelines["wg-timeout"]
    timed_out = wait_for(lambda: finished(runner, timeout_id), 15, "the timeout")
    assert (timed_out["outcome"], timed_out["error_id"]) == ("failed", "AttemptTimeout")
    assert timed_out["duration_s"] < TIMEOUT_S + BOUND_S

    fast_id = pipelines["wg-fast"]
    assert finished(runner, fast_id) is None  # still hanging
    runner.signal(signal.SIGTERM)
    runner.wait_event("worker_draining")
    runner.signal(signal.SIGINT)
    hurried = time.monotonic()
    assert runner.wait_exit(15) == 0
    assert time.monotonic() - hurried < BOUND_S
    stopped = finished(runner, fast_id)
    assert stopped is not None
    assert (stopped["outcome"], stopped["error_id"]) == ("failed", "RunnerShutdown")

    sent = sorted(str(s.get("errorId")) for s in statuses_sent(service))
    assert sent == ["AttemptTimeout", "RunnerShutdown"]  # nothing for the cancel
