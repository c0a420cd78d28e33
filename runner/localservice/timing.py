"""The fields that time and count an instance's attempts, evaluated for it.

Owns: `check_fields` (every timing field of an instance and its resource's
`terminateAfter`, evaluated with the instance's runtime values, before its
attempt is queued) and `period_of` (one of them, when a timer needs it).

Must not: change any record (`lifecycle` fails the attempt when a field does
not evaluate).

Why: a duration may come from a parameter or an expression; read raw, it gave a
500 from PollForTask, SetTaskStatus or ActivatePipeline. Evaluated here, a bad
one is an attempt FAILED `InvalidField` naming the field.
"""

from __future__ import annotations

import datetime as dt

from runner.localservice.definition import Definition
from runner.localservice.engine import Engine
from runner.localservice.fieldtypes import InvalidFieldError
from runner.localservice.model import Run, runtime_of

TIMING_FIELDS = (
    "attemptTimeout",
    "retryDelay",
    "reportProgressTimeout",
    "preconditionTimeout",
    "lateAfterTimeout",
)


def check_fields(engine: Engine, defn: Definition, instance: Run, now: float) -> None:
    """Evaluate, for this instance, every field that times or counts its
    attempts, and its resource's `terminateAfter`. Raises InvalidFieldError."""
    runtime = runtime_of(instance, now)
    for key in TIMING_FIELDS:
        defn.period(instance.component, key, dt.timedelta(), runtime)
    defn.number(instance.component, "maximumRetries", 0, runtime)
    resource = engine.run(instance.pipeline_id, instance.resource)
    if resource is not None:
        defn.period(
            resource.component,
            "terminateAfter",
            dt.timedelta(),
            runtime_of(resource, now),
        )


def period_of(
    engine: Engine, run: Run, key: str, default: dt.timedelta, now: float
) -> dt.timedelta:
    """`key` of the run's component, evaluated for its instance. A field that
    does not evaluate failed the attempt in `start_attempt` already
    (InvalidFieldError); should its value turn bad since (it names the clock), the
    default applies rather than a 500."""
    defn = engine.definition(engine.pipelines[run.pipeline_id])
    instance = engine.run(run.pipeline_id, run.instance) if run.instance else run
    try:
        return defn.period(
            run.component, key, default, runtime_of(instance or run, now)
        )
    except InvalidFieldError:
        return default
