"""``runner.tasklabels``: the labels a task is counted under, read off real wire
tasks (as the local service renders them) and real verdicts."""

from __future__ import annotations

import calendar
import time
from typing import Any

import pytest

from runner.task.execution import ExecutionResult
from runner.tasklabels import (
    ERROR_CLASSES,
    UNSUPPORTED,
    Ending,
    arrival,
    ending,
    error_class,
)
from runner.taskmodel import FinalStatus, StopReason

START = "2026-12-07T01:00:00"
END = "2026-12-07T02:00:00"


def wire_task(
    *fields: tuple[str, str], default: tuple[tuple[str, str], ...] = ()
) -> dict[str, Any]:
    def obj(obj_id: str, pairs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
        return {
            "id": obj_id,
            "name": obj_id,
            "fields": [{"key": k, "stringValue": v} for k, v in pairs],
        }

    return {
        "taskId": "t",
        "pipelineId": "df-1",
        "attemptId": "@A_Attempt=1",
        "objects": {
            "@A_Attempt=1": obj("@A_Attempt=1", fields),
            "Default": obj("Default", default),
        },
    }


def utc(text: str) -> float:
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S")))


def test_a_task_arrives_with_its_type_and_its_wait_from_the_scheduled_start() -> None:
    task = wire_task(
        ("type", "ShellCommandActivity"),
        ("@scheduledStartTime", START),
        ("@scheduledEndTime", END),
    )
    got = arrival("wg", task, utc(START) + 90)
    assert (got.worker_group, got.activity_type, got.queue_wait_s) == (
        "wg",
        "ShellCommandActivity",
        90,
    )


def test_a_timeseries_task_waits_from_its_scheduled_end() -> None:
    task = wire_task(
        ("type", "SqlActivity"),
        ("@scheduledStartTime", START),
        ("@scheduledEndTime", END),
        default=(("scheduleType", "timeseries"),),
    )
    assert arrival("wg", task, utc(END) + 5).queue_wait_s == 5
    assert arrival("wg", task, utc(START)).queue_wait_s == 0  # never negative


@pytest.mark.parametrize(
    "task",
    [
        wire_task(("type", "HiveActivity")),
        wire_task(("command", "true")),
        {"taskId": "t", "objects": "garbage"},
        wire_task(("type", "ShellCommandActivity"), ("@scheduledStartTime", "soon")),
    ],
)
def test_an_odd_task_is_counted_under_closed_labels(task: dict[str, Any]) -> None:
    got = arrival("wg", task, 0.0)
    assert got.activity_type in {UNSUPPORTED, "ShellCommandActivity"}
    assert got.queue_wait_s is None


@pytest.mark.parametrize(
    ("error_id", "expected"),
    [
        ("ExitCode:3", "ExitCode"),
        ("Signal:SIGKILL", "Signal"),
        ("SqlError:23505", "SqlError"),
        ("AttemptTimeout", "Timeout"),
        ("RunnerShutdown", "Shutdown"),
        ("InvalidField", "InvalidTask"),
        ("S3NoSuchKey", "Staging"),
        ("DatabaseLookupFailed", "Database"),
        ("made up by someone", "Other"),
        (None, "Other"),
    ],
)
def test_error_ids_reduce_to_a_closed_set_of_classes(
    error_id: str | None, expected: str
) -> None:
    assert error_class(error_id) == expected
    assert expected in ERROR_CLASSES


def test_an_ending_names_its_class_only_when_it_failed() -> None:
    failed = ExecutionResult("failed", FinalStatus.failed("ExitCode:2", "x"), None)
    assert ending(failed) == Ending("failed", "ExitCode", None)
    timed_out = ExecutionResult(
        "failed", FinalStatus.failed("AttemptTimeout", "x"), StopReason.TIMEOUT
    )
    assert ending(timed_out) == Ending("failed", "Timeout", "timeout")
    lost = ExecutionResult("lost", None, StopReason.LOST)
    assert ending(lost) == Ending("lost", None, "lost")
    assert ending(None) == Ending("crashed", "RunnerBug", None)
