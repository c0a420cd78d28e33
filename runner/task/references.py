"""Reading a task as AWS hands it out: objects fetched only when they are needed.

Owns: ``plan``, which asks the activity for its plan and, only when a required field
is missing and the task names objects it does not carry, fetches those objects
(DescribeObjects, through the caller's ``fetch``) and asks again: the objects the
task names, then the objects those name, one batched fetch per level, at most
``MAX_LEVELS`` levels (a CopyActivity's SqlDataNode, then the node's database).

Must not: wait on its own. ``fetch`` is the execution's: a step under the attempt's
stop flag, so a hung or throttled DescribeObjects never holds a stop.

Why (design.md §4): AWS flattens every inherited field into the attempt object it
hands out (the API reference's PollForTask sample carries ``schedule`` and
``workerGroup``, which definitions set on Default), and the objects its value fields
name (``input``, ``output``, ``database``) travel with it. So the task is read as it
came, and a lookup that still walks ``@instanceParent``, ``@componentParent``,
``parent`` and ``Default`` through the carried objects finds every field. AWS allows
2 DescribeObjects calls a second per account (burst 100): a fleet that made one per
task would throttle itself, and a task that carries what it needs makes none. An
optional field that is missing is simply absent; only a required one (the
activity's ``MissingField``) is worth a fetch, and if that fetch fails after its
retries the task fails ``UnresolvedReference``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from structlog.typing import FilteringBoundLogger

from runner import activities
from runner.aws.client import Client
from runner.errors import ActivityError, ServiceError
from runner.taskmodel import Task

#: How many levels of references are fetched at most (each level one fetch).
MAX_LEVELS = 3
#: ``fetch(pipeline_id, object_ids)``: the objects, as DescribeObjects returns them.
Fetch = Callable[[str, list[str]], list[dict[str, Any]]]
#: ``step(name, fn)``: ``fn`` run as one of the attempt's steps (``StepRunner.step``).
RunStep = Callable[[str, Callable[[], list[dict[str, Any]]]], list[dict[str, Any]]]


def fetcher(client: Client, step: RunStep, stop: threading.Event) -> Fetch:
    """DescribeObjects for one attempt, as a step under its stop flag (``stop``
    also ends the call's retry backoff)."""

    def fetch(pipeline_id: str, ids: list[str]) -> list[dict[str, Any]]:
        return step(
            "describe_objects",
            lambda: client.describe_objects(pipeline_id, ids, interrupt=(stop,)),
        )

    return fetch


def plan(
    task: Task,
    raw: Mapping[str, Any],
    ctx: activities.ActivityContext,
    *,
    fetch: Fetch,
    log: FilteringBoundLogger,
) -> tuple[Task, activities.Plan]:
    """The activity's plan for ``task`` (from ``raw``, its wire form), and the task
    it was made from: ``task`` itself, or ``task`` with its missing objects fetched,
    level by level (at most ``MAX_LEVELS`` fetches). Raises ``ActivityError``
    (``UnresolvedReference`` when a fetch failed)."""
    objects = dict(raw.get("objects") or {})
    for _level in range(MAX_LEVELS):
        try:
            return task, activities.plan(task, ctx)
        except ActivityError as exc:
            missing = task.missing_refs()
            if exc.error_id != "MissingField" or not missing:
                raise
        fetched = _fetch(fetch, task.pipeline_id, missing)
        objects.update({str(obj["id"]): obj for obj in fetched})
        log.info("task_objects_fetched", count=len(fetched), level=_level + 1)
        task = Task.from_wire({**raw, "objects": objects})
    return task, activities.plan(task, ctx)


def _fetch(fetch: Fetch, pipeline_id: str, missing: list[str]) -> list[dict[str, Any]]:
    """One level's objects; ``UnresolvedReference`` when the fetch failed."""
    try:
        return fetch(pipeline_id, missing)
    except ServiceError as exc:
        raise ActivityError(
            "UnresolvedReference",
            f"a required field is missing and the objects the task refers to "
            f"({', '.join(missing[:5])}) could not be fetched: {exc.code}",
        ) from exc
