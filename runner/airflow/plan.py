"""What a definition becomes in Airflow: tasks, edges, a schedule, and what is lost.

Owns: ``make_plan``, which reads a whole definition into a ``Plan``: one task per
activity (a ``dp-runner exec`` of it, or a task that fails with "not translated:
<Type>" for a type dp-runner does not run), one sensor per precondition of an
activity or of its input data nodes, the upstream edges (``dependsOn``, and the
activity that writes a data node before each activity that reads it), retries,
retry delay and timeouts, the SnsAlarm callbacks, the Airflow queue
(``workerGroup``, with ``--queues``), and ``not_carried``: every object and
field the DAG does not carry, so that nothing is dropped silently.

Must not: import airflow, boto3 or click; evaluate expressions (``exec``'s
service does; only a plain ``#{myParam}`` is replaced here, as
``pipelinefile.inherited_field`` does); know how a plan is written out
(``render``) or where secrets go (``secrets``).

Fields are looked up along ``parent`` and ``Default`` (``fields.Reader``), as the
service looks them up: a retry count set once on ``Default`` applies to every
activity.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from runner.airflow.alarms import Alarm, Late, alarms, late_alarm
from runner.airflow.fields import Reader
from runner.airflow.schedule import ScheduleError, Timing, period_seconds, timing
from runner.execslot import PRECONDITION_TYPES
from runner.pipelinefile import Definition

#: Activity types ``dp-runner exec`` runs: runner/activities' registry, which this
#: module must not import (its package imports boto3).
RUN_TYPES = frozenset(
    {"ShellCommandActivity", "SqlActivity", "CopyActivity", "RedshiftCopyActivity"}
)
#: Fields of an activity that the DAG itself carries (the rest ``exec`` applies).
SCHEDULER_KEYS = frozenset(
    {
        "dependsOn", "precondition", "schedule", "scheduleType", "maximumRetries",
        "retryDelay", "attemptTimeout", "onFail", "onSuccess", "workerGroup",
        "maxActiveInstances", "preconditionTimeout", "input", "output", "parent",
        "runsOn", "lateAfterTimeout", "onLateAction", "failureAndRerunMode",
    }
)  # fmt: skip
#: AWS's defaults (lifecycle.py): two retries, ten minutes apart.
DEFAULT_RETRIES = 2
DEFAULT_RETRY_DELAY_S = 600.0
#: Airflow's own execution timeout is a backstop: ``exec`` enforces attemptTimeout
#: first, and fails the attempt with AttemptTimeout, as the service would.
TIMEOUT_BACKSTOP_S = 60.0
#: ``--short-delays``: each retry delay and poke interval (tests; AWS's floor: 2 min).
SHORT_DELAY_S = 1.0
#: A task id is also a Python name in the file (``t_<id>``): letters, digits, _.
_TASK_ID = re.compile(r"[^A-Za-z0-9_]")


class PlanError(ValueError):
    """A definition the export cannot translate; the message names the object."""


@dataclass(slots=True)
class Task:
    """One Airflow task. ``kind``: ``exec`` (an activity), ``sensor`` (a
    precondition) or ``untranslated`` (fails with ``reason``)."""

    task_id: str
    kind: str
    object_id: str
    reason: str = ""
    retries: int = 0
    retry_delay_s: float | None = None
    execution_timeout_s: float | None = None
    sensor_timeout_s: float | None = None
    poke_interval_s: float | None = None
    queue: str | None = None
    max_active: int | None = None
    on_fail: list[Alarm] = field(default_factory=list)
    on_success: list[Alarm] = field(default_factory=list)


@dataclass(slots=True)
class Plan:
    """The DAG: its timing, tasks, ``(upstream, downstream)`` task-id edges,
    every object or field it does not carry (``not_carried``), and the late
    alarms (``alarms.Late``), each a deadline on the DAG run."""

    timing: Timing
    tasks: list[Task]
    edges: list[tuple[str, str]]
    not_carried: list[str]
    late: list[Late] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Options:
    """The export's flags that change the plan."""

    queues: bool = False
    short_delays: bool = False


def make_plan(defn: Definition, options: Options, now: dt.datetime) -> Plan:
    """The plan of ``defn`` (see the module docstring). PlanError when the
    definition cannot be translated (a schedule without instants, a field that
    is not a number or a period)."""
    reader = Reader(defn)
    activities = [
        obj_id
        for obj_id in reader.objects
        if obj_id != "Default" and reader.type_of(obj_id).endswith("Activity")
    ]
    not_carried: list[str] = []
    plan = Plan(_timing(reader, activities, now, not_carried), [], [], not_carried)
    taken: set[str] = set()
    ids = {obj_id: _task_id(obj_id, taken) for obj_id in activities}
    for obj_id in activities:
        _add_activity(plan, reader, obj_id, ids, options)
    _add_data_edges(plan, reader, activities, ids)
    _list_leftovers(plan, reader, activities)
    return plan


def _timing(
    reader: Reader, activities: list[str], now: dt.datetime, notes: list[str]
) -> Timing:
    """The DAG's one timing: that of the first activity's Schedule; an activity
    with another schedule is listed as not carried."""
    schedules: dict[str, str | None] = {
        obj_id: next(iter(reader.refs(obj_id, "schedule")), None)
        for obj_id in activities
    }
    chosen = next((s for s in schedules.values() if s is not None), None)
    for obj_id, schedule in schedules.items():
        if schedule != chosen:
            notes.append(
                f"{obj_id}: schedule {schedule} (the DAG runs on {chosen}'s instants)"
            )
    owner = activities[0] if activities else "Default"
    fields = None
    if chosen is not None:
        keys = ("period", "startDateTime", "startAt", "endDateTime", "occurrences")
        fields = {k: v for k in keys if (v := reader.text(chosen, k)) is not None}
    try:
        result = timing(reader.text(owner, "scheduleType") or "", fields, now)
    except ScheduleError as exc:
        raise PlanError(f"{chosen}: {exc}") from exc
    notes.extend(result.notes)
    return result


def _add_activity(
    plan: Plan, reader: Reader, obj_id: str, ids: dict[str, str], options: Options
) -> None:
    """The activity's task, its sensors, and its ``dependsOn`` edges."""
    kind = reader.type_of(obj_id)
    task = Task(ids[obj_id], "exec", obj_id)
    if kind not in RUN_TYPES:
        task = Task(ids[obj_id], "untranslated", obj_id, f"not translated: {kind}")
        plan.not_carried.append(f"{obj_id}: a {kind} (its task fails: not translated)")
    else:
        _retries_and_time(task, reader, options)
        task.on_fail = alarms(reader, obj_id, "onFail", plan.not_carried)
        task.on_success = alarms(reader, obj_id, "onSuccess", plan.not_carried)
        _late(plan, reader, obj_id)
        task.queue = _queue(plan, reader, obj_id, options)
        active = reader.text(obj_id, "maxActiveInstances")
        task.max_active = _number(active, obj_id, "maxActiveInstances")
    plan.tasks.append(task)
    taken = {t.task_id for t in plan.tasks} | set(ids.values())
    for owner, precondition in _preconditions(reader, obj_id):
        sensor = Task(
            _task_id(f"{owner}__{precondition}", taken), "sensor", precondition
        )
        _sensor_time(sensor, reader, owner, precondition, options)
        sensor.queue = task.queue
        plan.tasks.append(sensor)
        taken.add(sensor.task_id)
        plan.edges.append((sensor.task_id, task.task_id))
    for upstream in reader.refs(obj_id, "dependsOn"):
        if upstream in ids:
            plan.edges.append((ids[upstream], task.task_id))
        else:
            plan.not_carried.append(f"{obj_id}: dependsOn {upstream}, not an activity")
    if reader.refs(obj_id, "runsOn"):
        plan.not_carried.append(f"{obj_id}: runsOn")


def _late(plan: Plan, reader: Reader, obj_id: str) -> None:
    manual = plan.timing.kind == "manual"
    try:
        late = late_alarm(reader, obj_id, manual=manual, notes=plan.not_carried)
    except ValueError as exc:
        raise PlanError(str(exc)) from exc
    if late is not None:
        plan.late.append(late)


def _retries_and_time(task: Task, reader: Reader, options: Options) -> None:
    obj_id = task.object_id
    retries = _number(reader.text(obj_id, "maximumRetries"), obj_id, "maximumRetries")
    task.retries = DEFAULT_RETRIES if retries is None else retries
    delay = _period(reader.text(obj_id, "retryDelay"), obj_id, "retryDelay")
    task.retry_delay_s = DEFAULT_RETRY_DELAY_S if delay is None else delay
    if options.short_delays:
        task.retry_delay_s = SHORT_DELAY_S
    timeout = _period(reader.text(obj_id, "attemptTimeout"), obj_id, "attemptTimeout")
    if timeout is not None:
        task.execution_timeout_s = timeout + TIMEOUT_BACKSTOP_S


def _sensor_time(
    sensor: Task, reader: Reader, owner: str, precondition: str, options: Options
) -> None:
    """``preconditionTimeout`` (the owner's, else the precondition's) is the
    sensor's timeout; it pokes every ``retryDelay`` of the precondition, as the
    service checks it again."""
    text = reader.text(owner, "preconditionTimeout")
    if text is None:
        text = reader.text(precondition, "preconditionTimeout")
    sensor.sensor_timeout_s = _period(text, owner, "preconditionTimeout")
    delay = _period(reader.text(precondition, "retryDelay"), precondition, "retryDelay")
    sensor.poke_interval_s = DEFAULT_RETRY_DELAY_S if delay is None else delay
    if options.short_delays:
        sensor.poke_interval_s = SHORT_DELAY_S
    kind = reader.type_of(precondition)
    if kind not in PRECONDITION_TYPES:
        raise PlanError(
            f"{owner}: precondition {precondition} is a {kind or 'typeless object'}"
        )


def _preconditions(reader: Reader, obj_id: str) -> list[tuple[str, str]]:
    """``(owner, precondition)``: the activity's own, then its input nodes'."""
    found = [(obj_id, p) for p in reader.refs(obj_id, "precondition")]
    for node in reader.refs(obj_id, "input"):
        found.extend((node, p) for p in reader.refs(node, "precondition"))
    return found


def _queue(plan: Plan, reader: Reader, obj_id: str, options: Options) -> str | None:
    group = reader.text(obj_id, "workerGroup")
    if group is not None and not options.queues:
        plan.not_carried.append(f"{obj_id}: workerGroup {group} (no --queues)")
    return group if options.queues else None


def _add_data_edges(
    plan: Plan, reader: Reader, activities: list[str], ids: dict[str, str]
) -> None:
    """The activity that writes a data node runs before each one that reads it."""
    writers: dict[str, list[str]] = {}
    for obj_id in activities:
        for node in reader.refs(obj_id, "output"):
            writers.setdefault(node, []).append(obj_id)
    for obj_id in activities:
        for node in reader.refs(obj_id, "input"):
            for writer in writers.get(node, []):
                edge = (ids[writer], ids[obj_id])
                if writer != obj_id and edge not in plan.edges:
                    plan.edges.append(edge)


def _list_leftovers(plan: Plan, reader: Reader, activities: list[str]) -> None:
    """Resources and other objects no task runs, and Default's scheduler fields."""
    used = {"Default", *activities}
    for obj_id in activities:
        for key in (
            "input",
            "output",
            "precondition",
            "onFail",
            "onSuccess",
            "schedule",
        ):
            used.update(reader.refs(obj_id, key))
    for obj_id in reader.objects:
        kind = reader.type_of(obj_id)
        if kind.endswith(("Resource", "Cluster")):
            plan.not_carried.append(
                f"{obj_id}: a {kind} (the Airflow worker runs the task)"
            )
    mode = reader.text("Default", "failureAndRerunMode")
    if mode is not None and mode.lower() == "none":
        plan.not_carried.append("Default: failureAndRerunMode none (Airflow cascades)")


def _task_id(obj_id: str, taken: set[str]) -> str:
    """A task id for the object that no task has taken yet (now taken)."""
    base = _TASK_ID.sub("_", obj_id) or "task"
    candidate, number = base, 1
    while candidate in taken:
        number += 1
        candidate = f"{base}_{number}"
    taken.add(candidate)
    return candidate


def _number(text: str | None, obj_id: str, key: str) -> int | None:
    if text is None:
        return None
    if not text.strip().isdigit():
        raise PlanError(f"{obj_id}: {key} {text!r} is not a whole number")
    return int(text)


def _period(text: str | None, obj_id: str, key: str) -> float | None:
    if text is None:
        return None
    try:
        return period_seconds(text)
    except ScheduleError as exc:
        raise PlanError(f"{obj_id}: {key}: {exc}") from exc
