"""Tasks built from ``PipelineObject``s for the staging tests, and ``NEVER``, the
stop that never comes, for transfers that nothing stops."""

from __future__ import annotations

import threading

from runner.taskmodel import FieldValue, PipelineObject, Task

ATTEMPT = "@Act_2024-01-01T00:00:00_Attempt=1"


#: What transfers wait on when nothing stops them.
NEVER = threading.Event()


def obj(obj_id: str, **fields: FieldValue | list[FieldValue]) -> PipelineObject:
    pairs = tuple(
        (key, item)
        for key, value in fields.items()
        for item in (value if isinstance(value, list) else [value])
    )
    return PipelineObject(id=obj_id, name=obj_id, fields=pairs)


def make_task(*others: PipelineObject, **fields: FieldValue | list[FieldValue]) -> Task:
    attempt = obj(ATTEMPT, type="ShellCommandActivity", **fields)
    objects = {o.id: o for o in (attempt, *others)}
    return Task(
        task_id="t" * 40, pipeline_id="df-1", attempt_id=ATTEMPT, objects=objects
    )


def node(node_id: str, **fields: FieldValue) -> PipelineObject:
    return obj(node_id, type="S3DataNode", **fields)
