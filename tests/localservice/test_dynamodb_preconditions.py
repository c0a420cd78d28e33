"""DynamoDBTableExists and DynamoDBDataExists, checked by the service itself through
boto3 against moto's standalone server (reached through AWS_ENDPOINT_URL_DYNAMODB,
as boto3 would reach any endpoint): a table that exists, one that does not, an
empty one, a full one, and a check that cannot be made, which is never passed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from runner.localservice import LocalService
from tests.support.localservice import (
    TIME_SCALE,
    closed_port,
    fields_of,
    make_client,
    run_pipeline,
    shell,
    wait_for,
)

Fields = dict[str, list[str]]


def guarded(kind: str, table: str, **extra: str) -> list[dict[str, Any]]:
    """Activity A reads the DynamoDBDataNode Table, guarded by precondition Ready
    (DG dp-object-dynamodbdatanode's example)."""
    ready = [
        {"key": "type", "stringValue": kind},
        {"key": "role", "stringValue": "DataPipelineDefaultRole"},
        {"key": "tableName", "stringValue": table},
        *({"key": k, "stringValue": v} for k, v in extra.items()),
    ]
    node = [
        {"key": "type", "stringValue": "DynamoDBDataNode"},
        {"key": "tableName", "stringValue": table},
        {"key": "precondition", "refValue": "Ready"},
    ]
    return [
        shell("A", ref_input="Table"),
        {"id": "Table", "name": "Table", "fields": node},
        {"id": "Ready", "name": "Ready", "fields": ready},
    ]


def instances(dp: Any, pipeline_id: str) -> dict[str, Fields]:
    ids = dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE")["ids"]
    objects = dp.describe_objects(pipelineId=pipeline_id, objectIds=ids)
    found = (fields_of(o) for o in objects["pipelineObjects"])
    return {f["@componentParent"][0]: f for f in found}


def wait_status(dp: Any, pipeline_id: str, component: str, status: str) -> Fields:
    def reached() -> Fields | None:
        fields = instances(dp, pipeline_id).get(component)
        return fields if fields and fields["@status"] == [status] else None

    found: Fields = wait_for(reached)
    return found


def first_check_false(dp: Any, pipeline_id: str) -> None:
    instance = wait_status(dp, pipeline_id, "Ready", "WAITING_FOR_RUNNER")["@id"][0]
    attempt = f"{instance}_Attempt=1"

    def status() -> str:
        objects = dp.describe_objects(pipelineId=pipeline_id, objectIds=[attempt])
        return fields_of(objects["pipelineObjects"][0])["@status"][0]

    wait_for(lambda: status() == "FALSE")


@pytest.fixture
def dynamodb(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """moto's DynamoDB, named to boto3 by the environment alone."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_server)
    return boto3.session.Session().client("dynamodb")


@pytest.fixture
def dp(dynamodb: Any) -> Iterator[Any]:
    """A service started after the environment names moto's DynamoDB."""
    with LocalService(time_scale=TIME_SCALE, poll_hold_s=0.3) as service:
        yield make_client(service.endpoint_url)


def new_table(dynamodb: Any) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def test_a_table_that_exists_is_met_without_a_runner(dp: Any, dynamodb: Any) -> None:
    pipeline_id = run_pipeline(dp, guarded("DynamoDBTableExists", new_table(dynamodb)))
    ready = wait_status(dp, pipeline_id, "Ready", "FINISHED")
    assert ready["@attemptCount"] == ["1"]
    assert instances(dp, pipeline_id)["Table"]["@status"] == ["FINISHED"]
    task = wait_for(lambda: dp.poll_for_task(workerGroup="wg").get("taskObject"))
    assert task["attemptId"].startswith("@A_")


def test_a_table_that_does_not_exist_is_false_until_it_does(
    dp: Any, dynamodb: Any
) -> None:
    table = f"later-{uuid.uuid4().hex[:8]}"
    pipeline_id = run_pipeline(
        dp, guarded("DynamoDBTableExists", table, retryDelay="2 minutes")
    )
    first_check_false(dp, pipeline_id)
    assert instances(dp, pipeline_id)["A"]["@status"] == ["WAITING_ON_DEPENDENCIES"]
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ready = wait_status(dp, pipeline_id, "Ready", "FINISHED")
    assert int(ready["@attemptCount"][0]) >= 2


def test_a_missing_table_times_out_and_cascades(dp: Any) -> None:
    pipeline_id = run_pipeline(
        dp,
        guarded(
            "DynamoDBTableExists",
            "never-made",
            retryDelay="2 minutes",  # 1.2 s scaled
            preconditionTimeout="5 minutes",  # 3 s scaled
        ),
    )
    ready = wait_status(dp, pipeline_id, "Ready", "TIMEDOUT")
    assert ready["errorId"] == ["PreconditionTimeout"]
    found = instances(dp, pipeline_id)
    assert found["Table"]["@status"] == ["CASCADE_FAILED"]
    assert found["A"]["@status"] == ["CASCADE_FAILED"]


def test_an_empty_table_has_no_data_until_an_item_is_put(
    dp: Any, dynamodb: Any
) -> None:
    table = new_table(dynamodb)
    pipeline_id = run_pipeline(
        dp, guarded("DynamoDBDataExists", table, retryDelay="2 minutes")
    )
    first_check_false(dp, pipeline_id)
    dynamodb.put_item(TableName=table, Item={"k": {"S": "first"}})
    ready = wait_status(dp, pipeline_id, "Ready", "FINISHED")
    assert int(ready["@attemptCount"][0]) >= 2
    assert wait_status(dp, pipeline_id, "A", "WAITING_FOR_RUNNER")


def test_a_full_table_has_data(dp: Any, dynamodb: Any) -> None:
    table = new_table(dynamodb)
    for n in range(3):
        dynamodb.put_item(TableName=table, Item={"k": {"S": f"item-{n}"}})
    pipeline_id = run_pipeline(dp, guarded("DynamoDBDataExists", table))
    assert wait_status(dp, pipeline_id, "Ready", "FINISHED")["@attemptCount"] == ["1"]


def test_a_check_that_cannot_be_made_is_retried_and_never_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{closed_port()}")
    with LocalService(time_scale=TIME_SCALE, poll_hold_s=0.3) as service:
        dp = make_client(service.endpoint_url)
        pipeline_id = run_pipeline(
            dp,
            guarded(
                "DynamoDBTableExists",
                "any",
                maximumRetries="1",
                retryDelay="2 minutes",  # 1.2 s scaled
            ),
        )
        ready = wait_status(dp, pipeline_id, "Ready", "FAILED")
        found = instances(dp, pipeline_id)
    assert ready["@attemptCount"] == ["2"]  # the first try, and one retry
    assert ready["errorId"] == ["DynamoDBPreconditionError"]
    assert ready["errorMessage"][0].startswith(
        "DynamoDBTableExists any: DynamoDB could not be reached"
    )
    assert found["A"]["@status"] == ["CASCADE_FAILED"]
