"""Tasks built by hand in the PollForTask wire shape of the API sample: the
attempt (with the component's fields merged in), its instance, component and
Default."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runner.taskmodel import Task

PIPELINE_ID = "df-0937003356ZJEXAMPLE"


COMPONENT_ID = "SayHello"


INSTANCE_ID = "@SayHello_2012-12-12T00:00:00"


ATTEMPT_ID = "@SayHello_2012-12-12T00:00:00_Attempt=1"


Fields = Sequence[tuple[str, str] | tuple[str, str, str]]


def wire_fields(fields: Fields) -> list[dict[str, str]]:
    """("key", "value") is a stringValue; ("key", "ref", "id") a refValue."""
    out = []
    for item in fields:
        if len(item) == 3:
            out.append({"key": item[0], "refValue": item[2]})
        else:
            out.append({"key": item[0], "stringValue": item[1]})
    return out


def make_task(
    attempt: Fields,
    *,
    component: Fields = (),
    default: Fields = (),
    extra: dict[str, Fields] | None = None,
    attempt_id: str = ATTEMPT_ID,
) -> Task:
    """A task shaped like the API sample: the attempt with the component's fields
    merged in and runtime ``@`` fields, its instance, component and Default."""
    objects: dict[str, Any] = {
        attempt_id: {
            "id": attempt_id,
            "name": attempt_id,
            "fields": wire_fields(
                [
                    ("@componentParent", "ref", COMPONENT_ID),
                    ("@instanceParent", "ref", INSTANCE_ID),
                    ("@sphere", "ATTEMPT"),
                    ("@status", "WAITING_FOR_RUNNER"),
                    ("@scheduledStartTime", "2012-12-12T00:00:00"),
                    ("@scheduledEndTime", "2012-12-13T00:00:00"),
                    ("@pipelineId", PIPELINE_ID),
                    ("workerGroup", "wg-12345"),
                    *attempt,
                ]
            ),
        },
        INSTANCE_ID: {
            "id": INSTANCE_ID,
            "name": INSTANCE_ID,
            "fields": wire_fields(
                [("@componentParent", "ref", COMPONENT_ID), ("@sphere", "INSTANCE")]
            ),
        },
        COMPONENT_ID: {
            "id": COMPONENT_ID,
            "name": COMPONENT_ID,
            "fields": wire_fields([("parent", "ref", "Default"), *component]),
        },
        "Default": {"id": "Default", "name": "Default", "fields": wire_fields(default)},
    }
    for obj_id, fields in (extra or {}).items():
        objects[obj_id] = {"id": obj_id, "name": obj_id, "fields": wire_fields(fields)}
    return Task.from_wire(
        {
            "taskId": "x" * 900 + ":1",
            "pipelineId": PIPELINE_ID,
            "attemptId": attempt_id,
            "objects": objects,
        }
    )
