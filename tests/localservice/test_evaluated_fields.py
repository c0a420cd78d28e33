"""Duration and number fields are evaluated before use; the clock factor never
shortens what bounds real work (design §6)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from runner.localservice import LocalService
from tests.support.localservice import (
    DEFAULT,
    fields_of,
    instance_status,
    make_client,
    shell,
    wait_for,
)


def parameters(**values: str) -> dict[str, Any]:
    """PutPipelineDefinition's parameterObjects and parameterValues."""
    return {
        "parameterObjects": [
            {"id": name, "attributes": [{"key": "type", "stringValue": "String"}]}
            for name in values
        ],
        "parameterValues": [
            {"id": name, "stringValue": value} for name, value in values.items()
        ],
    }


def create(dp: Any, objects: list[dict[str, Any]], **put: Any) -> tuple[str, Any]:
    """Create and put; (pipeline id, the put's answer)."""
    pipeline_id: str = dp.create_pipeline(name="p", uniqueId=str(time.monotonic_ns()))[
        "pipelineId"
    ]
    answer = dp.put_pipeline_definition(
        pipelineId=pipeline_id, pipelineObjects=[DEFAULT, *objects], **put
    )
    return pipeline_id, answer


def resource(obj_id: str, **extra: str) -> dict[str, Any]:
    fields = [
        {"key": "type", "stringValue": "Ec2Resource"},
        {"key": "role", "stringValue": "DataPipelineDefaultRole"},
        {"key": "resourceRole", "stringValue": "DataPipelineDefaultResourceRole"},
    ]
    fields += [{"key": k, "stringValue": v} for k, v in extra.items()]
    return {"id": obj_id, "name": obj_id, "fields": fields}


def on_resource(obj_id: str, command: str = "true", **extra: str) -> dict[str, Any]:
    """A ShellCommandActivity that runs on the Ec2Resource "R"."""
    obj = shell(obj_id, command, **extra)
    obj["fields"] = [f for f in obj["fields"] if f["key"] != "workerGroup"]
    obj["fields"].append({"key": "runsOn", "refValue": "R"})
    return obj


def test_timing_fields_from_parameters_run_and_the_retry_waits_its_delay(
    service: LocalService, dp: Any
) -> None:
    """terminateAfter, attemptTimeout, retryDelay and maximumRetries set from
    parameters: activation, the poll and the failure are answered (never a
    500), the task carries the evaluated values, and the retry waits its
    delay (2 minutes at the clock factor 0.01: 1.2 s)."""
    pipeline_id, answer = create(
        dp,
        [
            resource("R", terminateAfter="#{myTerminateAfter}"),
            on_resource(
                "A",
                attemptTimeout="#{myAttemptTimeout}",
                retryDelay="#{myRetryDelay}",
                maximumRetries="#{myRetries}",
            ),
        ],
        **parameters(
            myTerminateAfter="1 Hour",
            myAttemptTimeout="10 minutes",
            myRetryDelay="2 minutes",
            myRetries="1",
        ),
    )
    assert not answer["errored"], answer
    dp.activate_pipeline(pipelineId=pipeline_id)
    group = service.engine.runs_on_worker_group
    first = wait_for(lambda: dp.poll_for_task(workerGroup=group).get("taskObject"))
    fields = {
        key: values
        for obj in first["objects"].values()
        for key, values in fields_of(obj).items()
    }
    assert fields["attemptTimeout"] == ["10 minutes"]
    failed_at = time.monotonic()
    dp.set_task_status(taskId=first["taskId"], taskStatus="FAILED", errorId="Boom")
    second = wait_for(lambda: dp.poll_for_task(workerGroup=group).get("taskObject"))
    waited = time.monotonic() - failed_at
    assert second["attemptId"].endswith("_Attempt=2")
    assert 1.2 <= waited < 6.0  # its delay, not the default 10 minutes (6 s)
    dp.set_task_status(taskId=second["taskId"], taskStatus="FAILED", errorId="Boom")
    instance = second["attemptId"].split("_Attempt=")[0]
    wait_for(lambda: instance_status(dp, pipeline_id, instance) == "FAILED")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("terminateAfter", "soon"),
        ("attemptTimeout", "0 minutes"),
        ("retryDelay", "10"),
        ("reportProgressTimeout", "1 fortnight"),
        ("preconditionTimeout", "x"),
        ("lateAfterTimeout", "minutes"),
        ("maximumRetries", "two"),
        ("maximumRetries", "9" * 5000),
    ],
)
def test_a_field_bad_once_evaluated_is_a_validation_error(
    dp: Any, key: str, value: str
) -> None:
    obj = resource("R", **{key: "#{myValue}"}) if key == "terminateAfter" else None
    objects = [obj or shell("A", **{key: "#{myValue}"})]
    if obj is not None:
        objects.append(on_resource("A"))
    pipeline_id, answer = create(dp, objects, **parameters(myValue=value))
    assert answer["errored"], answer
    (found,) = answer["validationErrors"]
    assert any(f"'{key}'" in error for error in found["errors"]), found
    # a good value at put, a bad one at activation: refused (400), never a 500
    dp.put_pipeline_definition(
        pipelineId=pipeline_id,
        pipelineObjects=[DEFAULT, *objects],
        **parameters(myValue="2" if key == "maximumRetries" else "2 hours"),
    )
    with pytest.raises(dp.exceptions.InvalidRequestException, match=key):
        dp.activate_pipeline(
            pipelineId=pipeline_id,
            parameterValues=[{"id": "myValue", "stringValue": value}],
        )


def test_a_field_bad_only_for_its_instance_fails_the_attempt_invalid_field(
    dp: Any,
) -> None:
    """`@triesLeft` is 2 when validation tries the expression, 0 for the
    instance (maximumRetries 0): "0 minutes" is no period. The attempt is
    FAILED InvalidField, naming the field; no runner ever sees it."""
    pipeline_id, answer = create(
        dp,
        [shell("A", attemptTimeout="#{@triesLeft} minutes", maximumRetries="0")],
    )
    assert not answer["errored"], answer
    dp.activate_pipeline(pipelineId=pipeline_id)
    (instance,) = wait_for(
        lambda: dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE")["ids"]
    )
    wait_for(lambda: instance_status(dp, pipeline_id, instance) == "FAILED")
    obj = dp.describe_objects(pipelineId=pipeline_id, objectIds=[instance])
    fields = fields_of(obj["pipelineObjects"][0])
    assert fields["errorId"] == ["InvalidField"]
    assert "attemptTimeout" in fields["errorMessage"][0]
    assert dp.poll_for_task(workerGroup="wg").get("taskObject") is None


@pytest.fixture
def fast_service() -> Iterator[LocalService]:
    """A clock 1000 times faster: terminateAfter "10 Minutes" scaled would be
    0.6 s."""
    with LocalService(time_scale=0.001, poll_hold_s=0.2) as svc:
        yield svc


def test_the_clock_factor_never_shortens_terminate_after(
    fast_service: LocalService,
) -> None:
    """A task that works 2 s under terminateAfter "10 Minutes", at a clock
    1000 times faster, finishes: terminateAfter bounds real work."""
    dp = make_client(fast_service.endpoint_url)
    pipeline_id, answer = create(
        dp, [resource("R", terminateAfter="10 Minutes"), on_resource("A")]
    )
    assert not answer["errored"], answer
    dp.activate_pipeline(pipelineId=pipeline_id)
    group = fast_service.engine.runs_on_worker_group
    task = wait_for(lambda: dp.poll_for_task(workerGroup=group).get("taskObject"))
    ids = dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE")["ids"]
    (resource_id,) = [oid for oid in ids if oid.startswith("@R_")]
    started = time.monotonic()

    def resource_ended_or_two_seconds() -> bool:
        dp.report_task_progress(taskId=task["taskId"])
        ended = instance_status(dp, pipeline_id, resource_id) != "RUNNING"
        return ended or time.monotonic() - started > 2.0

    wait_for(resource_ended_or_two_seconds)
    assert instance_status(dp, pipeline_id, resource_id) == "RUNNING"
    dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    instance = task["attemptId"].split("_Attempt=")[0]
    wait_for(lambda: instance_status(dp, pipeline_id, instance) == "FINISHED")
    wait_for(lambda: instance_status(dp, pipeline_id, resource_id) == "FINISHED")
