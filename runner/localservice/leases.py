"""The lease rules: how an attempt is handed to a runner and how long it stays its.

Owns: `lease` (a new task id, the ack window, the attemptTimeout backstop),
`report_progress` (the ack, then each keep-alive moving the progress deadline),
and `check_lease`, which the `check` timer asks when an attempt's deadline comes:
still leased, back to the queue (the ack window missed), or timed out (no
progress within `reportProgressTimeout`, or `attemptTimeout` passed).

Must not: end an attempt or touch its instance's retries. `check_lease` says which
status the attempt ends with and `lifecycle.end_attempt` ends it, so the rules of
what follows an ending (retries, cascades) stay in one place. Callers hold the
engine lock.

Why apart from `lifecycle`: the lease is the runner-facing contract (the windows a
runner must meet), written against wall-clock deadlines multiplied by
`time_scale`; the rest of the lifecycle is what the service does with an ending.
Defaults (AWS's documented ones): reportProgressTimeout 15 minutes, ack window 2
minutes. Split from `lifecycle.py` by concept (issue 23).
"""

from __future__ import annotations

import datetime as dt
import secrets

from runner.localservice import resources, timing
from runner.localservice.engine import Engine
from runner.localservice.model import RUNNING, TIMEDOUT, Run, wall_time

ACK_WINDOW_S = 120.0
DEFAULT_PROGRESS_TIMEOUT = dt.timedelta(minutes=15)
# The runner enforces attemptTimeout in real seconds and reports FAILED. The
# service's backstop waits the grace longer (scaled), never less than the
# unscaled timeout plus the floor: a scaled clock must not beat the runner.
ATTEMPT_TIMEOUT_GRACE_S = 60.0
ATTEMPT_TIMEOUT_FLOOR_S = 2.0


def lease(engine: Engine, attempt: Run, now: float, hostname: str) -> str:
    """Hand the attempt to a runner: new task id, ack deadline."""
    task_id = (
        secrets.token_urlsafe(600)
        + ":"
        + attempt.pipeline_id
        + ":"
        + str(attempt.seq)
        + ":"
        + str(engine.next_seq())
    )
    attempt.task_id = task_id
    attempt.hostname = hostname
    attempt.acked = False
    attempt.deadline = now + engine.scaled_lease(ACK_WINDOW_S)
    if not attempt.actual_start:
        attempt.actual_start = wall_time(now)
    timeout = timing.period_of(engine, attempt, "attemptTimeout", dt.timedelta(), now)
    if timeout and not attempt.attempt_deadline:
        # attemptTimeout bounds real work: it is never scaled, only the grace is
        attempt.attempt_deadline = (
            now
            + timeout.total_seconds()
            + max(engine.scaled(ATTEMPT_TIMEOUT_GRACE_S), ATTEMPT_TIMEOUT_FLOOR_S)
        )
    engine.tasks[task_id] = (attempt.pipeline_id, attempt.id)
    engine.touch(attempt)
    instance = engine.run(attempt.pipeline_id, attempt.instance)
    if instance is not None:
        resources.attempt_leased(engine, instance, now)
    engine.add_timer(lease_deadline(attempt), "check", attempt.pipeline_id, attempt.id)
    return task_id


def lease_deadline(attempt: Run) -> float:
    if attempt.attempt_deadline:
        return min(attempt.deadline, attempt.attempt_deadline)
    return attempt.deadline


def report_progress(engine: Engine, attempt: Run, now: float) -> None:
    """An ack (first call) or keep-alive: extend the progress deadline."""
    window = timing.period_of(
        engine, attempt, "reportProgressTimeout", DEFAULT_PROGRESS_TIMEOUT, now
    )
    attempt.deadline = now + engine.scaled_lease(window.total_seconds())
    if not attempt.acked:
        attempt.acked = True
        attempt.status = RUNNING
        instance = engine.run(attempt.pipeline_id, attempt.instance)
        if instance is not None:
            instance.status = RUNNING
            instance.actual_start = instance.actual_start or wall_time(now)
            engine.touch(instance)
    engine.touch(attempt)


def check_lease(engine: Engine, attempt: Run, now: float) -> str | None:
    """At the attempt's deadline: the status it ends with (TIMEDOUT, its error
    set), or None while it stays leased or goes back to the queue."""
    if not attempt.task_id:
        return None
    if attempt.attempt_deadline and now >= attempt.attempt_deadline:
        attempt.error_id = "AttemptTimeout"
        attempt.error_message = "attemptTimeout passed (service side)"
        return TIMEDOUT
    if now < attempt.deadline:
        engine.add_timer(
            lease_deadline(attempt), "check", attempt.pipeline_id, attempt.id
        )
        return None
    if attempt.acked:
        attempt.error_id = "ReportProgressTimeout"
        attempt.error_message = "no ReportTaskProgress within reportProgressTimeout"
        return TIMEDOUT
    # Ack window missed: the same attempt goes back to the queue; the old task id
    # is forgotten so that it answers TaskNotFoundException.
    engine.tasks.pop(attempt.task_id, None)
    attempt.task_id = ""
    engine.touch(attempt)
    engine.enqueue(attempt)
    return None
