"""Instances of data nodes and resources, with the statuses AWS shows in list-runs.

A data node waits on its preconditions and on the activity that writes it, then
is FINISHED; an activity that reads it waits for it. An Ec2Resource is
WAITING_ON_DEPENDENCIES until one of its activities waits for a runner, CREATING
then, RUNNING once a runner took the work, FINISHED when its activities ended,
TIMEDOUT past `terminateAfter`. Time is scaled by 0.01: a minute is 0.6 s.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.localservice import fields_of, run_pipeline, shell, wait_for

RUNS_ON = "local"  # the conftest service's --runs-on-worker-group
Fields = dict[str, list[str]]


def obj(obj_id: str, kind: str, **fields: str) -> dict[str, Any]:
    """An object; fields as key=value (ref_KEY for refs)."""
    listed = [{"key": "type", "stringValue": kind}]
    for key, value in fields.items():
        if key.startswith("ref_"):
            listed.append({"key": key[4:], "refValue": value})
        else:
            listed.append({"key": key, "stringValue": value})
    return {"id": obj_id, "name": obj_id, "fields": listed}


def ec2(obj_id: str = "Ec2", **fields: str) -> dict[str, Any]:
    return obj(
        obj_id,
        "Ec2Resource",
        role="DataPipelineDefaultRole",
        resourceRole="DataPipelineDefaultResourceRole",
        **fields,
    )


def on_ec2(obj_id: str, **fields: str) -> dict[str, Any]:
    """A ShellCommandActivity that runs on the Ec2 resource."""
    return obj(
        obj_id, "ShellCommandActivity", command="true", ref_runsOn="Ec2", **fields
    )


def statuses(dp: Any, pipeline_id: str) -> dict[str, str]:
    """Component id -> its instance's status (one slot: ondemand)."""
    return {c: f["@status"][0] for c, f in instances(dp, pipeline_id).items()}


def instances(dp: Any, pipeline_id: str) -> dict[str, Fields]:
    ids = dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE")["ids"]
    objects = dp.describe_objects(pipelineId=pipeline_id, objectIds=ids)
    found = (fields_of(o) for o in objects["pipelineObjects"])
    return {f["@componentParent"][0]: f for f in found}


def wait_status(dp: Any, pipeline_id: str, component: str, status: str) -> None:
    wait_for(lambda: statuses(dp, pipeline_id).get(component) == status)


def take(dp: Any, group: str, prefix: str) -> dict[str, Any]:
    """Poll until a task comes, and check it is the one expected."""
    task: dict[str, Any] = wait_for(
        lambda: dp.poll_for_task(workerGroup=group).get("taskObject")
    )
    assert task["attemptId"].startswith(f"@{prefix}_"), task["attemptId"]
    return task


# ---- data nodes ---------------------------------------------------------------------


def test_an_input_data_node_waits_on_its_precondition_then_finishes(dp: Any) -> None:
    pipeline_id = run_pipeline(
        dp,
        [
            shell("A", ref_input="In"),
            obj(
                "In", "S3DataNode", directoryPath="s3://b/in/", ref_precondition="Ready"
            ),
            obj("Ready", "ShellCommandPrecondition", command="test -d /in"),
        ],
    )
    assert statuses(dp, pipeline_id) == {
        "A": "WAITING_ON_DEPENDENCIES",
        "In": "WAITING_ON_DEPENDENCIES",
        "Ready": "WAITING_FOR_RUNNER",
    }
    check = take(dp, "wg", "Ready")  # routed where its data node's reader goes
    assert "In" in check["objects"]
    dp.set_task_status(taskId=check["taskId"], taskStatus="FINISHED")
    assert statuses(dp, pipeline_id) == {
        "A": "WAITING_FOR_RUNNER",
        "In": "FINISHED",
        "Ready": "FINISHED",
    }
    take(dp, "wg", "A")


def test_an_output_data_node_waits_for_its_producer_and_gates_its_readers(
    dp: Any,
) -> None:
    """B reads what A writes: B waits for A through the data node, with no
    dependsOn, as on AWS."""
    pipeline_id = run_pipeline(
        dp,
        [
            shell("A", ref_output="Mid"),
            obj("Mid", "S3DataNode", directoryPath="s3://b/mid/"),
            shell("B", ref_input="Mid"),
        ],
    )
    first = take(dp, "wg", "A")
    assert "taskObject" not in dp.poll_for_task(workerGroup="wg")
    assert statuses(dp, pipeline_id)["Mid"] == "WAITING_ON_DEPENDENCIES"
    dp.set_task_status(taskId=first["taskId"], taskStatus="FINISHED")
    assert statuses(dp, pipeline_id)["Mid"] == "FINISHED"
    second = take(dp, "wg", "B")
    dp.set_task_status(taskId=second["taskId"], taskStatus="FINISHED")
    assert set(statuses(dp, pipeline_id).values()) == {"FINISHED"}
    described = dp.describe_pipelines(pipelineIds=[pipeline_id])
    state = fields_of(described["pipelineDescriptionList"][0])["@pipelineState"]
    assert state == ["FINISHED"]


def test_a_failed_producer_cascades_through_its_data_node(dp: Any) -> None:
    pipeline_id = run_pipeline(
        dp,
        [
            shell("A", ref_output="Mid", maximumRetries="0"),
            obj("Mid", "S3DataNode", directoryPath="s3://b/mid/"),
            shell("B", ref_input="Mid"),
        ],
    )
    task = take(dp, "wg", "A")
    dp.set_task_status(taskId=task["taskId"], taskStatus="FAILED", errorId="Boom")
    assert statuses(dp, pipeline_id) == {
        "A": "FAILED",
        "Mid": "CASCADE_FAILED",
        "B": "CASCADE_FAILED",
    }


# ---- resources ----------------------------------------------------------------------


def test_a_resource_is_created_runs_and_finishes_around_its_activities(
    dp: Any,
) -> None:
    pipeline_id = run_pipeline(
        dp,
        [
            shell("First"),
            on_ec2("A", ref_dependsOn="First"),
            on_ec2("B", ref_dependsOn="First"),
            ec2(),
        ],
    )
    assert statuses(dp, pipeline_id)["Ec2"] == "WAITING_ON_DEPENDENCIES"
    first = take(dp, "wg", "First")
    dp.set_task_status(taskId=first["taskId"], taskStatus="FINISHED")
    assert statuses(dp, pipeline_id)["Ec2"] == "CREATING"
    a = take(dp, RUNS_ON, "A")
    dp.report_task_progress(taskId=a["taskId"])
    created = instances(dp, pipeline_id)["Ec2"]
    assert created["@status"] == ["RUNNING"]
    assert created["@actualStartTime"]
    dp.set_task_status(taskId=a["taskId"], taskStatus="FINISHED")
    assert statuses(dp, pipeline_id)["Ec2"] == "RUNNING"  # the other still needs it
    b = take(dp, RUNS_ON, "B")
    dp.set_task_status(taskId=b["taskId"], taskStatus="FINISHED")
    ended = instances(dp, pipeline_id)["Ec2"]
    assert ended["@status"] == ["FINISHED"]
    assert ended["@actualEndTime"]
    assert ended["type"] == ["Ec2Resource"]


def test_run_on_wins_over_a_default_worker_group(dp: Any) -> None:
    """DG dp-object-shellcommandactivity: "If you provide a runsOn value and
    workerGroup exists, workerGroup is ignored"."""
    run_pipeline(dp, [shell("A", ref_runsOn="Ec2"), ec2()])
    assert "taskObject" not in dp.poll_for_task(workerGroup="wg")
    take(dp, RUNS_ON, "A")


def test_terminate_after_times_out_the_resource_and_fails_its_attempt(
    dp: Any,
) -> None:
    """terminateAfter bounds real work: it is never scaled, and the message
    gives the time that really passed."""
    pipeline_id = run_pipeline(
        dp, [on_ec2("A", maximumRetries="2"), ec2(terminateAfter="2 seconds")]
    )
    task = take(dp, RUNS_ON, "A")
    started = time.monotonic()
    dp.report_task_progress(taskId=task["taskId"])
    wait_status(dp, pipeline_id, "Ec2", "TIMEDOUT")
    assert time.monotonic() - started >= 1.5  # not 0.02 s, as scaled by 0.01
    found = instances(dp, pipeline_id)
    assert found["Ec2"]["errorId"] == ["ResourceTimedOut"]
    message = found["Ec2"]["errorMessage"][0]
    assert message.startswith("terminateAfter (2 seconds) passed"), message
    assert re.search(r"after [23] s$", message), message
    assert found["A"]["@status"] == ["FAILED"]  # no retry: its resource is gone
    assert found["A"]["errorId"] == ["ResourceTimedOut"]
    with pytest.raises(ClientError) as exc:
        dp.report_task_progress(taskId=task["taskId"])
    assert exc.value.response["Error"]["Code"] == "TaskNotFoundException"


def test_a_resource_never_needed_ends_with_its_activities(dp: Any) -> None:
    pipeline_id = run_pipeline(
        dp,
        [shell("First", maximumRetries="0"), on_ec2("A", ref_dependsOn="First"), ec2()],
    )
    first = take(dp, "wg", "First")
    dp.set_task_status(taskId=first["taskId"], taskStatus="FAILED", errorId="Boom")
    assert statuses(dp, pipeline_id) == {
        "First": "FAILED",
        "A": "CASCADE_FAILED",
        "Ec2": "CASCADE_FAILED",
    }


def test_a_rerun_recreates_the_resource(dp: Any) -> None:
    pipeline_id = run_pipeline(dp, [on_ec2("A", maximumRetries="0"), ec2()])
    task = take(dp, RUNS_ON, "A")
    dp.set_task_status(taskId=task["taskId"], taskStatus="FAILED", errorId="Boom")
    assert statuses(dp, pipeline_id)["Ec2"] == "FINISHED"  # it ran, then was let go
    instance = task["attemptId"].rsplit("_Attempt", 1)[0]
    dp.set_status(pipelineId=pipeline_id, objectIds=[instance], status="RERUN")
    assert statuses(dp, pipeline_id)["Ec2"] == "CREATING"
    again = take(dp, RUNS_ON, "A")
    dp.set_task_status(taskId=again["taskId"], taskStatus="FINISHED")
    assert statuses(dp, pipeline_id) == {"A": "FINISHED", "Ec2": "FINISHED"}
