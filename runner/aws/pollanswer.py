"""A PollForTask answer too malformed for botocore, mended so that the task fails
cleanly instead of the poll failing forever.

Owns: ``mend_poll_answer``, a ``before-parse`` handler of the PollForTask operation.
botocore's parser raises inside the call when a task's ``objects`` is not a map, an
object's ``fields`` is not a list or a field is not an object: the task would never
be acknowledged, and the poller would back off as from an outage, over and over.
The handler checks the shape first. A malformed task keeps the ids that can be read
and loses its objects, and the problem goes with it under ``MALFORMED`` (botocore
merges it into the parsed answer), so the runner acknowledges it and fails it
``MalformedTask``, naming the problem. A task without a readable ``taskId`` cannot
be acknowledged: the answer becomes an empty poll, with the problem.

Must not: decide anything about the task beyond its shape, or log (``client.py``
does); it never raises: a body that is not JSON is ``refuse_cut_answer``'s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

#: Where the problem travels in the parsed answer and in the raw task handed out.
MALFORMED = "dpRunnerMalformed"
_IDS = ("taskId", "pipelineId", "attemptId")


def mend_poll_answer(
    response_dict: dict[str, Any],
    customized_response_dict: dict[str, Any],
    **_: Any,
) -> None:
    """Replace a malformed task in the answer's body by its ids alone, and put
    what was wrong under ``MALFORMED``."""
    body = response_dict.get("body")
    if not isinstance(body, bytes) or response_dict.get("status_code", 200) >= 300:
        return
    try:
        answer = json.loads(body) if body.strip() else {}
    except ValueError:
        return
    task = answer.get("taskObject") if isinstance(answer, dict) else None
    if task is None:
        return
    problem = shape_problem(task)
    if problem is None:
        return
    ids = (
        {k: task[k] for k in _IDS if isinstance(task.get(k), str) and task[k]}
        if isinstance(task, Mapping)
        else {}
    )
    mended = {"taskObject": {**ids, "objects": {}}} if "taskId" in ids else {}
    response_dict["body"] = json.dumps(mended).encode()
    headers = response_dict.get("headers")
    if headers is not None and "content-length" in headers:  # the body it promised
        headers["content-length"] = str(len(response_dict["body"]))
    customized_response_dict[MALFORMED] = problem


def shape_problem(task: Any) -> str | None:
    """What in ``task`` botocore's parser cannot take, or None when it can."""
    if not isinstance(task, Mapping):
        return f"taskObject is {_kind(task)}, not an object"
    objects = task.get("objects", {})
    if not isinstance(objects, Mapping):
        return f"objects is {_kind(objects)}, not a map"
    for obj_id, obj in objects.items():
        problem = _object_problem(obj)
        if problem is not None:
            return f"object {str(obj_id)[:100]!r}: {problem}"
    return None


def _object_problem(obj: Any) -> str | None:
    if not isinstance(obj, Mapping):
        return f"it is {_kind(obj)}, not an object"
    fields = obj.get("fields", [])
    if not isinstance(fields, list):
        return f"fields is {_kind(fields)}, not a list"
    for index, item in enumerate(fields):
        if not isinstance(item, Mapping):
            return f"field #{index + 1} is {_kind(item)}, not an object"
    return None


def _kind(value: Any) -> str:
    names = {list: "a list", str: "a string", dict: "an object", type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")
