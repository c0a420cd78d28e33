"""The management calls that ``run --local`` submits its definition with.

Owns: CreatePipeline, PutPipelineDefinition, ActivatePipeline and QueryObjects, named
as boto3 names them, so that they grep together with the local service's operations.
They go through ``Client.call`` and ``Client.pages``: the same translation, timeouts
and retries as every other call.

Must not: be used by the worker, which needs none of them.

Why apart from ``client.py``: the worker's operations and the retry machinery are
what that module is about; these four only serve the demo and the tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runner.aws.client import Client


def create_pipeline(client: Client, name: str, unique_id: str) -> str:
    """Create a pipeline (the same ``unique_id`` finds the same one); its id."""
    answer = client.call("CreatePipeline", {"name": name, "uniqueId": unique_id})
    return str(answer["pipelineId"])


def put_pipeline_definition(
    client: Client,
    pipeline_id: str,
    pipeline_objects: Sequence[Mapping[str, Any]],
    parameter_objects: Sequence[Mapping[str, Any]] = (),
    parameter_values: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The raw answer (``errored``, ``validationErrors``, ``validationWarnings``).
    An errored definition is returned, not raised: the caller shows the validation
    errors to the user, which no exception message does well."""
    request = {
        "pipelineId": pipeline_id,
        "pipelineObjects": list(pipeline_objects),
        "parameterObjects": list(parameter_objects),
        "parameterValues": list(parameter_values),
    }
    return client.call("PutPipelineDefinition", request)


def activate_pipeline(
    client: Client,
    pipeline_id: str,
    parameter_values: Sequence[Mapping[str, Any]] = (),
) -> None:
    request = {"pipelineId": pipeline_id, "parameterValues": list(parameter_values)}
    client.call("ActivatePipeline", request)


def query_objects(
    client: Client,
    pipeline_id: str,
    sphere: str,
    query: Mapping[str, Any] | None = None,
) -> list[str]:
    """Every matching id, following ``marker`` to the last page."""
    request: dict[str, Any] = {"pipelineId": pipeline_id, "sphere": sphere}
    if query is not None:
        request["query"] = dict(query)
    pages = client.pages("QueryObjects", request)
    return [object_id for page in pages for object_id in page.get("ids", [])]
