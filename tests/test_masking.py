"""Secrets masked at the source (``runner.masking``, the task model's reprs and
errors), and malformed PollForTask answers mended before botocore parses them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runner.aws.pollanswer import MALFORMED, mend_poll_answer, shape_problem
from runner.errors import ActivityError
from runner.masking import MASK, masked, redact, secret_values
from runner.taskmodel import PipelineObject, Task

SECRET = "hunter2-the-secret"  # noqa: S105 - a planted test secret


def secret_object(**extra: Any) -> dict[str, Any]:
    fields = [
        {"key": "*password", "stringValue": SECRET},
        {"key": "command", "stringValue": "echo hi"},
    ]
    return {"id": "Db", "name": "Db", "fields": fields, **extra}


def test_masked_hides_star_fields_however_malformed_the_rest_is() -> None:
    weird = {"objects": [secret_object(), {"fields": "a string"}, 3, None]}
    shown = repr(masked(weird))
    assert SECRET not in shown
    assert MASK in shown
    assert "a string" in shown  # what is not secret stays readable


def test_secret_values_are_found_in_a_malformed_task() -> None:
    raw = {"taskId": 1, "objects": {"x": [secret_object()], "y": "junk"}}
    assert secret_values(raw) == [SECRET]
    assert secret_values({"key": "*empty", "stringValue": ""}) == []
    assert redact(f"pw={SECRET}", [SECRET]) == "pw=***"


def test_a_deeply_nested_value_is_cut_not_a_crash() -> None:
    deep: Any = SECRET
    for _ in range(5000):
        deep = [deep]
    assert SECRET not in repr(masked(deep))
    assert secret_values(deep) == []  # a bare string is no field


def test_reprs_of_objects_and_tasks_mask_star_fields() -> None:
    obj = PipelineObject.from_wire(secret_object())
    assert SECRET not in repr(obj)
    task = Task.from_wire(
        {"taskId": "t" * 900, "pipelineId": "df-1", "attemptId": "Db",
         "objects": {"Db": secret_object()}}
    )  # fmt: skip
    shown = repr(task)
    assert SECRET not in shown
    assert "t" * 900 not in shown  # the task id shows as its digest


def test_a_malformed_object_is_named_with_its_secrets_masked() -> None:
    broken = secret_object()
    broken["fields"].append({"stringValue": "a field without a key"})
    with pytest.raises(ActivityError) as info:
        PipelineObject.from_wire(broken)
    assert info.value.error_id == "MalformedTaskObject"
    assert SECRET not in info.value.message
    assert "'Db'" in info.value.message


@pytest.mark.parametrize(
    ("task", "problem"),
    [
        ({"taskId": "t", "objects": []}, "objects is a list, not a map"),
        ({"taskId": "t", "objects": {"A": {"fields": "x"}}}, "fields is a string"),
        ({"taskId": "t", "objects": {"A": {"fields": ["x"]}}}, "field #1 is a string"),
        ({"taskId": "t", "objects": {"A": 7}}, "it is a int, not an object"),
        ([1, 2], "taskObject is a list"),
    ],
)
def test_shapes_botocore_cannot_parse_are_named(task: Any, problem: str) -> None:
    found = shape_problem(task)
    assert found is not None
    assert problem in found


def mend(answer: Any, status: int = 200) -> tuple[Any, dict[str, Any]]:
    body = json.dumps(answer).encode()
    headers = {"content-length": str(len(body))}
    response = {"body": body, "status_code": status, "headers": headers}
    custom: dict[str, Any] = {}
    mend_poll_answer(response, custom)
    assert headers["content-length"] == str(len(response["body"]))  # kept true
    return json.loads(response["body"]), custom


def test_a_malformed_task_keeps_its_ids_and_carries_the_problem() -> None:
    body, custom = mend(
        {
            "taskObject": {
                "taskId": "t1",
                "attemptId": "a1",
                "objects": [secret_object()],
            }
        }
    )
    assert body == {"taskObject": {"taskId": "t1", "attemptId": "a1", "objects": {}}}
    assert "objects is a list" in custom[MALFORMED]
    assert SECRET not in json.dumps(body)


def test_a_task_without_a_readable_id_becomes_an_empty_poll() -> None:
    body, custom = mend({"taskObject": {"taskId": 5, "objects": {"A": "x"}}})
    assert body == {}
    assert MALFORMED in custom


def test_well_formed_answers_and_errors_are_left_alone() -> None:
    good = {"taskObject": {"taskId": "t", "objects": {"A": secret_object()}}}
    assert mend(good) == (good, {})
    assert mend({}) == ({}, {})
    error = {"__type": "InternalServiceError", "objects": []}
    assert mend(error, status=500) == (error, {})
