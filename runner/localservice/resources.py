"""Resource instances (Ec2Resource, EmrCluster): the statuses AWS shows around
the activities that run on them.

Owns: a resource instance's moves. It is WAITING_ON_DEPENDENCIES until an attempt
of an activity that runs on it is queued; then CREATING (AWS is launching the
instance; `terminateAfter` counts from here); RUNNING once a runner has taken one
of its activities' attempts (the Task Runner on the resource asked for work);
FINISHED when every activity of its slot that runs on it has ended. A resource
whose activities all ended before it was ever needed ends CASCADE_FAILED if one of
them failed (it is not needed any more), CANCELED if one was canceled, else
FINISHED. Past `terminateAfter` it is TIMEDOUT ("the resource exceeded the
terminateAfter threshold and was stopped", DG dp-interpret-status), and `expire`
names the activities that were on it, for `lifecycle` to fail.

Must not: end attempts or activity instances (it returns them to `lifecycle`,
which imports this module, never the other way), or lease anything.

Why: locally no EC2 instance or EMR cluster is launched; the activities go to the
worker group that `run --local` serves (`--runs-on-worker-group`). But
`list-runs` should read as it does on AWS, where a resource appears around its
activities, so that what a user sees locally is what they will see there. AWS
passes through SHUTTING_DOWN on the way to FINISHED; nothing is shut down here,
so that step is not shown. `actionOnResourceFailure` has nothing to act on: a
local resource only ever fails by `terminateAfter`, after which AWS ignores it
(DG dp-interpret-status, TIMEDOUT).
"""

from __future__ import annotations

import datetime as dt

from runner.localservice.engine import Engine
from runner.localservice.fieldtypes import InvalidFieldError
from runner.localservice.model import (
    CANCELED,
    CASCADE_FAILED,
    CREATING,
    FAILURES,
    FINISHED,
    RESOURCE,
    RUNNING,
    TIMEDOUT,
    Run,
    parse_time,
    runtime_of,
    wall_time,
)

_STARTED = frozenset({CREATING, RUNNING})


def attempt_queued(engine: Engine, activity: Run, now: float) -> None:
    """An attempt of `activity` waits for a runner: its resource is being made
    (again, for a rerun after the resource had ended)."""
    resource = _resource(engine, activity)
    if resource is None or resource.status in _STARTED:
        return
    resource.status = CREATING
    resource.actual_start = wall_time(now)
    resource.actual_end = ""
    resource.error_id = resource.error_message = ""
    defn = engine.definition(engine.pipelines[resource.pipeline_id])
    try:
        lifetime = defn.period(
            resource.component,
            "terminateAfter",
            dt.timedelta(),
            runtime_of(resource, now),
        )
    except InvalidFieldError:
        lifetime = dt.timedelta()  # the attempt failed InvalidField (lifecycle)
    # terminateAfter bounds real work: never scaled (design §6)
    resource.deadline = now + lifetime.total_seconds() if lifetime else 0.0
    if resource.deadline:
        engine.add_timer(resource.deadline, "check", resource.pipeline_id, resource.id)
    engine.touch(resource)


def attempt_leased(engine: Engine, activity: Run, now: float) -> None:
    """A runner took an attempt of `activity`: its resource is up."""
    resource = _resource(engine, activity)
    if resource is None or resource.status != CREATING:
        return
    resource.status = RUNNING
    resource.actual_start = resource.actual_start or wall_time(now)
    engine.touch(resource)


def activity_ended(engine: Engine, activity: Run, now: float) -> None:
    """End the resource once no activity of its slot needs it any more."""
    resource = _resource(engine, activity)
    if resource is None or resource.terminal:
        return
    users = [
        run
        for run in engine.runs[resource.pipeline_id].values()
        if run.sphere == "INSTANCE" and run.resource == resource.id
    ]
    if any(not run.terminal for run in users):
        return
    if resource.status in _STARTED:
        status = FINISHED
    elif any(run.status in FAILURES - {CANCELED} for run in users):
        status = CASCADE_FAILED
    elif any(run.status == CANCELED for run in users):
        status = CANCELED
    else:
        status = FINISHED
    _end(engine, resource, status, now)


def expire(engine: Engine, resource: Run, now: float) -> list[Run]:
    """Timer: past `terminateAfter`, the resource is TIMEDOUT; return the
    activity instances still on it. Before it, re-arm the timer."""
    if resource.kind != RESOURCE or resource.terminal or not resource.deadline:
        return []
    if now < resource.deadline:
        engine.add_timer(resource.deadline, "check", resource.pipeline_id, resource.id)
        return []
    defn = engine.definition(engine.pipelines[resource.pipeline_id])
    started = parse_time(resource.actual_start).timestamp()
    resource.error_id = "ResourceTimedOut"
    resource.error_message = defn.redact(
        f"terminateAfter ({defn.first(resource.component, 'terminateAfter')}) "
        f"passed: the resource was stopped after {now - started:.0f} s"
    )
    _end(engine, resource, TIMEDOUT, now)
    return [
        run
        for run in engine.runs[resource.pipeline_id].values()
        if run.sphere == "INSTANCE" and run.resource == resource.id and not run.terminal
    ]


def _end(engine: Engine, resource: Run, status: str, now: float) -> None:
    resource.status = status
    resource.actual_end = wall_time(now)
    resource.deadline = 0.0
    engine.touch(resource)


def _resource(engine: Engine, activity: Run) -> Run | None:
    if not activity.resource:
        return None
    return engine.run(activity.pipeline_id, activity.resource)
