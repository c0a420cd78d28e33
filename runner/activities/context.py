"""What every activity type shares: the ``Activity`` protocol, its context, and the
environment variables every task gets.

Owns: ``Activity`` (the protocol each activity type implements), ``ActivityContext``
(what the caller hands in), ``task_variables`` and ``activity_env``.

Must not: start processes or read the runner's own environment. The supervisor adds
the runner's environment (minus ``NOTIFY_SOCKET`` and ``DP_RUNNER_*``) under what is
returned here.

Why this way: a Protocol, because there are several implementations (design.md §4
registry). The variables are named ``DP_*`` and never ``DP_RUNNER_*``, which is
reserved for the runner and scrubbed from the child's environment.

Task variables (set only when the value is known):

================================  ===============================================
``DP_PIPELINE_ID``                the pipeline id (``df-...``)
``DP_COMPONENT_ID``               the activity's component id (``SayHello``)
``DP_INSTANCE_ID``                the instance id (``@SayHello_2012-12-12T00:00:00``)
``DP_ATTEMPT_ID``                 the attempt id (``..._Attempt=1``)
``DP_SCHEDULED_START_TIME``       ``@scheduledStartTime``, ``YYYY-MM-DDTHH:MM:SS`` UTC
``DP_SCHEDULED_END_TIME``         ``@scheduledEndTime``, same format
``DP_WORKER_GROUP``               the ``workerGroup`` the task was polled for
================================  ===============================================

Secrets (``*``-fields) are never put in the environment: a child's environment is
readable by anything running as the same user and is easily logged by scripts. A type
that needs one passes it explicitly, and says so in its docstring.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from structlog.typing import FilteringBoundLogger

from runner.activities.ids import raw_component_ids
from runner.activities.plan import Plan
from runner.attempt import AttemptPaths
from runner.aws.s3 import S3
from runner.runas import RunAs
from runner.taskmodel import Task


@dataclass(frozen=True, slots=True)
class ActivityContext:
    """What the caller provides to ``Activity.plan``.

    ``paths`` is the attempt's folder; its ``workdir`` exists (the caller creates it)
    and the process runs in it. ``s3`` is what the plan's transfers use, and ``stop``
    the attempt's stop event, which they pass to it (a retry backoff ends at once;
    wait on it, never set it). ``region`` goes into ``AWS_REGION`` and
    ``AWS_DEFAULT_REGION`` when set. ``run_as``: the user the process will run as
    (the runner is root), if any. ``log`` is the attempt's logger, for what a
    transfer finds out (``database_resolved``).
    """

    paths: AttemptPaths
    s3: S3
    stop: threading.Event = field(default_factory=threading.Event)
    region: str | None = None
    run_as: RunAs | None = None
    log: FilteringBoundLogger = field(default_factory=structlog.get_logger)


class Activity(Protocol):
    """One activity type: turns a resolved task into a ``Plan``."""

    def plan(self, task: Task, ctx: ActivityContext) -> Plan:
        """Return the steps of ``task``. May write files into the attempt's folder;
        never runs a step. Raises ``ActivityError`` for a bad definition (a
        ``MissingField`` may be retried once the task's missing objects are fetched)
        and ``SpawnError`` when a file it writes cannot be written."""
        ...


def _field_text(task: Task, key: str) -> str | None:
    attempt = task.objects.get(task.attempt_id)
    if attempt is None:
        return None
    value = task.get(key, attempt)
    return value if isinstance(value, str) else None


def task_variables(task: Task) -> dict[str, str]:
    """The pipeline and attempt variables every task gets (table in the module
    docstring). Pure; never raises; values never contain NUL."""
    component_id, instance_id, attempt_id = raw_component_ids(task)
    found = {
        "DP_PIPELINE_ID": task.pipeline_id,
        "DP_COMPONENT_ID": component_id,
        "DP_INSTANCE_ID": instance_id,
        "DP_ATTEMPT_ID": attempt_id if task.attempt_id else None,
        "DP_SCHEDULED_START_TIME": _field_text(task, "@scheduledStartTime"),
        "DP_SCHEDULED_END_TIME": _field_text(task, "@scheduledEndTime"),
        "DP_WORKER_GROUP": _field_text(task, "workerGroup"),
    }
    return {name: value.replace("\0", "") for name, value in found.items() if value}


def activity_env(task: Task, ctx: ActivityContext) -> dict[str, str]:
    """``task_variables`` plus the region variables when ``ctx.region`` is set."""
    env = task_variables(task)
    if ctx.region:
        env["AWS_REGION"] = ctx.region
        env["AWS_DEFAULT_REGION"] = ctx.region
    return env
