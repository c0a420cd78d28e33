"""Activity types: turn a resolved task into a ``Plan`` of steps.

Owns: the registry of activity types (by the task's ``type`` field) and the public
entry points ``activity_for`` and ``plan``. Each type lives in its own module
(``shell.py``, ``exists.py``, ``sql.py``, ``copy.py``, ``redshiftcopy.py``); shared
pieces live in ``plan.py`` (the step types), ``context.py`` (protocol, context,
task variables), ``staging.py`` (the S3 side), ``periods.py`` (timeouts),
``ids.py`` (safe folder names) and ``sqlnames.py`` (names put into SQL). The
database types read their objects in ``database.py`` and run the database child
(``runner/dbchild/``, a package of its own) as a process (``dbprocess.py``); only
that child imports the drivers.

Must not: run a step, start a process or call the Data Pipeline API. The only I/O
while planning is writing files into the attempt's folder (a script); the transfers
a plan holds run later, when ``task/execution.py`` runs them under the stop flag, so
every type is testable with a hand-built ``Task``.

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
from runner.activities.copy import CopyActivity
from runner.activities.exists import ExistsPrecondition
from runner.activities.ids import component_ids, raw_component_ids, safe_path_part
from runner.activities.periods import (
    attempt_timeout_s,
    parse_period_s,
    report_progress_timeout_s,
)
from runner.activities.plan import Check, Plan, Process, Transfer
from runner.activities.redshiftcopy import RedshiftCopyActivity
from runner.activities.shell import ShellCommandActivity, ShellCommandPrecondition
from runner.activities.sql import SqlActivity
from runner.errors import ActivityError
from runner.taskmodel import Task

__all__ = [
    "REGISTRY",
    "Activity",
    "ActivityContext",
    "Check",
    "CopyActivity",
    "ExistsPrecondition",
    "Plan",
    "Process",
    "RedshiftCopyActivity",
    "ShellCommandActivity",
    "ShellCommandPrecondition",
    "SqlActivity",
    "Transfer",
    "activity_env",
    "activity_for",
    "attempt_timeout_s",
    "component_ids",
    "parse_period_s",
    "plan",
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
    SqlActivity.type_name: SqlActivity(),
    CopyActivity.type_name: CopyActivity(),
    RedshiftCopyActivity.type_name: RedshiftCopyActivity(),
}

_ON_EMR = (
    "not supported by dp-runner: it runs on an EmrCluster (runsOn), where AWS "
    "installs its own runner"
)
#: Data Pipeline types dp-runner does not run, and why (docs/activities.md's table).
NOT_RUN: Mapping[str, str] = {
    "EmrActivity": _ON_EMR,
    "HadoopActivity": _ON_EMR,
    "HiveActivity": _ON_EMR,
    "HiveCopyActivity": _ON_EMR,
    "PigActivity": _ON_EMR,
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
        why = NOT_RUN.get(type_name, "not supported by dp-runner")
        raise ActivityError(
            "UnsupportedActivity",
            f"activity type {type_name!r:.200} is {why}; supported: {supported}",
        )
    return activity


def plan(task: Task, ctx: ActivityContext) -> Plan:
    """``activity_for(task).plan(task, ctx)``: raises ``ActivityError`` for a bad
    definition and ``SpawnError`` when the script cannot be written."""
    return activity_for(task).plan(task, ctx)
