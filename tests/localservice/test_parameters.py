"""Parameter objects and values as AWS has them, through boto3 (dp-custom-templates)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import pytest
from botocore.exceptions import ClientError

from runner.localservice import LocalService
from runner.localservice.parameters import Parameters
from tests.support.localservice import DEFAULT, fields_of, shell, wait_for

SECRET = "Sup3r-s3cret"  # noqa: S105 - the masked value the tests look for


def param(parameter_id: str, **attributes: str | list[str]) -> dict[str, Any]:
    return {
        "id": parameter_id,
        "attributes": [
            {"key": key, "stringValue": item}
            for key, value in attributes.items()
            for item in (value if isinstance(value, list) else [value])
        ],
    }


def values(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"id": parameter_id, "stringValue": text} for parameter_id, text in pairs]


def put(
    dp: Any,
    objects: list[dict[str, Any]],
    parameters: Sequence[dict[str, Any]] = (),
    given: Sequence[dict[str, str]] = (),
) -> tuple[str, dict[str, Any]]:
    created = dp.create_pipeline(name="p", uniqueId=os.urandom(8).hex())
    pipeline_id = created["pipelineId"]
    answer = dp.put_pipeline_definition(
        pipelineId=pipeline_id,
        pipelineObjects=[DEFAULT, *objects],
        parameterObjects=list(parameters),
        parameterValues=list(given),
    )
    return pipeline_id, answer


def messages(answer: dict[str, Any], kind: str = "errors") -> dict[str, str]:
    key = "validationErrors" if kind == "errors" else "validationWarnings"
    return {item["id"]: " | ".join(item[kind]) for item in answer[key]}


def task_fields(dp: Any, pipeline_id: str) -> dict[str, list[str]]:
    dp.activate_pipeline(pipelineId=pipeline_id)
    task = wait_for(lambda: dp.poll_for_task(workerGroup="wg").get("taskObject"))
    return fields_of(task["objects"][task["attemptId"]])


def test_masked_and_undeclared_parameters_are_accepted_and_evaluated(dp: Any) -> None:
    pipeline_id, answer = put(
        dp,
        [
            shell(
                "A",
                "login #{*myToken} #{myUndeclared}",
                **{"*myPassword": "#{*myToken}"},
            )
        ],
        [param("*myToken", description="a secret")],
        values(("*myToken", SECRET), ("myUndeclared", "u")),
    )
    assert answer["errored"] is False, answer
    assert answer["validationWarnings"] == []
    fields = task_fields(dp, pipeline_id)
    # AWS hands the runner the value: masking is for consoles and logs
    assert fields["command"] == [f"login {SECRET} u"]
    assert fields["*myPassword"] == [SECRET]


def test_a_required_parameter_without_a_value_is_an_error_naming_it(dp: Any) -> None:
    _, answer = put(
        dp,
        [shell("A", "echo #{myNeeded} #{myDefaulted} [#{myOptional}]")],
        [
            param("myNeeded", type="String"),
            param("myDefaulted", default="d"),
            param("myOptional", optional="true", watermark="a hint"),
        ],
    )
    assert answer["errored"] is True
    assert messages(answer) == {
        "myNeeded": "Parameter 'myNeeded' needs a value: it is not optional and "
        "has no default"
    }


def test_an_optional_parameter_without_a_value_is_empty(dp: Any) -> None:
    pipeline_id, answer = put(
        dp,
        [shell("A", "echo #{myDefaulted} [#{myOptional}]")],
        [
            param("myDefaulted", default="d", helpText="h", helpLink="https://x"),
            param("myOptional", optional="true", isArray="true", watermark="w"),
        ],
    )
    assert answer["errored"] is False, answer
    assert task_fields(dp, pipeline_id)["command"] == ["echo d []"]


def test_allowed_values_and_types_are_checked_by_name(dp: Any) -> None:
    _, answer = put(
        dp,
        [shell("A", "echo #{myMode} #{myCount} #{myRatio} #{*myPin}")],
        [
            param("myMode", allowedValues=["fast", "slow"]),
            param("myCount", type="Integer"),
            param("myRatio", type="Double"),
            param("*myPin", type="Integer", allowedValues=["1", "2"]),
            param("myColour", type="Colour", default="x"),
            param("myFlag", optional="maybe", default="x"),
        ],
        values(
            ("myMode", "medium"),
            ("myCount", "seven"),
            ("myRatio", "0.5e3"),
            ("*myPin", SECRET),
        ),
    )
    found = messages(answer)
    assert "'medium' is not one of its allowedValues (fast, slow)" in found["myMode"]
    assert "type Integer: 'seven' is not a number" in found["myCount"]
    assert "myRatio" not in found  # 0.5e3 is a Double
    assert "type Integer: its value is not" in found["*myPin"]
    assert "its value is not one of its allowedValues (1, 2)" in found["*myPin"]
    assert "unknown type 'Colour'" in found["myColour"]
    assert "optional must be 'true' or 'false'" in found["myFlag"]
    assert SECRET not in str(answer)


def test_numeric_parameters_are_numbers_in_expressions(dp: Any) -> None:
    pipeline_id, _ = put(
        dp,
        [shell("A", "echo #{myCount * 2} #{myRatio + 1} #{myCount + 'x'}")],
        [param("myCount", type="Integer"), param("myRatio", type="Double")],
        values(("myCount", "21"), ("myRatio", "0.5")),
    )
    assert task_fields(dp, pipeline_id)["command"] == ["echo 42 1.5 21x"]


def test_an_array_parameter_repeats_the_field_that_uses_it(dp: Any) -> None:
    pipeline_id, answer = put(
        dp,
        [shell("A", "echo", scriptArgument="--group=#{myGroups}")],
        [param("myGroups", isArray="true", default=["sg-1", "sg-2"])],
        values(("myGroups", "sg-a"), ("myGroups", "sg-b"), ("myGroups", "sg-c")),
    )
    assert answer["errored"] is False, answer
    assert task_fields(dp, pipeline_id)["scriptArgument"] == [
        "--group=sg-a",
        "--group=sg-b",
        "--group=sg-c",
    ]


def test_several_values_for_a_parameter_that_is_no_array_are_an_error(
    dp: Any,
) -> None:
    _, answer = put(
        dp,
        [shell("A", "echo #{myOne}")],
        [param("myOne")],
        values(("myOne", "a"), ("myOne", "b")),
    )
    assert messages(answer) == {
        "myOne": "Parameter 'myOne' has 2 values but is not an array (isArray: true)"
    }


def test_parameter_ids_start_with_my_and_other_values_are_ignored(dp: Any) -> None:
    pipeline_id, answer = put(
        dp,
        [shell("A", "echo #{table}", table="t")],
        [param("bad"), param("myOdd", default="x", colour="blue", myNote="mine")],
        values(("bad", "1"), ("table", "shadow")),
    )
    assert "must start with 'my'" in messages(answer)["bad"]
    assert "A" not in messages(answer)
    warnings = messages(answer, "warnings")
    assert "'table', which is not a parameter" in warnings["table"]
    assert warnings["myOdd"] == (
        "Parameter 'myOdd': attribute 'colour' is not one AWS documents; ignored"
    )
    # a value named like a field does not shadow it
    evaluated = dp.evaluate_expression(
        pipelineId=pipeline_id, objectId="A", expression="#{table}"
    )
    assert evaluated["evaluatedExpression"] == "t"


def fail_quoting(secret: str) -> None:
    raise RuntimeError(f"a bug that quotes {secret}")


def test_masked_values_are_blanked_out_of_what_the_service_says(
    dp: Any, service: LocalService, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline_id, answer = put(
        dp,
        [shell("A", "echo #{*myToken - 1}"), shell("B", "echo #{*myToken}")],
        [param("*myToken")],
        values(("*myToken", SECRET)),
    )
    # the message quotes the value the expression could not use
    assert "needs a number, got str '****'" in messages(answer)["A"]
    assert SECRET not in str(answer)
    with pytest.raises(ClientError) as exc:
        dp.evaluate_expression(
            pipelineId=pipeline_id, objectId="B", expression="#{*myToken * 2}"
        )
    assert "'****'" in str(exc.value)
    assert SECRET not in str(exc.value)
    # and out of the service's own log lines, tracebacks included
    logger = logging.getLogger("runner.localservice.server")
    with caplog.at_level(logging.ERROR, logger="runner.localservice.server"):
        try:
            fail_quoting(SECRET)
        except RuntimeError:
            logger.exception("localservice_operation_failed for %s", SECRET)
    assert "a bug that quotes ****" in caplog.text
    assert SECRET not in caplog.text


def test_describe_objects_takes_100_ids_and_no_more(dp: Any) -> None:
    pipeline_id, _ = put(dp, [shell(f"A{i}") for i in range(101)])
    ids = [f"A{i}" for i in range(101)]
    described = dp.describe_objects(pipelineId=pipeline_id, objectIds=ids[:100])
    assert len(described["pipelineObjects"]) == 100
    with pytest.raises(ClientError) as exc:
        dp.describe_objects(pipelineId=pipeline_id, objectIds=ids)
    assert "at most 100 ids" in str(exc.value)


def test_masked_values_are_every_value_a_star_parameter_may_take() -> None:
    params = Parameters(
        [param("*myKey", default="dflt"), param("myOpen", default="o")],
        values(("*myKey", "given"), ("*myUndeclared", "u"), ("myOpen", "v")),
    )
    assert params.masked_values() == {"dflt", "given", "u"}
