"""When instances come into being: ondemand activations and cron/timeseries slots.

Owns: `activate()` (one run of the graph per ActivatePipeline for ondemand
pipelines; the start of the schedule for the others) and the `schedule` timer
that creates each due slot of a Schedule (`period`, `startDateTime` or
`startAt: FIRST_ACTIVATION_DATE_TIME`, `endDateTime`, `occurrences`).

Must not: lease or end anything; it only creates instances through `lifecycle`.

Why: scheduled timestamps are calendar times and are never scaled. What scales
is the *wait*: a slot whose run time (slot start for cron, slot end for
timeseries) is T seconds after the activation becomes due T x time_scale
seconds after the activation. Slots already in the past at activation are all
due at once, at most `MAX_SLOTS_PER_PASS` per component per pass, so a
long-ago startDateTime cannot stall the service.
"""

from __future__ import annotations

import datetime as dt

from runner.localservice import instances, lifecycle
from runner.localservice.engine import Engine
from runner.localservice.model import Pipeline, format_time, parse_time

MAX_SLOTS_PER_PASS = 100


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
    """Create due slots of one component; return when the next one is due."""
    defn = engine.definition(pipeline)
    schedules = defn.refs(activity, "schedule")
    if not schedules or pipeline.activated_at is None:
        return None
    schedule = schedules[0]
    activated = pipeline.activated_at
    first = defn.first(schedule, "startDateTime")
    start = (
        parse_time(first)
        if first
        else dt.datetime.fromtimestamp(activated, tz=dt.UTC).replace(microsecond=0)
    )
    period = defn.period(schedule, "period", dt.timedelta(days=1))
    end_text = defn.first(schedule, "endDateTime")
    end = parse_time(end_text) if end_text else None
    occurrences = int(defn.first(schedule, "occurrences") or 0)
    timeseries = defn.schedule_type() == "timeseries"
    slot = pipeline.cursors.get(activity, 0)
    for _ in range(MAX_SLOTS_PER_PASS):
        slot_start = start + period * slot
        if (end is not None and slot_start >= end) or (
            occurrences and slot >= occurrences
        ):
            return None
        run_at = (slot_start + period if timeseries else slot_start).timestamp()
        due = activated + max(0.0, run_at - activated) * engine.time_scale
        if due > now:
            return due
        instances.create_instance(
            engine,
            pipeline,
            activity,
            format_time(slot_start),
            format_time(slot_start + period),
        )
        pipeline.latest_run_time = format_time(slot_start)
        slot += 1
        pipeline.cursors[activity] = slot
        engine.touch(pipeline)
    return now
