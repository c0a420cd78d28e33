"""Every stop is honoured in every kind of step, with S3 that never answers.

The runner is a real process against the local service; its S3 endpoint starts
every answer and never finishes it (``tests/support/silents3.py``: no read timeout
fires, no S3 retry gives up), so each step below hangs where a real fleet hangs
until a stop ends it. For each kind of step, three pipelines run at once on one
runner, each on its own worker group, and each is stopped its own way while it
hangs:

* ``attemptTimeout`` -> FAILED ``AttemptTimeout``;
* ``TRY_CANCEL`` (the heartbeat answers ``canceled``) -> no SetTaskStatus;
* SIGTERM then SIGINT (the fast stop) -> FAILED ``RunnerShutdown``, exit 0.

Each within ``kill_grace`` + 2 s of its stop (``kill_grace`` is 0.5 s here), measured
on the runner's own clock from the moment it saw the stop (its ``task_stopping`` line,
or ``worker_stopping_fast`` for the second signal): that is the bound the runner
states. The test's own waits are hang guards only, and no product timer races the
test's steps: the drain never runs out on its own (``--drain-timeout`` is longer than
any run), so the SIGINT always finds the runner draining.

The wind-down steps (delivering stdout, uploading the logs) come after the verdict is
committed: there each stop abandons the step and the task is FINISHED all the same.
"""

from __future__ import annotations

import datetime as dt
import signal
from collections.abc import Callable
from typing import Any

import pytest

from runner.localservice import LocalService
from runner.shutdown import FAST_STATUS_BUDGET_S
from tests.support.pipelines import (
    default_object,
    instance_of,
    statuses_sent,
    submit,
)
from tests.support.runners import RunnerProcess
from tests.support.silents3 import BUCKET, SilentS3
from tests.support.waiting import HANG_GUARD_S, wait_for

Spawn = Callable[..., RunnerProcess]
KILL_GRACE_S = 0.5  # conftest's --kill-grace
BOUND_S = KILL_GRACE_S + 2.0
TIMEOUT_S = 2.0
GROUPS = ("wg-timeout", "wg-cancel", "wg-fast")
#: The steps after the verdict: a stop there never changes it.
WIND_DOWN = frozenset({"deliver_output", "upload_logs"})


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


# Each pipeline's S3 paths are under its own prefix (``where``): the silent endpoint
# keeps the request lines, so the test knows which step waits on S3.
def fetch_script(where: str, extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [activity(scriptUri=f"{where}/run.sh", **extra)]


def stage_in(where: str, extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        activity(command="true", stage="true", input={"ref": "In"}, **extra),
        s3_node("In", directoryPath=f"{where}/in"),
    ]


def exists_check(where: str, extra: dict[str, Any]) -> list[dict[str, Any]]:
    ready = {"id": "Ready", "name": "Ready", "type": "Exists", "maximumRetries": "0"}
    return [
        activity(command="true", input={"ref": "Node"}),
        s3_node("Node", filePath=f"{where}/ready", precondition={"ref": "Ready"}),
        {**ready, **extra},
    ]


def stage_out(where: str, extra: dict[str, Any]) -> list[dict[str, Any]]:
    write = 'echo done > "$OUTPUT1_STAGING_DIR/out.txt"'
    return [
        activity(command=write, stage="true", output={"ref": "Out"}, **extra),
        s3_node("Out", directoryPath=f"{where}/out"),
    ]


def deliver_output(where: str, extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [activity(command="echo hi", stdout=f"{where}/stdout.txt", **extra)]


def log_upload(where: str, extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [activity(command="echo hi", **extra)]


Objects = Callable[[str, dict[str, Any]], list[dict[str, Any]]]
STEPS: dict[str, tuple[Objects, str]] = {
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


def stopping(runner: RunnerProcess, pipeline_id: str) -> dict[str, Any]:
    """The runner's ``task_stopping`` line for the pipeline's task: when it saw
    the stop."""
    lines = [
        e for e in runner.events("task_stopping") if e.get("pipeline_id") == pipeline_id
    ]
    assert lines, f"no task_stopping for {pipeline_id}"
    return lines[0]


def where(group: str) -> str:
    """The pipeline's own S3 prefix."""
    return f"{BUCKET}/{group}"


def three_hanging(runner: RunnerProcess, silent_s3: SilentS3, timeout_id: str) -> bool:
    """Each pipeline's step waits on S3 (its request reached the silent endpoint);
    or the attempt timeout (a product timer this wait does not control) ended its
    task before its step reached S3, and the two others wait."""
    waiting = [g for g in GROUPS if silent_s3.asked_for(f"{g}/")]
    if len(waiting) == len(GROUPS):
        return True
    others = set(GROUPS) - {"wg-timeout"}
    return finished(runner, timeout_id) is not None and others <= set(waiting)


def stop(runner: RunnerProcess, *, committed: bool) -> None:
    """SIGTERM, then (while a step still hangs) SIGINT: the runner exits 0 within
    the stated bound of the stop that ended the step. A wind-down step is cut short
    by the drain itself, so there the SIGTERM is the stop, and no SIGINT is sent to
    a runner that may be exiting already."""
    runner.signal(signal.SIGTERM)
    draining = at(runner.wait_event("worker_draining"))
    if committed:
        assert runner.wait_exit(HANG_GUARD_S) == 0
        exited = at(runner.events("runner_stopped")[0])
        assert exited - draining < BOUND_S
        return
    runner.signal(signal.SIGINT)  # the drain never runs out: the runner waits
    assert runner.wait_exit(HANG_GUARD_S) == 0
    hurried = at(runner.events("worker_stopping_fast")[0])
    exited = at(runner.events("runner_stopped")[0])
    assert exited - hurried < FAST_STATUS_BUDGET_S  # the stated bound


@pytest.mark.leases_hold  # the hanging tasks' leases must not lapse under load
@pytest.mark.parametrize("kind", list(STEPS))
def test_every_stop_is_honoured_while_a_step_hangs(
    kind: str, service: LocalService, dp: Any, spawn_runner: Spawn, silent_s3: SilentS3
) -> None:
    objects, target = STEPS[kind]
    timeout = {"attemptTimeout": f"{int(TIMEOUT_S)} seconds"}

    def log_uri(group: str) -> dict[str, str]:
        logs = kind == "upload_logs"
        return {"pipelineLogUri": f"{where(group)}/logs"} if logs else {}

    pipelines = {
        group: submit(
            dp,
            [
                default_object(group, **log_uri(group)),
                *objects(where(group), timeout if group == "wg-timeout" else {}),
            ],
        )
        for group in GROUPS
    }
    runner = spawn_runner(
        "--worker-group", GROUPS[1], "--worker-group", GROUPS[2], "--max-tasks", "3",
        "--drain-timeout", "3600",  # the SIGINT, not the clock, ends the drain
        worker_group=GROUPS[0],
    )  # fmt: skip
    timeout_id = pipelines["wg-timeout"]
    hanging = lambda: three_hanging(runner, silent_s3, timeout_id)  # noqa: E731
    wait_for(hanging, HANG_GUARD_S, "three steps hanging on S3")

    cancel_id = pipelines["wg-cancel"]
    dp.set_status(
        pipelineId=cancel_id,
        objectIds=[instance_of(dp, cancel_id, target)],
        status="TRY_CANCEL",
    )
    canceled = wait_for(lambda: finished(runner, cancel_id), HANG_GUARD_S, "cancel")
    committed = kind in WIND_DOWN
    assert canceled["outcome"] == ("finished" if committed else "canceled")
    assert at(canceled) - at(stopping(runner, cancel_id)) < BOUND_S

    timed_out = wait_for(lambda: finished(runner, timeout_id), HANG_GUARD_S, "timeout")
    expected = ("finished", None) if committed else ("failed", "AttemptTimeout")
    assert (timed_out["outcome"], timed_out["error_id"]) == expected
    assert timed_out["duration_s"] >= TIMEOUT_S
    assert at(timed_out) - at(stopping(runner, timeout_id)) < BOUND_S

    fast_id = pipelines["wg-fast"]
    assert finished(runner, fast_id) is None  # still hanging
    stop(runner, committed=committed)
    stopped = finished(runner, fast_id)
    assert stopped is not None
    sent = sorted(str(s.get("errorId")) for s in statuses_sent(service))
    if committed:  # each stop abandoned the step; the verdict stood
        assert (stopped["outcome"], stopped["error_id"]) == ("finished", None)
        assert [s["taskStatus"] for s in statuses_sent(service)] == ["FINISHED"] * 3
        return
    assert (stopped["outcome"], stopped["error_id"]) == ("failed", "RunnerShutdown")
    assert sent == ["AttemptTimeout", "RunnerShutdown"]  # nothing for the cancel
