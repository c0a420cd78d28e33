"""When instances come into being: ondemand activations and cron/timeseries slots.

Owns: `activate()` (one run of the graph per ActivatePipeline for ondemand
pipelines; the start of the schedule for the others) and the `schedule` timer
that creates each due slot of a Schedule (`period`, `startDateTime` or
`startAt: FIRST_ACTIVATION_DATE_TIME`, `endDateTime`, `occurrences`).

Must not: lease or end anything; it only creates instances through `lifecycle`.

Why: scheduled timestamps are calendar times and are never scaled. What scales
is the *wait*: a slot whose run time (slot start for cron, slot end for
timeseries) is T seconds after the activation becomes due T x time_scale
seconds after the activation. Slots already in the past at activation are due
at once, but a pass makes at most as many of a component's instances as its
`maxActiveInstances` (default 1) allows beside those not ended yet, and the
next pass comes when one of them ends: what is in memory is what can run soon,
and the engine lock is held for one pass, never for a backlog. As on AWS, a
start more than a day in the past is refused at activation (`past_start`).
"""

from __future__ import annotations

import datetime as dt

from runner.localservice import instances, lifecycle
from runner.localservice.definition import Definition
from runner.localservice.engine import Engine
from runner.localservice.fieldtypes import InvalidFieldError
from runner.localservice.model import Pipeline, format_time, parse_time

PAST_START_LIMIT_S = 86400.0


def register(engine: Engine) -> None:
    engine.handlers["schedule"] = on_timer


def activate(
    engine: Engine, pipeline: Pipeline, now: float, start: float | None
) -> None:
    """Start a run (ondemand) or the schedule (cron, timeseries)."""
    first_activation = pipeline.activated_at is None
    pipeline.state = "SCHEDULED"
    engine.touch(pipeline)
    defn = engine.definition(pipeline)
    if defn.schedule_type() != "ondemand":
        if first_activation:
            pipeline.activated_at = now
            pipeline.cursors = {}
        on_timer(engine, pipeline.id, "", now)
        return
    pipeline.activated_at = now
    moment = dt.datetime.fromtimestamp(start if start is not None else now, tz=dt.UTC)
    moment = moment.replace(microsecond=0)
    while any(
        engine.run(pipeline.id, f"@{a}_{format_time(moment)}")
        for a in defn.activities()
    ):
        moment += dt.timedelta(seconds=1)
    slot = format_time(moment)
    pipeline.latest_run_time = slot
    for activity in defn.activities():
        instances.create_instance(engine, pipeline, activity, slot, slot)
    lifecycle.check_waiting(engine, pipeline.id, now)


def on_timer(engine: Engine, pipeline_id: str, _run_id: str, now: float) -> None:
    """Create every due slot; re-arm for the next one."""
    pipeline = engine.pipelines[pipeline_id]
    if pipeline.state != "SCHEDULED" or pipeline.activated_at is None:
        return
    defn = engine.definition(pipeline)
    if defn.schedule_type() == "ondemand":
        return
    next_due: float | None = None
    for activity in defn.activities():
        due = _advance_component(engine, pipeline, activity, now)
        if due is not None:
            next_due = due if next_due is None else min(next_due, due)
    lifecycle.check_waiting(engine, pipeline.id, now)
    if next_due is not None:
        engine.add_timer(next_due, "schedule", pipeline.id, "")


def _advance_component(
    engine: Engine, pipeline: Pipeline, activity: str, now: float
) -> float | None:
    """Create the due slots of one component, at most as many as its
    `maxActiveInstances` allows beside those not ended yet; return when the next
    one is due (None: none is, or the component is full and the end of one of
    its instances re-arms the schedule, `lifecycle.end_instance`)."""
    defn = engine.definition(pipeline)
    found = _slots(defn, activity, pipeline)
    if found is None or pipeline.activated_at is None:
        return None
    start, period, end, occurrences = found
    activated = pipeline.activated_at
    timeseries = defn.schedule_type() == "timeseries"
    active = sum(
        1 for run in engine.instances(pipeline.id, activity) if not run.terminal
    )
    room = _max_active(defn, activity) - active
    slot = pipeline.cursors.get(activity, 0)
    while True:
        slot_start = start + period * slot
        if (end is not None and slot_start >= end) or (
            occurrences and slot >= occurrences
        ):
            return None
        run_at = (slot_start + period if timeseries else slot_start).timestamp()
        due = activated + max(0.0, run_at - activated) * engine.time_scale
        if due > now:
            return due
        if room <= 0:
            return None
        _make_slot(engine, pipeline, activity, slot_start, period)
        slot += 1
        room -= 1


def _make_slot(
    engine: Engine,
    pipeline: Pipeline,
    activity: str,
    slot_start: dt.datetime,
    period: dt.timedelta,
) -> None:
    """The activity's instance for one slot; the cursor moves past it."""
    instances.create_instance(
        engine,
        pipeline,
        activity,
        format_time(slot_start),
        format_time(slot_start + period),
    )
    pipeline.latest_run_time = format_time(slot_start)
    pipeline.cursors[activity] = pipeline.cursors.get(activity, 0) + 1
    engine.touch(pipeline)


Slots = tuple[dt.datetime, dt.timedelta, dt.datetime | None, int]


def _slots(defn: Definition, activity: str, pipeline: Pipeline) -> Slots | None:
    """(start, period, end or None, occurrences or 0) of the activity's
    Schedule, its fields evaluated; None without a schedule, or when a field
    does not evaluate (validation refused it at activation already)."""
    schedules = defn.refs(activity, "schedule")
    if not schedules or pipeline.activated_at is None:
        return None
    schedule = schedules[0]
    try:
        first = defn.value(schedule, "startDateTime")
        end_text = defn.value(schedule, "endDateTime")
        start = (
            parse_time(first)
            if first
            else dt.datetime.fromtimestamp(pipeline.activated_at, tz=dt.UTC)
        )
        return (
            start.replace(microsecond=0),
            defn.period(schedule, "period", dt.timedelta(days=1)),
            parse_time(end_text) if end_text else None,
            defn.number(schedule, "occurrences", 0),
        )
    except ValueError:  # InvalidFieldError included
        return None


def _max_active(defn: Definition, activity: str) -> int:
    """`maxActiveInstances`, default 1; at least 1."""
    try:
        return max(1, defn.number(activity, "maxActiveInstances", 1))
    except InvalidFieldError:
        return 1


def past_start(defn: Definition, now: float) -> str | None:
    """Why AWS refuses to activate: a scheduled component whose first slot
    starts more than a day before `now` (DG dp-object-schedule), or None."""
    if defn.schedule_type() == "ondemand":
        return None
    for activity in defn.activities():
        for schedule in defn.refs(activity, "schedule")[:1]:
            try:
                text = defn.value(schedule, "startDateTime")
                start = parse_time(text).timestamp() if text else now
            except ValueError:
                continue  # validation reports it
            if start < now - PAST_START_LIMIT_S:
                return (
                    f"Schedule '{schedule}': startDateTime {text} is more than "
                    "one day in the past; AWS does not activate a pipeline whose "
                    "scheduledStartTime is that old (DG dp-object-schedule): use "
                    "a later startDateTime"
                )
    return None
