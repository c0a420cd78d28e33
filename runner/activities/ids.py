"""The ids that name an attempt, and how they become folder names and S3 key parts.

Owns: ``component_ids`` (componentId, instanceId, attemptId of a task) and
``safe_path_part``, the one rule that turns an id from the service into a single path
component for ``<work_dir>/<pipelineId>/<componentId>/<instanceId>/<attemptId>``
(the Java runner's log layout) and for S3 keys built the same way.

Must not: touch the filesystem. It computes names; the execution layer creates folders.

Why this way: ids come from pipeline definitions that anyone with PutPipelineDefinition
can write, so an id such as ``../../etc`` must not escape the attempt folder (design.md
§3). Ids that are already safe keep their exact spelling, so the folders match what
people see in the console. An id that had to change, or was cut to length, gets a short
hash of the original, so two distinct ids never end up in the same folder.
"""

from __future__ import annotations

import hashlib
import re

from runner.taskmodel import Ref, Task

#: Linux allows 255 bytes per path component; stay well under it, hash included.
MAX_PART_BYTES = 128
_HASH_CHARS = 10
_DOTS = re.compile(r"\.{2,}")
_ATTEMPT_SUFFIX = re.compile(r"_Attempt=\d+$")
_TIME_SUFFIX = re.compile(r"_\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


def _safe_char(char: str) -> str:
    if char in "/\\" or not char.isprintable():  # NUL, TAB, LF, NBSP... too
        return "_"
    return char


def safe_path_part(text: str) -> str:
    """``text`` as one safe path component: never empty, no ``/``, ``\\``, ``..``,
    NUL or other unprintable character, no leading dot, at most ``MAX_PART_BYTES``
    bytes of UTF-8. Safe input is returned unchanged; changed or cut input gets a
    ``-<hash>`` suffix of the original. Pure and thread-safe."""
    if text.isprintable() and "/" not in text and "\\" not in text:
        part = text  # the common case, without a pass per character
    else:
        part = "".join(_safe_char(char) for char in text)
    part = _DOTS.sub("_", part)
    if part.startswith("."):
        part = "_" + part[1:]
    if part == text and text and len(text.encode()) <= MAX_PART_BYTES:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    suffix = "-" + digest[:_HASH_CHARS]
    budget = MAX_PART_BYTES - len(suffix)
    head = part.encode()[:budget].decode("utf-8", errors="ignore")
    return (head or "_") + suffix


def _ref_id(task: Task, key: str) -> str | None:
    attempt = task.objects.get(task.attempt_id)
    if attempt is None:
        return None
    value = task.get(key, attempt)
    return value.id if isinstance(value, Ref) else None


def raw_component_ids(task: Task) -> tuple[str, str, str]:
    """(componentId, instanceId, attemptId) as the service spells them.

    They come from the attempt's ``@componentParent`` and ``@instanceParent``
    references. Without them, they are derived from the attempt id, which the service
    builds as ``@<componentId>_<scheduledStart>_Attempt=<n>``. Never raises.
    """
    attempt_id = task.attempt_id or "attempt"
    instance_id = _ref_id(task, "@instanceParent")
    if instance_id is None:
        instance_id = _ATTEMPT_SUFFIX.sub("", attempt_id)
    component_id = _ref_id(task, "@componentParent")
    if component_id is None:
        component_id = _TIME_SUFFIX.sub("", instance_id).removeprefix("@")
        component_id = component_id or "component"
    return component_id, instance_id, attempt_id


def component_ids(task: Task) -> tuple[str, str, str]:
    """(componentId, instanceId, attemptId), each made safe by ``safe_path_part``, for
    the attempt folder ``<pipelineId>/<componentId>/<instanceId>/<attemptId>``."""
    component_id, instance_id, attempt_id = raw_component_ids(task)
    return (
        safe_path_part(component_id),
        safe_path_part(instance_id),
        safe_path_part(attempt_id),
    )
