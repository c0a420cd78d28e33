"""State transitions of instances and attempts: readiness, retries, cascades.

Owns: moving instances (made by `instances`) from WAITING_ON_DEPENDENCIES to
WAITING_FOR_RUNNER (a data node straight to FINISHED: it has no attempts),
creating and ending attempts, retries after `retryDelay`, precondition retries
until `preconditionTimeout` (the system-managed preconditions' attempts go to the
service's own checker, `preconditions`, instead of a worker group), CASCADE_FAILED
propagation, and the idempotent `check` timer: it asks `leases` whether an
attempt's lease ran out (the ack window, `reportProgressTimeout`,
`attemptTimeout`) and ends it if so, and it applies a resource's `terminateAfter`
(telling `resources` what happened to its activities, and failing those a stopped
resource leaves behind). The lease rules themselves (handing an attempt to a
runner, its ack and keep-alives, its deadlines) are `leases`'.

Must not: parse requests or build wire objects. Callers hold the engine lock.

Why: every rule that decides what an instance becomes next lives here (the
lease's windows in `leases`), written against wall-clock deadlines already
multiplied by `time_scale`, so the same code runs the 10-minute rules in real
time and in a one-second test. Defaults (AWS's documented ones): maximumRetries
2, retryDelay 10 minutes, no preconditionTimeout.
"""

from __future__ import annotations

import datetime as dt

from runner.localservice import leases, resources, timing
from runner.localservice.definition import Definition
from runner.localservice.engine import Engine
from runner.localservice.expressions import ExpressionError
from runner.localservice.fieldtypes import InvalidFieldError
from runner.localservice.model import (
    ACTIVITY,
    CANCELED,
    CASCADE_FAILED,
    DATANODE,
    FAILED,
    FAILURES,
    FALSE,
    FINISHED,
    PAUSED,
    PRECONDITION,
    RESOURCE,
    TIMEDOUT,
    WAITING_FOR_RUNNER,
    WAITING_ON_DEPENDENCIES,
    Run,
    runtime_of,
    wall_time,
)

DEFAULT_RETRY_DELAY = dt.timedelta(minutes=10)


def register(engine: Engine) -> None:
    engine.handlers["check"] = check


# ---- readiness -----------------------------------------------------------------
def check_waiting(engine: Engine, pipeline_id: str, now: float) -> None:
    for instance_id in sorted(engine.waiting.get(pipeline_id, set())):
        instance = engine.run(pipeline_id, instance_id)
        if instance is not None:
            check_instance(engine, instance, now)


def check_instance(engine: Engine, instance: Run, now: float) -> None:
    """Move a waiting instance on if its dependencies allow. A resource waits on
    its activities, not on dependencies (`resources`)."""
    if instance.status != WAITING_ON_DEPENDENCIES or instance.kind == RESOURCE:
        return
    pipeline = engine.pipelines[instance.pipeline_id]
    if instance.component in pipeline.paused:
        instance.paused_from, instance.status = instance.status, PAUSED
        engine.touch(instance)
        return
    statuses = _dependency_statuses(engine, instance)
    if any(status in FAILURES for status in statuses):
        end_instance(engine, instance, CASCADE_FAILED, now)
    elif all(status == FINISHED for status in statuses):
        engine.waiting.get(instance.pipeline_id, set()).discard(instance.id)
        _make_ready(engine, instance, now)


def _dependency_statuses(engine: Engine, instance: Run) -> list[str | None]:
    statuses: list[str | None] = []
    for component in instance.depends:
        candidates = [
            other
            for other in engine.instances(instance.pipeline_id, component)
            if other.scheduled_start <= instance.scheduled_start
        ]
        same = [c for c in candidates if c.scheduled_start == instance.scheduled_start]
        chosen = same[-1] if same else (candidates[-1] if candidates else None)
        statuses.append(chosen.status if chosen else None)
    for precondition_id in instance.preconditions:
        precondition = engine.run(instance.pipeline_id, precondition_id)
        statuses.append(precondition.status if precondition else None)
    return statuses


def _make_ready(engine: Engine, instance: Run, now: float) -> None:
    if instance.kind == DATANODE:
        # Its preconditions are met and its producers finished: the data is there.
        instance.actual_start = instance.actual_start or wall_time(now)
        end_instance(engine, instance, FINISHED, now)
        return
    defn = engine.definition(engine.pipelines[instance.pipeline_id])
    timeout = defn.first(instance.component, "preconditionTimeout")
    if instance.kind == PRECONDITION and timeout:
        instance.deadline = now + engine.scaled(
            timing.period_of(
                engine, instance, "preconditionTimeout", dt.timedelta(), now
            ).total_seconds()
        )
    start_attempt(engine, instance, now)


def start_attempt(engine: Engine, instance: Run, now: float) -> None:
    pipeline = engine.pipelines[instance.pipeline_id]
    defn = engine.definition(pipeline)
    instance.attempt_count += 1
    instance.status = WAITING_FOR_RUNNER
    attempt = Run(
        id=f"{instance.id}_Attempt={instance.attempt_count}",
        pipeline_id=instance.pipeline_id,
        sphere="ATTEMPT",
        component=instance.component,
        status=WAITING_FOR_RUNNER,
        scheduled_start=instance.scheduled_start,
        scheduled_end=instance.scheduled_end,
        kind=instance.kind,
        instance=instance.id,
        worker_group=instance.worker_group,
    )
    instance.head_attempt = attempt.id
    engine.add_run(attempt)
    engine.touch(instance)
    try:
        attempt.fields = [
            list(f)
            for f in defn.evaluated(
                defn.merged(instance.component),
                instance.component,
                runtime_of(instance, now),
            )
        ]
        timing.check_fields(engine, defn, instance, now)
    except (ExpressionError, KeyError, ValueError, TypeError) as exc:
        # InvalidFieldError first: a field that evaluates to what it cannot be
        invalid = isinstance(exc, InvalidFieldError)
        attempt.error_id = "InvalidField" if invalid else "ExpressionError"
        attempt.error_message = defn.redact(str(exc))
        end_attempt(engine, attempt, FAILED, now, retry=False)
        return
    engine.enqueue(attempt)
    resources.attempt_queued(engine, instance, now)


def check(engine: Engine, pipeline_id: str, run_id: str, now: float) -> None:
    """Timer: enforce lease deadlines, start due retries, re-check dependencies."""
    run = engine.run(pipeline_id, run_id)
    if run is None or run.terminal:
        return
    if run.kind == RESOURCE:
        for activity in resources.expire(engine, run, now):
            _lose_resource(engine, activity, now)
    elif run.sphere == "ATTEMPT":
        ended = leases.check_lease(engine, run, now)
        if ended is not None:
            end_attempt(engine, run, ended, now)
    elif run.status == WAITING_ON_DEPENDENCIES:
        check_instance(engine, run, now)
    elif run.status == WAITING_FOR_RUNNER:
        head = engine.run(pipeline_id, run.head_attempt)
        if head is None or head.terminal:
            if now >= run.ready_at:
                start_attempt(engine, run, now)
            else:
                engine.add_timer(run.ready_at, "check", pipeline_id, run.id)


# ---- endings -------------------------------------------------------------------
def end_attempt(
    engine: Engine, attempt: Run, status: str, now: float, *, retry: bool = True
) -> None:
    attempt.status = status
    attempt.actual_end = wall_time(now)
    engine.touch(attempt)
    instance = engine.run(attempt.pipeline_id, attempt.instance)
    if instance is None or instance.terminal:
        return
    instance.error_id = attempt.error_id
    instance.error_message = attempt.error_message
    instance.error_stack = attempt.error_stack
    defn = engine.definition(engine.pipelines[attempt.pipeline_id])
    if status in {FINISHED, CANCELED}:
        end_instance(engine, instance, status, now)
    elif status == FALSE:
        _retry_precondition(engine, defn, instance, now)
    elif retry and instance.tries_left > 0:
        instance.tries_left -= 1
        _retry_later(engine, defn, instance, now)
    else:
        end_instance(engine, instance, status, now)


def _retry_later(engine: Engine, defn: Definition, instance: Run, now: float) -> None:
    delay = timing.period_of(engine, instance, "retryDelay", DEFAULT_RETRY_DELAY, now)
    instance.status = WAITING_FOR_RUNNER
    instance.ready_at = now + engine.scaled(delay.total_seconds())
    engine.touch(instance)
    engine.add_timer(instance.ready_at, "check", instance.pipeline_id, instance.id)


def _retry_precondition(
    engine: Engine, defn: Definition, instance: Run, now: float
) -> None:
    delay = timing.period_of(engine, instance, "retryDelay", DEFAULT_RETRY_DELAY, now)
    if (
        instance.deadline
        and now + engine.scaled(delay.total_seconds()) > instance.deadline
    ):
        instance.error_id = "PreconditionTimeout"
        instance.error_message = "precondition still false at preconditionTimeout"
        end_instance(engine, instance, TIMEDOUT, now)
        return
    _retry_later(engine, defn, instance, now)


def _lose_resource(engine: Engine, activity: Run, now: float) -> None:
    """The activity's resource was stopped (`terminateAfter`): an attempt on it
    fails, with no retry (there is no resource left to retry on); an activity that
    had not started yet fails by cascade."""
    head = engine.run(activity.pipeline_id, activity.head_attempt)
    if head is None or head.terminal or activity.status == WAITING_ON_DEPENDENCIES:
        end_instance(engine, activity, CASCADE_FAILED, now)
        return
    head.error_id = "ResourceTimedOut"
    head.error_message = "the resource this attempt ran on passed its terminateAfter"
    end_attempt(engine, head, FAILED, now, retry=False)


def end_instance(engine: Engine, instance: Run, status: str, now: float) -> None:
    """Finish an instance and re-check whoever waits on it."""
    instance.status = status
    instance.actual_end = wall_time(now)
    engine.touch(instance)
    if instance.kind == ACTIVITY:
        resources.activity_ended(engine, instance, now)
        # room for the component's next slot (`schedule`, maxActiveInstances)
        engine.add_timer(now, "schedule", instance.pipeline_id, "")
    engine.waiting.get(instance.pipeline_id, set()).discard(instance.id)
    for other_id in sorted(engine.waiting.get(instance.pipeline_id, set())):
        other = engine.run(instance.pipeline_id, other_id)
        if other is not None and (
            instance.component in other.depends or instance.id in other.preconditions
        ):
            check_instance(engine, other, now)


def cancel_instance(engine: Engine, instance: Run, now: float) -> None:
    """TRY_CANCEL: end now, or if a runner holds it, answer `canceled` on progress."""
    if instance.terminal:
        return
    head = engine.run(instance.pipeline_id, instance.head_attempt)
    if head is not None and not head.terminal and head.task_id:
        head.cancel_requested = instance.cancel_requested = True
        engine.touch(head)
        engine.touch(instance)
    elif head is not None and not head.terminal:
        end_attempt(engine, head, CANCELED, now)
    else:
        end_instance(engine, instance, CANCELED, now)
