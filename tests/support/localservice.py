"""Helpers for the local service's own tests (tests/localservice/): boto3 clients
with retries off, wire-shaped objects, running a pipeline, waiting, reading
fields, and a loopback port that nothing listens on."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config

TIME_SCALE = 0.01


def make_client(endpoint_url: str, *, read_timeout: float = 10) -> Any:
    return boto3.client(
        "datapipeline",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - dummy credentials
        config=Config(
            retries={"total_max_attempts": 1},
            read_timeout=read_timeout,
            connect_timeout=5,
        ),
    )


def shell(
    obj_id: str, command: str = "true", group: str = "wg", **extra: str
) -> dict[str, Any]:
    """A ShellCommandActivity; extra fields as key=value (ref_KEY for refs)."""
    fields = [
        {"key": "type", "stringValue": "ShellCommandActivity"},
        {"key": "command", "stringValue": command},
        {"key": "workerGroup", "stringValue": group},
    ]
    for key, value in extra.items():
        if key.startswith("ref_"):
            fields.append({"key": key[4:], "refValue": value})
        else:
            fields.append({"key": key, "stringValue": value})
    return {"id": obj_id, "name": obj_id, "fields": fields}


DEFAULT = {
    "id": "Default",
    "name": "Default",
    "fields": [{"key": "scheduleType", "stringValue": "ondemand"}],
}


def run_pipeline(dp: Any, objects: list[dict[str, Any]], **put: Any) -> str:
    """Create, put (asserting no errors) and activate; return the pipeline id."""
    pipeline_id: str = dp.create_pipeline(name="p", uniqueId=str(time.monotonic_ns()))[
        "pipelineId"
    ]
    answer = dp.put_pipeline_definition(
        pipelineId=pipeline_id, pipelineObjects=[DEFAULT, *objects], **put
    )
    assert not answer["errored"], answer
    dp.activate_pipeline(pipelineId=pipeline_id)
    return pipeline_id


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll condition until truthy (returns it) or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.02)


def fields_of(obj: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for field in obj["fields"]:
        out.setdefault(field["key"], []).append(
            field.get("stringValue", field.get("refValue", ""))
        )
    return out


def instance_status(dp: Any, pipeline_id: str, instance_id: str) -> str:
    obj = dp.describe_objects(pipelineId=pipeline_id, objectIds=[instance_id])
    return fields_of(obj["pipelineObjects"][0])["@status"][0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
