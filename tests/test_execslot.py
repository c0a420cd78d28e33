"""``execslot.cut``: what one slot of a definition keeps, drops and adds; and the
command line's values (``localflags.spread_exec_values``, masked values from the
environment). The slot's run on a real service is tests/test_exec.py's."""

from __future__ import annotations

from typing import Any

import pytest

from runner import execslot, localflags
from runner.pipelinefile import Definition, load_definition
from tests.support.runners import REPO

DAILY = REPO / "tests" / "exec" / "daily.json"
STAGING = REPO / "tests" / "exec" / "staging.json"


def fields(slot: execslot.Slot, obj_id: str) -> dict[str, list[str]]:
    (obj,) = [o for o in slot.definition.pipeline_objects if o["id"] == obj_id]
    found: dict[str, list[str]] = {}
    for field in obj["fields"]:
        value = field.get("stringValue", field.get("refValue"))
        found.setdefault(field["key"], []).append(value)
    return found


def ids(slot: execslot.Slot) -> set[str]:
    return {o["id"] for o in slot.definition.pipeline_objects}


def test_an_activity_keeps_what_it_refers_to_and_nothing_else() -> None:
    slot = execslot.cut(
        load_definition(STAGING), "Uppercase", "2026-06-01T05:00:00", "wg-x"
    )
    assert ids(slot) == {
        "Default",
        "Raw",
        "Upper",
        "Uppercase",
        "DpRunnerExecSchedule",
    }
    assert "precondition" not in fields(slot, "Raw")
    target = fields(slot, "Uppercase")
    assert target["workerGroup"] == ["wg-x"]
    assert target["maximumRetries"] == ["0"]
    default = fields(slot, "Default")
    assert default["scheduleType"] == ["cron"]
    assert default["schedule"] == ["DpRunnerExecSchedule"]
    assert "workerGroup" not in default
    assert fields(slot, "DpRunnerExecSchedule") == {
        "type": ["Schedule"],
        "startDateTime": ["2026-06-01T05:00:00"],
        "period": ["1 hour"],
        "occurrences": ["1"],
    }
    assert slot.instance_id == "@Uppercase_2026-06-01T05:00:00"
    assert not slot.precondition


def test_dependencies_and_preconditions_are_the_schedulers() -> None:
    slot = execslot.cut(load_definition(DAILY), "Say", "2026-06-01T00:00:00", "wg")
    assert ids(slot) == {"Default", "Say", "DpRunnerExecSchedule"}
    assert {"dependsOn", "precondition"}.isdisjoint(fields(slot, "Say"))


def test_a_precondition_rides_a_carrier_nobody_serves() -> None:
    slot = execslot.cut(load_definition(DAILY), "Never", "2026-06-01T00:00:00", "wg")
    assert slot.precondition
    assert fields(slot, "Never")["workerGroup"] == ["wg"]
    carrier = fields(slot, "DpRunnerExecCarrier")
    assert carrier["precondition"] == ["Never"]
    assert carrier["workerGroup"] == ["wg-carrier"]


def test_generated_ids_never_clash() -> None:
    defn = load_definition(DAILY)
    taken = {"id": "DpRunnerExecSchedule", "name": "x", "fields": []}
    defn = Definition(
        [*defn.pipeline_objects, taken], defn.parameter_objects, defn.parameter_values
    )
    slot = execslot.cut(defn, "Say", "2026-06-01T00:00:00", "wg")
    assert fields(slot, "Default")["schedule"] == ["DpRunnerExecSchedule-2"]


@pytest.mark.parametrize("target", ["Daily", "Nobody"])
def test_what_exec_cannot_run_is_a_usage_error(target: str) -> None:
    with pytest.raises(execslot.ExecUsageError, match=target):
        execslot.cut(load_definition(DAILY), target, "2026-06-01T00:00:00", "wg")


def test_a_reference_to_nothing_is_a_slot_error() -> None:
    defn = Definition(
        [
            {
                "id": "A",
                "name": "A",
                "fields": [
                    {"key": "type", "stringValue": "ShellCommandActivity"},
                    {"key": "input", "refValue": "Gone"},
                ],
            }
        ],
        [],
        [],
    )
    with pytest.raises(execslot.SlotError, match="Gone"):
        execslot.cut(defn, "A", "2026-06-01T00:00:00", "wg")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-06-01", "2026-06-01T00:00:00"),
        ("2026-06-01T02:30:15.5", "2026-06-01T02:30:15"),
        ("2026-06-01T02:30+02:00", "2026-06-01T00:30:00"),
        ("2026-06-01T00:00:00Z", "2026-06-01T00:00:00"),
    ],
)
def test_scheduled_start_is_utc_to_the_second(text: str, expected: str) -> None:
    assert execslot.scheduled_start(text) == expected


def test_values_after_one_flag_are_spread_until_the_definition() -> None:
    args = ["--parameter-values", "a=1", "b=2", "def.json", "--object", "X"]
    assert localflags.spread_exec_values(args) == [
        "--parameter-values",
        "a=1",
        "--parameter-values",
        "b=2",
        "def.json",
        "--object",
        "X",
    ]


def test_masked_values_come_from_their_variables() -> None:
    defn = load_definition(DAILY)
    env: dict[str, Any] = {
        "DP_PARAMETER_myPassword": "s3cret",
        "DP_PARAMETER_myPython": "not masked: not taken",
    }
    given, used = execslot.masked_from_environment(defn, env)
    assert used == ["DP_PARAMETER_myPassword"]
    assert given.parameter_values == [{"id": "*myPassword", "stringValue": "s3cret"}]
