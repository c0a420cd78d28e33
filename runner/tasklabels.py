"""The labels a task is counted under in ``/metrics``, and its queue wait.

Owns: ``arrival`` (a task's worker group, activity type and how long it waited
since its instance was scheduled), ``ending`` (how it ended: its outcome label,
its error class, its stop reason), and the closed sets those labels come from
(``ACTIVITY_TYPES``, ``ERROR_CLASSES``, ``ZERO_OUTCOMES``), which ``metrics``
starts every counter from at 0.

Must not: log, raise on a malformed task (it runs on exactly those, before the
execution has looked at it), or let a label take a value outside its set: a label
value made from a task's text would be a new series for each new text.

Why apart from ``workerbooks``: the books count what they are given and know
nothing of tasks; reading the wire task and the verdict is this module's job, so
the worker calls it once when a task arrives and once when it ends.

Queue wait (issue 27): from the instance's ``@scheduledStartTime`` (its
``@scheduledEndTime`` on a ``timeseries`` schedule, which runs an interval at its
end) to the moment the task thread takes the task and acknowledges it. A fleet
that is too small shows it here first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.activities import REGISTRY
from runner.errors import RunnerError
from runner.task.execution import ExecutionResult
from runner.taskmodel import Task

#: Every activity type a task can be counted under; one dp-runner does not run
#: (or a task without a readable type) is ``unsupported``.
UNSUPPORTED = "unsupported"
ACTIVITY_TYPES = (*sorted(REGISTRY), UNSUPPORTED)
#: Outcomes every (worker group, activity type) starts from at 0. The rarer ones
#: (``false`` for preconditions, the stop reasons, ``dropped``, ``crashed``) get
#: their series when they first happen.
ZERO_OUTCOMES = ("finished", "failed")
#: A failed task's errorId, reduced to a class: the errorId's prefix before ``:``
#: when it has one (``ExitCode:3``, ``Signal:SIGKILL``, ``SqlError:23505``), else
#: the class this table gives it, else ``Other``.
_CLASS_OF_ID: Mapping[str, str] = {
    "AttemptTimeout": "Timeout",
    "RunnerShutdown": "Shutdown",
    "MalformedTask": "InvalidTask",
    "MalformedTaskObject": "InvalidTask",
    "MissingAttemptObject": "InvalidTask",
    "MissingField": "InvalidTask",
    "InvalidField": "InvalidTask",
    "UnsupportedActivity": "InvalidTask",
    "DatabaseLookupFailed": "Database",
    "SpawnError": "Spawn",
    "RunnerError": "RunnerBug",
    "NoOutcome": "RunnerBug",
}
_PREFIXED = ("ExitCode", "Signal", "SqlError")
_STAGING_PREFIXES = ("S3", "Staging")
OTHER = "Other"
ERROR_CLASSES = tuple(sorted({*_PREFIXED, *_CLASS_OF_ID.values(), "Staging", OTHER}))
#: ``@scheduledStartTime`` as the service writes it (UTC).
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


@dataclass(frozen=True, slots=True)
class Arrival:
    """A task as it is taken: its labels, and its queue wait (None when its
    instance carries no schedule the runner can read)."""

    worker_group: str
    activity_type: str
    queue_wait_s: float | None


@dataclass(frozen=True, slots=True)
class Ending:
    """How a task ended, as labels: the outcome, the error class of a failure,
    and the stop reason of a stopped attempt."""

    outcome: str
    error_class: str | None
    stop_reason: str | None


def arrival(worker_group: str, raw_task: Mapping[str, Any], now: float) -> Arrival:
    """The labels of a task taken at ``now`` (``time.time()``). Never raises."""
    try:
        task = Task.from_wire(raw_task)
        kind = task.get_str("type")
        wait_s = _queue_wait_s(task, now)
    except (RunnerError, KeyError, TypeError, ValueError, AttributeError):
        return Arrival(worker_group, UNSUPPORTED, None)  # the execution says why
    if kind is None or kind not in REGISTRY:
        kind = UNSUPPORTED
    return Arrival(worker_group, kind, wait_s)


def _queue_wait_s(task: Task, now: float) -> float | None:
    timeseries = (task.get_str("scheduleType") or "").lower() == "timeseries"
    text = task.get_str("@scheduledEndTime" if timeseries else "@scheduledStartTime")
    if not text:
        return None
    scheduled = dt.datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=dt.UTC)
    # a clock ahead of the service's, or an on-demand run scheduled at its
    # activation: never a negative wait in the histogram
    return max(0.0, now - scheduled.timestamp())


def ending(result: ExecutionResult | None) -> Ending:
    """The labels of a task's end; ``crashed`` when the execution raised."""
    if result is None:
        return Ending("crashed", "RunnerBug", None)
    reason = result.reason.value if result.reason else None
    error_id = result.status.error_id if result.status is not None else None
    failed = result.label == "failed"
    return Ending(result.label, error_class(error_id) if failed else None, reason)


def error_class(error_id: str | None) -> str:
    """The class of a failed task's errorId (``ERROR_CLASSES``)."""
    if not error_id:
        return OTHER
    prefix = error_id.split(":", 1)[0]
    if prefix in _PREFIXED:
        return prefix
    if error_id.startswith(_STAGING_PREFIXES):
        return "Staging"
    return _CLASS_OF_ID.get(error_id, OTHER)
