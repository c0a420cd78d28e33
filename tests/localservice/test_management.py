"""Management operations, scheduling and expressions, through boto3."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore.exceptions import ClientError

from runner.localservice import LocalService
from tests.support.localservice import (
    DEFAULT,
    fields_of,
    instance_status,
    make_client,
    run_pipeline,
    shell,
    wait_for,
)


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_create_pipeline_is_idempotent_on_unique_id_and_name(dp: Any) -> None:
    first = dp.create_pipeline(name="a", uniqueId="u1")["pipelineId"]
    assert dp.create_pipeline(name="a", uniqueId="u1")["pipelineId"] == first
    assert dp.create_pipeline(name="b", uniqueId="u2")["pipelineId"] != first
    assert first.startswith("df-")
    assert len(first) == 24
    assert first[3:].isalnum()
    assert first[3:].upper() == first[3:]


def test_put_reports_validation_errors_and_activation_is_refused(dp: Any) -> None:
    pipeline_id = dp.create_pipeline(name="v", uniqueId="v")["pipelineId"]
    answer = dp.put_pipeline_definition(
        pipelineId=pipeline_id,
        pipelineObjects=[
            DEFAULT,
            {"id": "NoType", "name": "NoType", "fields": []},
            {
                "id": "NoCmd",
                "name": "NoCmd",
                "fields": [
                    {"key": "type", "stringValue": "ShellCommandActivity"},
                    {"key": "workerGroup", "stringValue": "wg"},
                ],
            },
            shell("Dangling", ref_dependsOn="Ghost"),
            shell("BadExpr", "echo #{nosuchfunction(@scheduledStartTime)}"),
            shell(
                "NoGroup",
                group="",
            ),
        ],
    )
    assert answer["errored"] is True
    errors = {e["id"]: " ".join(e["errors"]) for e in answer["validationErrors"]}
    assert "type" in errors["NoType"]
    assert "command" in errors["NoCmd"]
    assert "Ghost" in errors["Dangling"]
    assert "unsupported expression" in errors["BadExpr"]
    with pytest.raises(ClientError) as exc:
        dp.activate_pipeline(pipelineId=pipeline_id)
    assert code(exc) == "InvalidRequestException"
    validated = dp.validate_pipeline_definition(
        pipelineId=pipeline_id, pipelineObjects=[DEFAULT, shell("A")]
    )
    assert validated["errored"] is False


def test_get_pipeline_definition_latest_and_active(dp: Any) -> None:
    pipeline_id = run_pipeline(dp, [shell("A")])
    dp.put_pipeline_definition(
        pipelineId=pipeline_id, pipelineObjects=[DEFAULT, shell("A"), shell("B")]
    )
    latest = dp.get_pipeline_definition(pipelineId=pipeline_id)
    active = dp.get_pipeline_definition(pipelineId=pipeline_id, version="active")
    assert {o["id"] for o in latest["pipelineObjects"]} == {"Default", "A", "B"}
    assert {o["id"] for o in active["pipelineObjects"]} == {"Default", "A"}


def test_list_pipelines_paginates_and_hides_deleted(dp: Any) -> None:
    ids = [
        dp.create_pipeline(name="p", uniqueId=f"u{i}")["pipelineId"] for i in range(102)
    ]
    dp.delete_pipeline(pipelineId=ids[0])
    first = dp.list_pipelines()
    assert first["hasMoreResults"] is True
    second = dp.list_pipelines(marker=first["marker"])
    listed = [p["id"] for p in first["pipelineIdList"] + second["pipelineIdList"]]
    assert listed == ids[1:]
    with pytest.raises(ClientError) as exc:
        dp.describe_pipelines(pipelineIds=[ids[0]])
    assert code(exc) == "PipelineDeletedException"
    with pytest.raises(ClientError) as exc:
        dp.describe_pipelines(pipelineIds=["df-NOSUCHPIPELINE000000"])
    assert code(exc) == "PipelineNotFoundException"


def test_describe_pipelines_fields_and_tags(dp: Any) -> None:
    pipeline_id = dp.create_pipeline(
        name="t", uniqueId="t", description="d", tags=[{"key": "a", "value": "1"}]
    )["pipelineId"]
    dp.add_tags(pipelineId=pipeline_id, tags=[{"key": "b", "value": "2"}])
    dp.remove_tags(pipelineId=pipeline_id, tagKeys=["a"])
    described = dp.describe_pipelines(pipelineIds=[pipeline_id])[
        "pipelineDescriptionList"
    ][0]
    fields = fields_of(described)
    assert fields["@pipelineState"] == ["PENDING"]
    assert fields["@sphere"] == ["PIPELINE"]
    assert fields["uniqueId"] == ["t"]
    assert described["tags"] == [{"key": "b", "value": "2"}]
    with pytest.raises(ClientError) as exc:
        dp.add_tags(
            pipelineId=pipeline_id,
            tags=[{"key": f"k{i}", "value": "v"} for i in range(10)],
        )
    assert code(exc) == "InvalidRequestException"


def test_query_and_describe_objects(dp: Any) -> None:
    pipeline_id = run_pipeline(dp, [shell("A"), shell("B", ref_dependsOn="A")])
    components = dp.query_objects(pipelineId=pipeline_id, sphere="COMPONENT")["ids"]
    assert set(components) == {"Default", "A", "B"}
    instances = dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE")["ids"]
    assert len(instances) == 2
    waiting = dp.query_objects(
        pipelineId=pipeline_id,
        sphere="INSTANCE",
        query={
            "selectors": [
                {
                    "fieldName": "@status",
                    "operator": {"type": "EQ", "values": ["WAITING_ON_DEPENDENCIES"]},
                }
            ]
        },
    )["ids"]
    assert waiting == [i for i in instances if i.startswith("@B_")]
    page = dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE", limit=1)
    assert page["hasMoreResults"] is True
    rest = dp.query_objects(
        pipelineId=pipeline_id, sphere="INSTANCE", marker=page["marker"], limit=1
    )
    assert page["ids"] + rest["ids"] == instances
    today = dt.datetime.now(tz=dt.UTC).strftime("%Y-%m-%dT00:00:00")
    between = dp.query_objects(
        pipelineId=pipeline_id,
        sphere="INSTANCE",
        query={
            "selectors": [
                {
                    "fieldName": "@scheduledStartTime",
                    "operator": {
                        "type": "BETWEEN",
                        "values": [today, "2999-01-01T00:00:00"],
                    },
                },
                {
                    "fieldName": "@componentParent",
                    "operator": {"type": "REF_EQ", "values": ["A"]},
                },
            ]
        },
    )["ids"]
    assert between == [i for i in instances if i.startswith("@A_")]
    objects = dp.describe_objects(pipelineId=pipeline_id, objectIds=["A", instances[0]])
    assert [o["id"] for o in objects["pipelineObjects"]] == ["A", instances[0]]
    assert fields_of(objects["pipelineObjects"][1])["@sphere"] == ["INSTANCE"]


def test_parameters_and_evaluate_expression(dp: Any) -> None:
    pipeline_id = dp.create_pipeline(name="e", uniqueId="e")["pipelineId"]
    dp.put_pipeline_definition(
        pipelineId=pipeline_id,
        pipelineObjects=[DEFAULT, shell("A", "echo #{myN}", myField="x-#{myN}")],
        parameterObjects=[
            {
                "id": "myN",
                "attributes": [
                    {"key": "type", "stringValue": "Integer"},
                    {"key": "default", "stringValue": "1"},
                ],
            }
        ],
    )
    dp.activate_pipeline(
        pipelineId=pipeline_id, parameterValues=[{"id": "myN", "stringValue": "7"}]
    )
    task = wait_for(lambda: dp.poll_for_task(workerGroup="wg").get("taskObject"))
    assert fields_of(task["objects"][task["attemptId"]])["command"] == ["echo 7"]
    instance = task["attemptId"].rsplit("_Attempt", 1)[0]
    value = dp.evaluate_expression(
        pipelineId=pipeline_id,
        objectId=instance,
        expression="#{myField} #{format(@scheduledStartTime, 'YYYY')}",
    )["evaluatedExpression"]
    assert value == f"x-7 {instance.split('_')[1][:4]}"
    with pytest.raises(ClientError) as exc:
        dp.evaluate_expression(
            pipelineId=pipeline_id, objectId="A", expression="#{nope}"
        )
    assert code(exc) == "InvalidRequestException"


def test_pause_and_resume_component(dp: Any) -> None:
    pipeline_id = dp.create_pipeline(name="p", uniqueId="p")["pipelineId"]
    dp.put_pipeline_definition(
        pipelineId=pipeline_id, pipelineObjects=[DEFAULT, shell("A")]
    )
    dp.activate_pipeline(pipelineId=pipeline_id)
    dp.set_status(pipelineId=pipeline_id, objectIds=["A"], status="pause")
    assert "taskObject" not in dp.poll_for_task(workerGroup="wg")
    dp.set_status(pipelineId=pipeline_id, objectIds=["A"], status="RESUME")
    assert "taskObject" in dp.poll_for_task(workerGroup="wg")
    with pytest.raises(ClientError) as exc:
        dp.set_status(pipelineId=pipeline_id, objectIds=["A"], status="RERUN")
    assert code(exc) == "InvalidRequestException"


def test_rerun_and_mark_finished(dp: Any) -> None:
    pipeline_id = run_pipeline(
        dp, [shell("A", maximumRetries="0"), shell("B", ref_dependsOn="A")]
    )
    task = wait_for(lambda: dp.poll_for_task(workerGroup="wg").get("taskObject"))
    dp.set_task_status(taskId=task["taskId"], taskStatus="FAILED")
    a_instance = task["attemptId"].rsplit("_Attempt", 1)[0]
    b_instance = a_instance.replace("@A_", "@B_")
    assert instance_status(dp, pipeline_id, b_instance) == "CASCADE_FAILED"
    dp.set_status(pipelineId=pipeline_id, objectIds=[a_instance], status="rerun")
    again = wait_for(lambda: dp.poll_for_task(workerGroup="wg").get("taskObject"))
    assert again["attemptId"] == f"{a_instance}_Attempt=2"
    assert instance_status(dp, pipeline_id, b_instance) == "WAITING_ON_DEPENDENCIES"
    dp.set_status(
        pipelineId=pipeline_id, objectIds=[a_instance], status="MARK_FINISHED"
    )
    last = wait_for(lambda: dp.poll_for_task(workerGroup="wg").get("taskObject"))
    assert last["attemptId"].startswith("@B_")


def test_deactivate_cancels_queued_instances(dp: Any) -> None:
    pipeline_id = run_pipeline(dp, [shell("A")])
    dp.deactivate_pipeline(pipelineId=pipeline_id)
    assert "taskObject" not in dp.poll_for_task(workerGroup="wg")
    described = dp.describe_pipelines(pipelineIds=[pipeline_id])[
        "pipelineDescriptionList"
    ]
    assert fields_of(described[0])["@pipelineState"] == ["INACTIVE"]


def test_runs_on_routes_to_local_group_and_resources_do_not_block(dp: Any) -> None:
    run_pipeline(
        dp,
        [
            {
                "id": "A",
                "name": "A",
                "fields": [
                    {"key": "type", "stringValue": "ShellCommandActivity"},
                    {"key": "command", "stringValue": "true"},
                    {"key": "runsOn", "refValue": "Ec2"},
                    {"key": "output", "refValue": "Out"},
                ],
            },
            {
                "id": "Ec2",
                "name": "Ec2",
                "fields": [
                    {"key": "type", "stringValue": "Ec2Resource"},
                    {"key": "role", "stringValue": "DataPipelineDefaultRole"},
                    {
                        "key": "resourceRole",
                        "stringValue": "DataPipelineDefaultResourceRole",
                    },
                ],
            },
            {
                "id": "Out",
                "name": "Out",
                "fields": [
                    {"key": "type", "stringValue": "S3DataNode"},
                    {"key": "directoryPath", "stringValue": "s3://b/o"},
                ],
            },
        ],
    )
    task = wait_for(lambda: dp.poll_for_task(workerGroup="local").get("taskObject"))
    assert {"Ec2", "Out"} <= set(task["objects"])


def test_cron_schedule_backfills_due_slots_only(dp: Any) -> None:
    start = (dt.datetime.now(tz=dt.UTC) - dt.timedelta(hours=2, minutes=30)).strftime(
        "%Y-%m-%dT%H:%M:00"
    )
    pipeline_id = dp.create_pipeline(name="c", uniqueId="c")["pipelineId"]
    answer = dp.put_pipeline_definition(
        pipelineId=pipeline_id,
        pipelineObjects=[
            {
                "id": "Default",
                "name": "Default",
                "fields": [
                    {"key": "scheduleType", "stringValue": "cron"},
                    {"key": "schedule", "refValue": "Hourly"},
                ],
            },
            {
                "id": "Hourly",
                "name": "Hourly",
                "fields": [
                    {"key": "type", "stringValue": "Schedule"},
                    {"key": "period", "stringValue": "1 hour"},
                    {"key": "startDateTime", "stringValue": start},
                ],
            },
            shell("A", maxActiveInstances="5"),
        ],
    )
    assert not answer["errored"], answer
    dp.activate_pipeline(pipelineId=pipeline_id)
    instances = dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE")["ids"]
    # start, +1 h, +2 h; +3 h is 30 min in the future (maxActiveInstances 5
    # leaves room for all three; `test_backfill` checks the bound)
    assert len(instances) == 3
    assert instances[0] == f"@A_{start}"


def test_timeseries_runs_at_end_of_period(service: LocalService) -> None:
    dp = make_client(service.endpoint_url)
    start = (dt.datetime.now(tz=dt.UTC) - dt.timedelta(minutes=90)).strftime(
        "%Y-%m-%dT%H:%M:00"
    )
    pipeline_id = dp.create_pipeline(name="ts", uniqueId="ts")["pipelineId"]
    dp.put_pipeline_definition(
        pipelineId=pipeline_id,
        pipelineObjects=[
            {
                "id": "Default",
                "name": "Default",
                "fields": [{"key": "scheduleType", "stringValue": "timeseries"}],
            },
            {
                "id": "S",
                "name": "S",
                "fields": [
                    {"key": "type", "stringValue": "Schedule"},
                    {"key": "period", "stringValue": "1 hour"},
                    {"key": "startDateTime", "stringValue": start},
                    {"key": "occurrences", "stringValue": "3"},
                ],
            },
            shell("A", ref_schedule="S"),
        ],
    )
    dp.activate_pipeline(pipelineId=pipeline_id)
    instances = dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE")["ids"]
    assert len(instances) == 1  # only the first hour has ended
    # the next slot ends 30 min from now: 1800 s x 0.01 = 18 s of waiting; not here
