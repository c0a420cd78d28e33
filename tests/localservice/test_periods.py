"""Timeout-type fields in seconds: accepted with a warning, and honoured."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from runner.localservice.expressions import ExpressionError
from runner.localservice.fieldtypes import parse_duration
from tests.support.localservice import DEFAULT, run_pipeline, shell, wait_for


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2 seconds", dt.timedelta(seconds=2)),
        ("1 second", dt.timedelta(seconds=1)),
        (" 30 Seconds ", dt.timedelta(seconds=30)),
        ("2 minutes", dt.timedelta(minutes=2)),
    ],
)
def test_parse_duration_takes_seconds_and_periods(
    text: str, expected: dt.timedelta
) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0 seconds", "seconds", "2 secs", "-1 seconds"])
def test_parse_duration_rejects_bad_seconds(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse_duration(text)


def put(dp: Any, objects: list[dict[str, Any]]) -> dict[str, Any]:
    pipeline_id = dp.create_pipeline(name="p", uniqueId=str(time.monotonic_ns()))[
        "pipelineId"
    ]
    answer: dict[str, Any] = dp.put_pipeline_definition(
        pipelineId=pipeline_id, pipelineObjects=[DEFAULT, *objects]
    )
    return answer


def test_seconds_in_timeout_fields_are_accepted_with_a_warning(dp: Any) -> None:
    answer = put(
        dp,
        [
            shell(
                "A",
                attemptTimeout="2 seconds",
                reportProgressTimeout="90 seconds",
                retryDelay="1 second",
            ),
            shell("B", attemptTimeout="2 minutes"),
        ],
    )
    assert not answer["errored"], answer
    warnings = {w["id"]: w["warnings"] for w in answer["validationWarnings"]}
    assert sorted(warnings) == ["A"]
    assert len(warnings["A"]) == 3
    assert warnings["A"][0].startswith("Field 'attemptTimeout': '2 seconds' is in")
    assert "AWS may not" in warnings["A"][0]


def test_seconds_elsewhere_and_zero_seconds_are_errors(dp: Any) -> None:
    answer = put(
        dp,
        [
            shell("A", attemptTimeout="0 seconds", lateAfterTimeout="5 seconds"),
        ],
    )
    assert answer["errored"]
    (errors,) = [e["errors"] for e in answer["validationErrors"] if e["id"] == "A"]
    assert len(errors) == 2
    assert errors[0].startswith("Field 'attemptTimeout': invalid period")
    assert errors[1].startswith("Field 'lateAfterTimeout': invalid period")


def test_retry_delay_in_seconds_is_honoured(dp: Any) -> None:
    # 30 s scaled by 0.01 is 0.3 s; the default 10 minutes would be 6 s.
    pipeline_id = run_pipeline(
        dp, [shell("A", retryDelay="30 seconds", maximumRetries="1")]
    )
    first = wait_for(lambda: dp.poll_for_task(workerGroup="wg").get("taskObject"))
    failed_at = time.monotonic()
    dp.set_task_status(taskId=first["taskId"], taskStatus="FAILED", errorId="Boom")
    second = wait_for(lambda: dp.poll_for_task(workerGroup="wg").get("taskObject"))
    assert second["attemptId"].endswith("_Attempt=2")
    assert second["pipelineId"] == pipeline_id
    assert time.monotonic() - failed_at < 3.0
