"""Pipelines on the local service, as the suite's tests drive them: definition
objects (``default_object``, ``shell``), ``submit`` (create, put, activate),
reading instances back, and the SetTaskStatus requests the service accepted."""

from __future__ import annotations

import os
from typing import Any

from runner.localservice import LocalService
from runner.pipelinefile import definition_from_json
from tests.support.waiting import HANG_GUARD_S, wait_for

REGION = "us-east-1"


TIME_SCALE = 0.01


def submit(dp: Any, objects: list[dict[str, Any]], *, activate: bool = True) -> str:
    """Create a pipeline from definition-file objects, put it and activate it."""
    defn = definition_from_json({"objects": objects})
    pipeline_id = str(
        dp.create_pipeline(name="test", uniqueId=os.urandom(8).hex())["pipelineId"]
    )
    answer = dp.put_pipeline_definition(
        pipelineId=pipeline_id, pipelineObjects=defn.pipeline_objects
    )
    assert not answer["errored"], answer
    if activate:
        dp.activate_pipeline(pipelineId=pipeline_id)
    return pipeline_id


def default_object(worker_group: str = "wg", **fields: Any) -> dict[str, Any]:
    return {
        "id": "Default",
        "name": "Default",
        "scheduleType": "ondemand",
        "failureAndRerunMode": "CASCADE",
        "workerGroup": worker_group,
        **fields,
    }


def shell(obj_id: str, command: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": obj_id,
        "name": obj_id,
        "type": "ShellCommandActivity",
        "command": command,
        **fields,
    }


def fields_of(obj: dict[str, Any]) -> dict[str, str]:
    return {
        f["key"]: f.get("stringValue", f.get("refValue", "")) for f in obj["fields"]
    }


def instances(dp: Any, pipeline_id: str) -> dict[str, dict[str, str]]:
    """Every instance of a pipeline: id -> its fields."""
    ids = dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE")["ids"]
    if not ids:
        return {}
    objs = dp.describe_objects(pipelineId=pipeline_id, objectIds=ids)["pipelineObjects"]
    return {obj["id"]: fields_of(obj) for obj in objs}


def wait_instances(
    dp: Any, pipeline_id: str, statuses: set[str], timeout: float = HANG_GUARD_S
) -> dict[str, dict[str, str]]:
    """Wait until every instance has one of ``statuses``."""

    def ended() -> dict[str, dict[str, str]] | None:
        found = instances(dp, pipeline_id)
        if found and all(f.get("@status") in statuses for f in found.values()):
            return found
        return None

    return wait_for(ended, timeout, f"instances of {pipeline_id} in {statuses}")


def statuses_sent(service: LocalService) -> list[dict[str, Any]]:
    """The SetTaskStatus requests the service accepted."""
    return [c.request for c in service.calls("SetTaskStatus") if c.error is None]


def sent(service: LocalService, task_id: str | None = None) -> list[dict[str, Any]]:
    return [
        c.request
        for c in service.calls("SetTaskStatus")
        if c.error is None and task_id in (None, c.request["taskId"])
    ]


def instance_of(dp: Any, pipeline_id: str, component: str) -> str:
    def find() -> str | None:
        for instance_id, fields in instances(dp, pipeline_id).items():
            if fields.get("@componentParent") == component:
                return instance_id
        return None

    found: str = wait_for(find, 10, f"an instance of {component}")
    return found
