"""Activity types: turn a resolved task into a ``model.Command``.

Owns: the registry of activity types (by the task's ``type`` field) and the public
entry points ``activity_for`` and ``prepare``. Each type lives in its own module
(``shell.py``); shared pieces live in ``context.py`` (protocol, context, task
variables), ``periods.py`` (timeouts) and ``ids.py`` (safe folder names).

Must not: start processes, import boto3 or call the API. The only I/O an activity
does is writing files into the attempt's work folder (a script). The execution layer
does everything else, so every type is testable with a hand-built ``Task``.

Why this way: a registry keyed by type name, so adding a type is one module and one
line here; an unknown type fails the task with ``UnsupportedActivity`` (design.md §4)
instead of crashing the loop.
"""

from __future__ import annotations

from collections.abc import Mapping

from runner.activities.context import (
    Activity,
    ActivityContext,
    activity_env,
    task_variables,
)
from runner.activities.exists import S3_EXISTS, ExistsPrecondition
from runner.activities.ids import component_ids, raw_component_ids, safe_path_part
from runner.activities.periods import (
    attempt_timeout_s,
    parse_period_s,
    report_progress_timeout_s,
)
from runner.activities.shell import ShellCommandActivity, ShellCommandPrecondition
from runner.errors import ActivityError
from runner.taskmodel import Command, Task

__all__ = [
    "REGISTRY",
    "S3_EXISTS",
    "Activity",
    "ActivityContext",
    "ExistsPrecondition",
    "ShellCommandActivity",
    "ShellCommandPrecondition",
    "activity_env",
    "activity_for",
    "attempt_timeout_s",
    "component_ids",
    "parse_period_s",
    "prepare",
    "raw_component_ids",
    "report_progress_timeout_s",
    "safe_path_part",
    "task_variables",
]

#: Activity types dp-runner runs, by the ``type`` field of the task.
REGISTRY: Mapping[str, Activity] = {
    ShellCommandActivity.type_name: ShellCommandActivity(),
    ShellCommandPrecondition.type_name: ShellCommandPrecondition(),
    ExistsPrecondition.type_name: ExistsPrecondition(),
}


def activity_for(task: Task) -> Activity:
    """The activity type named by the task's ``type`` field (looked up through the
    attempt, instance, component, ``parent`` chain and ``Default``).

    Raises ``ActivityError``: ``MissingField`` without a type, ``InvalidField`` when
    it is a reference, ``UnsupportedActivity`` for a type dp-runner does not run,
    ``MissingAttemptObject`` when the task has no attempt object.
    """
    type_name = task.get_str("type")
    if type_name is None or not type_name.strip():
        raise ActivityError(
            "MissingField", f"the task's attempt {task.attempt_id!r} has no 'type'"
        )
    activity = REGISTRY.get(type_name)
    if activity is None:
        supported = ", ".join(sorted(REGISTRY))
        raise ActivityError(
            "UnsupportedActivity",
            f"activity type {type_name!r:.200} is not supported by dp-runner; "
            f"supported: {supported}",
        )
    return activity


def prepare(task: Task, ctx: ActivityContext) -> Command:
    """``activity_for(task).prepare(task, ctx)``: raises ``ActivityError`` for a bad
    definition and ``SpawnError`` when the script cannot be written."""
    return activity_for(task).prepare(task, ctx)
