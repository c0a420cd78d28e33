"""S3KeyExists and S3PrefixNotEmpty, checked by the service itself against moto's
standalone S3 server over HTTP: no runner ever sees them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from runner.localservice import LocalService
from tests.support.localservice import (
    DEFAULT,
    TIME_SCALE,
    closed_port,
    fields_of,
    make_client,
    run_pipeline,
    shell,
    wait_for,
)


def precondition(obj_id: str, kind: str, uri: str, **extra: str) -> dict[str, Any]:
    key = "s3Key" if kind == "S3KeyExists" else "s3Prefix"
    fields = [
        {"key": "type", "stringValue": kind},
        {"key": "role", "stringValue": "DataPipelineDefaultRole"},
        {"key": key, "stringValue": uri},
        *({"key": k, "stringValue": v} for k, v in extra.items()),
    ]
    return {"id": obj_id, "name": obj_id, "fields": fields}


def data_node(obj_id: str, directory: str, guard: str) -> dict[str, Any]:
    return {
        "id": obj_id,
        "name": obj_id,
        "fields": [
            {"key": "type", "stringValue": "S3DataNode"},
            {"key": "directoryPath", "stringValue": directory},
            {"key": "precondition", "refValue": guard},
        ],
    }


def instances(dp: Any, pipeline_id: str) -> dict[str, dict[str, list[str]]]:
    """Instance fields by component id."""
    ids = dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE")["ids"]
    objects = dp.describe_objects(pipelineId=pipeline_id, objectIds=ids)
    found = (fields_of(obj) for obj in objects["pipelineObjects"])
    return {fields["@componentParent"][0]: fields for fields in found}


def wait_status(
    dp: Any, pipeline_id: str, component: str, statuses: set[str]
) -> dict[str, list[str]]:
    def reached() -> dict[str, list[str]] | None:
        fields = instances(dp, pipeline_id).get(component)
        return fields if fields and fields["@status"][0] in statuses else None

    found: dict[str, list[str]] = wait_for(reached)
    return found


def wait_first_check_false(dp: Any, pipeline_id: str) -> None:
    """Wait until the first attempt of `Ready` has been answered FALSE."""
    instance = wait_status(dp, pipeline_id, "Ready", {"WAITING_FOR_RUNNER"})["@id"][0]
    attempt = f"{instance}_Attempt=1"

    def status() -> str:
        objects = dp.describe_objects(pipelineId=pipeline_id, objectIds=[attempt])
        found = objects["pipelineObjects"]
        return fields_of(found[0])["@status"][0] if found else ""

    wait_for(lambda: status() == "FALSE")


@pytest.fixture
def explicit_service(moto_server: str) -> Iterator[LocalService]:
    """A service told its S3 endpoint; boto3's environment names none."""
    with LocalService(
        time_scale=TIME_SCALE, poll_hold_s=0.3, s3_endpoint_url=moto_server
    ) as svc:
        yield svc


def test_key_exists_is_met_by_the_service_alone(
    dp: Any, service: LocalService, s3_admin: Any, s3_bucket: str
) -> None:
    s3_admin.put_object(Bucket=s3_bucket, Key="in/_SUCCESS", Body=b"")
    pipeline_id = run_pipeline(
        dp,
        [
            shell("A", ref_input="In"),
            data_node("In", f"s3://{s3_bucket}/in/", "Ready"),
            precondition("Ready", "S3KeyExists", f"s3://{s3_bucket}/in/_SUCCESS"),
        ],
    )
    ready = wait_status(dp, pipeline_id, "Ready", {"FINISHED"})
    assert ready["@attemptCount"] == ["1"]
    assert service.calls("PollForTask") == []  # no runner took part
    task = dp.poll_for_task(workerGroup="wg")["taskObject"]
    assert task["attemptId"].startswith("@A_")


def test_prefix_not_empty_false_then_true_before_the_timeout(
    explicit_service: LocalService, moto_server: str
) -> None:
    dp = make_client(explicit_service.endpoint_url)
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    bucket = "prefix-later"
    s3.create_bucket(Bucket=bucket)
    pipeline_id = run_pipeline(
        dp,
        [
            shell("A", ref_precondition="Ready"),
            precondition(
                "Ready",
                "S3PrefixNotEmpty",
                f"s3://{bucket}/drop/",
                retryDelay="2 minutes",  # 1.2 s scaled
                preconditionTimeout="1 hour",
            ),
        ],
    )
    wait_first_check_false(dp, pipeline_id)
    s3.put_object(Bucket=bucket, Key="drop/part-0", Body=b"x")
    ready = wait_status(dp, pipeline_id, "Ready", {"FINISHED"})
    assert int(ready["@attemptCount"][0]) >= 2
    assert instances(dp, pipeline_id)["A"]["@status"] == ["WAITING_FOR_RUNNER"]


def test_precondition_timeout_cascades_to_the_guarded_activity(
    dp: Any, s3_bucket: str
) -> None:
    pipeline_id = run_pipeline(
        dp,
        [
            shell("A", ref_precondition="Ready"),
            precondition(
                "Ready",
                "S3KeyExists",
                f"s3://{s3_bucket}/never",
                retryDelay="2 minutes",  # 1.2 s scaled (AWS's minimum)
                preconditionTimeout="5 minutes",  # 3 s scaled
            ),
        ],
    )
    ready = wait_status(dp, pipeline_id, "Ready", {"TIMEDOUT"})
    assert ready["errorId"] == ["PreconditionTimeout"]
    assert int(ready["@attemptCount"][0]) >= 2
    assert instances(dp, pipeline_id)["A"]["@status"] == ["CASCADE_FAILED"]


def test_missing_bucket_fails_with_a_message_that_names_it(
    dp: Any, s3_env: dict[str, str]
) -> None:
    uri = "s3://no-such-bucket-here/key"
    pipeline_id = run_pipeline(
        dp,
        [
            shell("A", ref_precondition="Ready"),
            precondition("Ready", "S3KeyExists", uri, maximumRetries="0"),
        ],
    )
    ready = wait_status(dp, pipeline_id, "Ready", {"FAILED"})
    assert ready["errorId"] == ["S3PreconditionError"]
    assert ready["errorMessage"] == [f"S3KeyExists {uri}: no such bucket"]
    assert wait_status(dp, pipeline_id, "A", {"CASCADE_FAILED"})


def test_unreachable_s3_fails_the_check_with_a_clear_error() -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    with LocalService(
        time_scale=TIME_SCALE, poll_hold_s=0.3, s3_endpoint_url=endpoint
    ) as svc:
        dp = make_client(svc.endpoint_url)
        pipeline_id = run_pipeline(
            dp,
            [
                shell("A", ref_precondition="Ready"),
                precondition(
                    "Ready", "S3PrefixNotEmpty", "s3://b/p/", maximumRetries="0"
                ),
            ],
        )
        ready = wait_status(dp, pipeline_id, "Ready", {"FAILED"})
    assert ready["errorId"] == ["S3PreconditionError"]
    assert (
        "S3PrefixNotEmpty s3://b/p/: S3 could not be reached"
        in (ready["errorMessage"][0])
    )


def test_s3_precondition_fields_are_validated(dp: Any) -> None:
    pipeline_id = dp.create_pipeline(name="v", uniqueId="v")["pipelineId"]
    answer = dp.put_pipeline_definition(
        pipelineId=pipeline_id,
        pipelineObjects=[
            DEFAULT,
            shell("A", ref_precondition="NoKey"),
            {
                "id": "NoKey",
                "name": "NoKey",
                "fields": [
                    {"key": "type", "stringValue": "S3KeyExists"},
                    {"key": "role", "stringValue": "DataPipelineDefaultRole"},
                ],
            },
            precondition("NotS3", "S3PrefixNotEmpty", "/local/path"),
            precondition("BucketOnly", "S3KeyExists", "s3://bucket/"),
        ],
    )
    errors = {e["id"]: e["errors"] for e in answer["validationErrors"]}
    warnings = {w["id"]: w["warnings"] for w in answer["validationWarnings"]}
    assert errors["NoKey"] == ["Missing required field: 's3Key'"]
    assert errors["NotS3"] == [
        "Field 's3Prefix': '/local/path' is not an s3://bucket/key URI"
    ]
    assert "BucketOnly" in errors
    assert "NoKey" not in warnings


def test_a_pending_check_survives_a_restart(moto_server: str, tmp_path: Any) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    s3.create_bucket(Bucket="restart-bucket")
    state = tmp_path / "state.db"
    options: dict[str, Any] = {
        "state_path": state,
        "time_scale": TIME_SCALE,
        "poll_hold_s": 0.3,
        "s3_endpoint_url": moto_server,
    }
    with LocalService(**options) as first:
        dp = make_client(first.endpoint_url)
        pipeline_id = run_pipeline(
            dp,
            [
                shell("A", ref_precondition="Ready"),
                precondition(
                    "Ready",
                    "S3KeyExists",
                    "s3://restart-bucket/flag",
                    retryDelay="2 minutes",  # 1.2 s scaled
                ),
            ],
        )
        wait_first_check_false(dp, pipeline_id)
    s3.put_object(Bucket="restart-bucket", Key="flag", Body=b"")
    with LocalService(**options) as second:
        dp = make_client(second.endpoint_url)
        ready = wait_status(dp, pipeline_id, "Ready", {"FINISHED"})
        assert ready["@attemptCount"] == ["2"]
        task = dp.poll_for_task(workerGroup="wg")["taskObject"]
        assert task["attemptId"].startswith("@A_")
