"""What ``dp-runner exec`` submits: a definition cut down to one instance of one object.

Owns: ``cut``, which turns a whole definition and an ``--object`` into a definition
of one slot (``Slot``): the target (an activity, or a precondition carried by a
generated activity that nobody runs), the objects it refers to (data nodes,
databases, data formats, its ``parent`` chain, ``Default``), the parameters and
their values, and a generated Schedule that starts at ``--scheduled-start`` with
the target's own ``period`` and one occurrence. Also ``scheduled_start``, which
reads the ``--scheduled-start`` time, and ``masked_from_environment``, which takes
the values of masked ``*my…`` parameters from ``DP_PARAMETER_<name>`` variables.

What the cut drops, because a scheduler that calls ``exec`` owns it: every other
activity, every ``dependsOn`` (the scheduler orders the tasks), every
``precondition`` but the target's carrier (the scheduler checks each precondition
with an ``exec`` of its own), ``onFail``, ``onSuccess`` and ``onLateAction`` (its
alerts), ``runsOn`` and every ``workerGroup`` (the target runs on this host, in a
group of ``exec``'s own), and retries (``maximumRetries`` is 0: the scheduler
retries). ``scheduleType`` becomes ``cron``: the slot runs when ``exec`` is called,
not at the end of its period, and ``@scheduledStartTime`` and ``@scheduledEndTime``
are the slot's either way.

Must not: evaluate an expression (the embedded service does, as AWS does), talk to
a service, or import anything but the standard library and ``pipelinefile``.

Why a cut and not the whole definition: the service would schedule every
activity and wait on every dependency; the one instance ``exec`` asks for would
then wait on work a scheduler runs elsewhere.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.pipelinefile import Definition

#: Keys whose references the cut never follows, and drops from every object kept.
DROPPED_KEYS = frozenset(
    {
        "dependsOn",
        "precondition",
        "schedule",
        "runsOn",
        "workerGroup",
        "onFail",
        "onSuccess",
        "onLateAction",
        "scheduleType",
        "maximumRetries",
    }
)
#: The types a precondition object can have (DG dp-object-preconditions).
PRECONDITION_TYPES = frozenset(
    {
        "ShellCommandPrecondition",
        "Exists",
        "S3KeyExists",
        "S3PrefixNotEmpty",
        "DynamoDBTableExists",
        "DynamoDBDataExists",
        "RdsSqlPrecondition",
    }
)
#: Preconditions that a runner checks (the others, the service checks itself).
RUNNER_PRECONDITION_TYPES = frozenset({"ShellCommandPrecondition", "Exists"})
DEFAULT_PERIOD = "1 day"
#: ``DP_PARAMETER_myPassword`` holds the value of ``*myPassword``.
MASKED_ENV_PREFIX = "DP_PARAMETER_"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


class SlotError(ValueError):
    """The definition cannot be cut for this object: the message says why."""


class ExecUsageError(SlotError):
    """The command line asks for what the definition cannot give: an ``--object``
    that is not an activity or a precondition, a masked value on the command
    line (a usage error, exit 2)."""


@dataclass(frozen=True, slots=True)
class Slot:
    """The one-slot definition, and the ids ``exec`` watches in it."""

    definition: Definition
    target: str
    #: True when the target is a precondition (its first check is the answer).
    precondition: bool
    #: The instance the service makes for the target in the slot.
    instance_id: str
    #: The worker group of ``exec``'s own runner, which the target goes to.
    worker_group: str


def scheduled_start(text: str) -> str:
    """``--scheduled-start`` as the service writes times (UTC, to the second):
    ISO 8601, with an offset or ``Z``, or without one for UTC. ValueError else."""
    moment = dt.datetime.fromisoformat(text.strip())
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0).strftime(TIME_FORMAT)


def cut(defn: Definition, target: str, start: str, worker_group: str) -> Slot:
    """The definition of one instance of ``target`` at ``start`` (see the module
    docstring), served by ``worker_group``. ``ExecUsageError`` when ``target`` is not
    an activity or a precondition; ``SlotError`` for a reference to no object."""
    objects = {obj["id"]: obj for obj in defn.pipeline_objects}
    if target not in objects:
        raise ExecUsageError(f"--object {target}: the definition has no such object")
    kind = _type(objects, target)
    precondition = kind in PRECONDITION_TYPES
    if not precondition and not kind.endswith("Activity"):
        raise ExecUsageError(
            f"--object {target}: a {kind or 'typeless object'}, not an activity "
            "or a precondition"
        )
    period = _period(objects, target)
    kept = _closure(objects, target)
    ids = set(objects)
    schedule_id = _fresh("DpRunnerExecSchedule", ids)
    out = [_stripped(objects[obj_id]) for obj_id in kept if obj_id != "Default"]
    out.append(_default(objects.get("Default"), schedule_id))
    out.append(
        _object(
            schedule_id,
            type="Schedule",
            startDateTime=start,
            period=period,
            occurrences="1",
        )
    )
    runnable = {"maximumRetries": "0"}
    if not precondition or kind in RUNNER_PRECONDITION_TYPES:
        runnable["workerGroup"] = worker_group
    _set_fields(out, target, runnable)
    owner = target
    if precondition:
        owner = _fresh("DpRunnerExecCarrier", ids)
        out.append(_carrier(owner, target, worker_group))
    cut_defn = Definition(out, defn.parameter_objects, defn.parameter_values)
    return Slot(cut_defn, target, precondition, f"@{target}_{start}", worker_group)


def masked_from_environment(
    defn: Definition, environ: Mapping[str, str] | None = None
) -> tuple[Definition, list[str]]:
    """The definition with each masked ``*my…`` parameter it declares given the
    value of ``DP_PARAMETER_my…`` where that is set (replacing one the values
    gave); and the names of the variables used, which the caller removes from its
    environment: a task never sees them."""
    env = os.environ if environ is None else environ
    values = list(defn.parameter_values)
    used = []
    for parameter in defn.parameter_objects:
        name = parameter["id"]
        variable = MASKED_ENV_PREFIX + name.removeprefix("*")
        if not name.startswith("*") or variable not in env:
            continue
        values = [v for v in values if v["id"] != name]
        values.append({"id": name, "stringValue": env[variable]})
        used.append(variable)
    return Definition(defn.pipeline_objects, defn.parameter_objects, values), used


# ---- the cut ---------------------------------------------------------------------
def _closure(objects: Mapping[str, dict[str, Any]], target: str) -> list[str]:
    """``target``, ``Default`` and every object they refer to, by keys that are
    kept, in the definition's order. ``SlotError`` for a reference to no object."""
    todo = [target, *(["Default"] if "Default" in objects else [])]
    seen = set(todo)
    while todo:
        obj_id = todo.pop()
        for field in objects[obj_id]["fields"]:
            ref = field.get("refValue")
            if ref is None or field["key"] in DROPPED_KEYS or ref in seen:
                continue
            if ref not in objects:
                raise SlotError(
                    f"{obj_id}: field {field['key']} refers to {ref}, "
                    "which is not in the definition"
                )
            seen.add(ref)
            todo.append(ref)
    return [obj_id for obj_id in objects if obj_id in seen]


def _stripped(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` without the fields the cut drops."""
    fields = [f for f in obj["fields"] if f["key"] not in DROPPED_KEYS]
    return {**obj, "fields": fields}


def _default(default: Mapping[str, Any] | None, schedule_id: str) -> dict[str, Any]:
    """``Default`` stripped, with the slot's schedule and ``cron``."""
    base = _stripped(default) if default is not None else _object("Default")
    base["fields"] = [
        *base["fields"],
        {"key": "scheduleType", "stringValue": "cron"},
        {"key": "schedule", "refValue": schedule_id},
    ]
    return base


def _carrier(carrier: str, precondition: str, worker_group: str) -> dict[str, Any]:
    """An activity that only carries the precondition: it goes to a worker group
    of its own that nobody serves, so that it never runs."""
    carried = _object(
        carrier,
        type="ShellCommandActivity",
        command="true",
        workerGroup=f"{worker_group}-carrier",
        maximumRetries="0",
    )
    carried["fields"].append({"key": "precondition", "refValue": precondition})
    return carried


def _set_fields(out: list[dict[str, Any]], obj_id: str, values: dict[str, str]) -> None:
    """Set string fields on the object ``obj_id`` of ``out`` (in place)."""
    for obj in out:
        if obj["id"] == obj_id:
            obj["fields"] = [
                *[f for f in obj["fields"] if f["key"] not in values],
                *({"key": k, "stringValue": v} for k, v in values.items()),
            ]


def _object(obj_id: str, **fields: str) -> dict[str, Any]:
    return {
        "id": obj_id,
        "name": obj_id,
        "fields": [{"key": k, "stringValue": v} for k, v in fields.items()],
    }


def _fresh(base: str, ids: set[str]) -> str:
    """``base``, or ``base-2``…: an id the definition does not use."""
    candidate, number = base, 1
    while candidate in ids:
        number += 1
        candidate = f"{base}-{number}"
    ids.add(candidate)
    return candidate


# ---- reading the whole definition ------------------------------------------------
def _chain(objects: Mapping[str, dict[str, Any]], obj_id: str) -> list[str]:
    """The object, its ``parent`` chain, then ``Default``: where a field is
    looked up."""
    chain: list[str] = []
    owner: str | None = obj_id
    while owner is not None and owner in objects and owner not in chain:
        chain.append(owner)
        parents = [
            f["refValue"] for f in objects[owner]["fields"] if f["key"] == "parent"
        ]
        owner = parents[0] if parents else None
    if "Default" in objects and "Default" not in chain:
        chain.append("Default")
    return chain


def _lookup(
    objects: Mapping[str, dict[str, Any]], obj_id: str, key: str
) -> dict[str, Any] | None:
    """The first field ``key`` along the object's chain, or None."""
    for owner in _chain(objects, obj_id):
        for field in objects[owner]["fields"]:
            if field["key"] == key:
                return dict(field)
    return None


def _type(objects: Mapping[str, dict[str, Any]], obj_id: str) -> str:
    field = _lookup(objects, obj_id, "type")
    return str(field.get("stringValue", "")) if field else ""


def _period(objects: Mapping[str, dict[str, Any]], target: str) -> str:
    """The ``period`` of the target's Schedule as written (the service evaluates
    an expression in it); a day when the target has no schedule (``ondemand``)."""
    schedule = _lookup(objects, target, "schedule")
    ref = schedule.get("refValue") if schedule else None
    if ref is None or ref not in objects:
        return DEFAULT_PERIOD
    period = _lookup(objects, ref, "period")
    text = period.get("stringValue") if period else None
    return str(text) if text else DEFAULT_PERIOD
