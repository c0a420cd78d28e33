"""``references.plan``: a task is read as it came; objects are fetched only when a
required field is missing, once, and a failed fetch names the objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog

from runner.activities import ActivityContext, Process
from runner.attempt import AttemptPaths
from runner.aws.s3 import S3
from runner.errors import ActivityError, TransientServiceError
from runner.task import references
from runner.taskmodel import Task

ATTEMPT = "@Act_2024-01-01T00:00:00_Attempt=1"


def raw_task(
    *fields: dict[str, str], objects: dict[str, Any] | None = None
) -> dict[str, Any]:
    head = {"id": ATTEMPT, "name": ATTEMPT, "fields": list(fields)}
    return {
        "taskId": "t" * 40,
        "pipelineId": "df-1",
        "attemptId": ATTEMPT,
        "objects": {ATTEMPT: head, **(objects or {})},
    }


@pytest.fixture
def ctx(tmp_path: Path) -> ActivityContext:
    paths = AttemptPaths(tmp_path)
    paths.workdir.mkdir()
    return ActivityContext(paths=paths, s3=S3(region=None, log=structlog.get_logger()))


class Fetches:
    """A record of fetch calls, answering from a fixed set of objects."""

    def __init__(self, objects: dict[str, Any], error: Exception | None = None) -> None:
        self.objects, self.error = objects, error
        self.calls: list[list[str]] = []

    def __call__(self, pipeline_id: str, ids: list[str]) -> list[dict[str, Any]]:
        self.calls.append(ids)
        if self.error is not None:
            raise self.error
        return [self.objects[i] for i in ids if i in self.objects]


def plan(raw: dict[str, Any], ctx: ActivityContext, fetch: Fetches) -> tuple[Task, Any]:
    task = Task.from_wire(raw)
    return references.plan(task, raw, ctx, fetch=fetch, log=structlog.get_logger())


def test_a_task_that_carries_what_it_needs_fetches_nothing(
    ctx: ActivityContext,
) -> None:
    raw = raw_task(
        {"key": "type", "stringValue": "ShellCommandActivity"},
        {"key": "command", "stringValue": "true"},
        {"key": "schedule", "refValue": "Sched"},  # absent, and not needed
        {"key": "@componentParent", "refValue": "Act"},
    )
    fetch = Fetches({})
    _, made = plan(raw, ctx, fetch)
    assert isinstance(made.main, Process)
    assert fetch.calls == []


def test_a_missing_required_field_fetches_the_missing_objects_once(
    ctx: ActivityContext,
) -> None:
    raw = raw_task(
        {"key": "type", "stringValue": "ShellCommandActivity"},
        {"key": "parent", "refValue": "Base"},
        {"key": "schedule", "refValue": "Sched"},
    )
    base = {
        "id": "Base",
        "name": "Base",
        "fields": [{"key": "command", "stringValue": "echo b"}],
    }
    fetch = Fetches({"Base": base})
    task, made = plan(raw, ctx, fetch)
    assert fetch.calls == [["Base", "Sched"]]
    assert "Base" in task.objects
    assert isinstance(made.main, Process)
    assert (ctx.paths.workdir / "command.sh").read_text() == "echo b\n"


def test_a_failed_fetch_for_a_required_field_is_unresolved_reference(
    ctx: ActivityContext,
) -> None:
    raw = raw_task(
        {"key": "type", "stringValue": "ShellCommandActivity"},
        {"key": "parent", "refValue": "Base"},
    )
    fetch = Fetches({}, TransientServiceError("DescribeObjects", "Throttling", "slow"))
    with pytest.raises(ActivityError) as info:
        plan(raw, ctx, fetch)
    assert info.value.error_id == "UnresolvedReference"
    assert "Base" in info.value.message
    assert "Throttling" in info.value.message


def test_other_errors_and_nothing_to_fetch_are_raised_as_they_are(
    ctx: ActivityContext,
) -> None:
    unsupported = raw_task(
        {"key": "type", "stringValue": "HiveActivity"},
        {"key": "parent", "refValue": "Base"},
    )
    fetch = Fetches({})
    with pytest.raises(ActivityError) as info:
        plan(unsupported, ctx, fetch)
    assert info.value.error_id == "UnsupportedActivity"
    no_refs = raw_task({"key": "type", "stringValue": "ShellCommandActivity"})
    with pytest.raises(ActivityError) as info:
        plan(no_refs, ctx, fetch)
    assert info.value.error_id == "MissingField"
    assert fetch.calls == []


def wire(obj_id: str, **fields: str | dict[str, str]) -> dict[str, Any]:
    """An object as DescribeObjects returns it."""
    listed = [
        {"key": k, "refValue": v["ref"]}
        if isinstance(v, dict)
        else {"key": k, "stringValue": v}
        for k, v in fields.items()
    ]
    return {"id": obj_id, "name": obj_id, "fields": listed}


def test_references_are_fetched_to_their_closure_one_level_per_fetch(
    ctx: ActivityContext,
) -> None:
    """A CopyActivity whose SqlDataNode is not carried, nor the node's database:
    two fetches, the node (and its sibling), then the database."""
    raw = raw_task(
        {"key": "type", "stringValue": "CopyActivity"},
        {"key": "input", "refValue": "Items"},
        {"key": "output", "refValue": "Out"},
    )
    fetch = Fetches(
        {
            "Items": wire(
                "Items",
                type="SqlDataNode",
                database={"ref": "PgDb"},
                table="items",
                selectQuery="SELECT id FROM items",
            ),
            "Out": wire("Out", type="S3DataNode", filePath="s3://b/out.csv"),
            "PgDb": wire(
                "PgDb",
                type="JdbcDatabase",
                connectionString="jdbc:postgresql://127.0.0.1:5432/db",
                jdbcDriverClass="org.postgresql.Driver",
                username="u",
                **{"*password": "p"},
            ),
        }
    )
    task, _ = plan(raw, ctx, fetch)
    assert fetch.calls == [["Items", "Out"], ["PgDb"]]
    assert {"Items", "Out", "PgDb"} <= set(task.objects)


def test_references_are_fetched_at_most_three_levels_deep(
    ctx: ActivityContext,
) -> None:
    raw = raw_task(
        {"key": "type", "stringValue": "ShellCommandActivity"},
        {"key": "parent", "refValue": "L1"},
    )
    chain = {f"L{n}": wire(f"L{n}", parent={"ref": f"L{n + 1}"}) for n in range(1, 6)}
    fetch = Fetches(chain)
    with pytest.raises(ActivityError) as info:
        plan(raw, ctx, fetch)
    assert info.value.error_id == "MissingField"
    assert fetch.calls == [["L1"], ["L2"], ["L3"]]
