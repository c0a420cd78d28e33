"""Records of the local service's state: pipelines and runs (instances, attempts).

Owns: the plain mutable records the scheduler works on, their status names (as
AWS spells them) and their JSON form for the store.

Must not: do I/O or locking; the engine mutates these only under its lock.

Why: one record type per concept keeps persistence a matter of `to_json` and
`from_json`, so a restart on the same SQLite file rebuilds exactly what was there.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

# A pipeline object's field: (key, value, is_ref). A key that repeats is a list.
Field = tuple[str, str, bool]

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"

WAITING_ON_DEPENDENCIES = "WAITING_ON_DEPENDENCIES"
WAITING_FOR_RUNNER = "WAITING_FOR_RUNNER"
RUNNING = "RUNNING"
FINISHED = "FINISHED"
FAILED = "FAILED"
CASCADE_FAILED = "CASCADE_FAILED"
CANCELED = "CANCELED"
TIMEDOUT = "TIMEDOUT"
PAUSED = "PAUSED"
FALSE = "FALSE"  # an attempt of a precondition whose check came back false
CREATING = "CREATING"  # a resource being started for the activities that need it
TERMINAL = frozenset({FINISHED, FAILED, CASCADE_FAILED, CANCELED, TIMEDOUT, FALSE})
FAILURES = frozenset({FAILED, CASCADE_FAILED, CANCELED, TIMEDOUT})

# What an instance is an instance of (`Run.kind`).
ACTIVITY = "activity"
PRECONDITION = "precondition"
DATANODE = "datanode"
RESOURCE = "resource"


def format_time(moment: dt.datetime) -> str:
    return moment.strftime(TIME_FORMAT)


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=dt.UTC)


def wall_time(epoch_s: float) -> str:
    return format_time(dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC))


@dataclass
class Pipeline:
    """One pipeline with its definitions (raw API form) and activation state."""

    id: str
    name: str
    unique_id: str
    description: str
    creator: str
    created_at: float
    tags: dict[str, str] = field(default_factory=dict)
    state: str = "PENDING"
    deleted: bool = False
    definition: dict[str, Any] | None = None  # latest: objects, parameters, values
    errored: bool = False
    active: dict[str, Any] | None = None  # the definition the last activation used
    activation_values: list[dict[str, Any]] | None = None
    activated_at: float | None = None
    latest_run_time: str | None = None
    version: int = 0
    cursors: dict[str, int] = field(default_factory=dict)  # component -> next slot
    paused: list[str] = field(default_factory=list)
    seq: int = 0

    def to_json(self) -> str:
        return json.dumps(vars(self))

    @classmethod
    def from_json(cls, text: str) -> Pipeline:
        return cls(**json.loads(text))


@dataclass
class Run:
    """An instance (sphere INSTANCE) or an attempt (sphere ATTEMPT) of a component.

    Times named `*_at`/`deadline*` are wall-clock epoch seconds (scaled windows
    already applied), so leases survive a restart; the `@...Time` fields are the
    calendar strings AWS shows.
    """

    id: str
    pipeline_id: str
    sphere: str
    component: str
    status: str
    scheduled_start: str
    scheduled_end: str
    kind: str = ACTIVITY  # ACTIVITY | PRECONDITION | DATANODE | RESOURCE
    instance: str = ""  # an attempt's instance
    worker_group: str = ""
    depends: list[str] = field(default_factory=list)  # components waited on
    preconditions: list[str] = field(default_factory=list)  # instance ids
    resource: str = ""  # an activity instance: the resource instance it runs on
    attempt_count: int = 0
    tries_left: int = 0
    head_attempt: str = ""
    actual_start: str = ""
    actual_end: str = ""
    ready_at: float = 0.0  # instance: when the next attempt may start
    # attempt: lease deadline; precondition instance: preconditionTimeout;
    # resource instance: terminateAfter
    deadline: float = 0.0
    attempt_deadline: float = 0.0  # attempt: attemptTimeout on the service side
    task_id: str = ""
    acked: bool = False
    cancel_requested: bool = False
    paused_from: str = ""
    error_id: str = ""
    error_message: str = ""
    error_stack: str = ""
    hostname: str = ""
    fields: list[list[Any]] = field(default_factory=list)  # evaluated component fields
    progress: list[list[Any]] = field(default_factory=list)  # runner-reported fields
    seq: int = 0

    def to_json(self) -> str:
        return json.dumps(vars(self))

    @classmethod
    def from_json(cls, text: str) -> Run:
        return cls(**json.loads(text))

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def runtime_of(instance: Run, now: float) -> dict[str, object]:
    """The runtime fields (`@scheduledStartTime`...) an expression of the run's
    component may name."""
    return {
        "@scheduledStartTime": parse_time(instance.scheduled_start),
        "@scheduledEndTime": parse_time(instance.scheduled_end),
        "@actualStartTime": parse_time(instance.actual_start or wall_time(now)),
        "@actualEndTime": parse_time(instance.actual_end or wall_time(now)),
        "@pipelineId": instance.pipeline_id,
        "@status": instance.status,
        "@attemptCount": instance.attempt_count,
        "@triesLeft": instance.tries_left,
    }
