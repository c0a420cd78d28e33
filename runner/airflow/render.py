"""A plan written out as one DAG file, readable and meant to be kept and edited.

Owns: ``render``, the text of the file: a docstring that says where it came from,
which Airflow Variables hold the secrets and what was not carried; imports
guarded so that the same file loads on Airflow 3.x and on 2.x; ``DEFINITION``
(the definition without secrets, as a Python literal of the JSON file);
``SECRETS``; the DAG with its timetable; one task per plan task; the edges.

Must not: import airflow; write any value of ``Definition`` that is secret
(``secrets.strip_secrets`` has removed them before); lose a field: every task
argument the plan sets is written, with the Data Pipeline field it came from.

Why a literal and not a path to the JSON file: the DAG file is the migrated
pipeline, one file that MWAA or a Celery deployment copies to its DAGs folder.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable

from runner.airflow.alarms import Alarm, Late
from runner.airflow.plan import Plan, Task
from runner.airflow.schedule import Period, Timing
from runner.pipelinefile import Definition, definition_to_json

_HEADER = '''\
"""Airflow DAG {dag_id!r}, exported by `dp-runner export airflow` from {source}.

This file is the migrated pipeline: keep it and edit it. Each task runs
`dp-runner exec` of one object of DEFINITION, with the runner's own code, so every
Airflow worker needs the `dp-runner[airflow]` package (docs/airflow.md).
{secrets}
{not_carried}"""

from __future__ import annotations

import datetime as dt

try:  # Airflow 3.x
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x (MWAA)
    from airflow import DAG
from dateutil.relativedelta import relativedelta  # noqa: F401 - month periods
from runner.airflow.operator import (  # noqa: F401
    DpRunnerExecOperator,
    DpRunnerPreconditionSensor,
    LateAlarm,
    NotTranslatedOperator,
    SnsAlarm,
    deadline_alerts,
    data_interval_timetable,
    trigger_timetable,
)
'''


def render(
    plan: Plan,
    dag_id: str,
    source: str,
    defn: Definition,
    variables: dict[str, str],
) -> str:
    """The DAG file's text."""
    doc = definition_to_json(
        defn.pipeline_objects, defn.parameter_objects, defn.parameter_values
    )
    parts = [
        _HEADER.format(
            dag_id=dag_id,
            source=source,
            secrets=_secrets_doc(variables),
            not_carried=_not_carried_doc(plan.not_carried),
        ),
        "# The definition, without secrets: what each `dp-runner exec` runs.",
        f"DEFINITION = {json.dumps(doc, indent=4)}",
        "",
        "# Masked parameters: each value is read at run time from an Airflow Variable.",
        f"SECRETS = {json.dumps(variables, indent=4)}",
        "",
        "with DAG(",
        f"    dag_id={dag_id!r},",
        *_schedule_lines(plan.timing),
        "    max_active_runs=1,",
        "    tags=['dp-runner'],",
        *_late_lines(plan.late),
        "):",
    ]
    parts.extend(_task_lines(task) for task in plan.tasks)
    parts.extend(_edge_lines(plan))
    return "\n".join(parts) + "\n"


def _secrets_doc(variables: dict[str, str]) -> str:
    if not variables:
        return (
            "\nNo secrets: the definition has no masked parameter or *password field.\n"
        )
    lines = ["", "Secrets are not in this file. Set these Airflow Variables:"]
    lines.extend(
        f"    {var}  (the masked parameter {name})" for name, var in variables.items()
    )
    return "\n".join(lines) + "\n"


def _not_carried_doc(items: list[str]) -> str:
    if not items:
        return "Everything the definition says is carried.\n"
    lines = ["Not carried (the export lists them; docs/airflow.md says why):"]
    lines.extend(f"    {item}" for item in items)
    return "\n".join(lines) + "\n"


def _schedule_lines(timing: Timing) -> list[str]:
    if timing.kind == "manual":
        return ["    schedule=None,  # scheduleType ondemand: triggered by hand"]
    assert timing.period is not None  # noqa: S101 - timing() sets it for a schedule
    maker = (
        "data_interval_timetable" if timing.kind == "interval" else "trigger_timetable"
    )
    why = (
        "timeseries: a run at the end of its slot"
        if timing.kind == "interval"
        else "cron: a run at the start of its slot"
    )
    return [
        f"    schedule={maker}({_period(timing.period)}),  # {why}",
        f"    start_date={_moment(timing.start)},",
        f"    end_date={_moment(timing.end)},",
        "    catchup=True,  # Data Pipeline runs the slots of a past start too",
    ]


def _late_lines(late: list[Late]) -> list[str]:
    """``lateAfterTimeout`` + ``onLateAction``: the DAG's deadline alerts, where
    the Airflow version has them (``deadline_alerts`` gives none on 2.x)."""
    if not late:
        return []
    return [
        "    # lateAfterTimeout + onLateAction: late if the run is not done by then",
        "    **deadline_alerts(",
        *(
            f"        LateAlarm({item.object_id!r}, {item.after_s!r}, "
            f"{alarm.topic_arn!r}, subject={alarm.subject!r}, "
            f"message={alarm.message!r}),  # onLateAction {alarm.object_id}"
            for item in late
            for alarm in item.alarms
        ),
        "    ),",
    ]


def _period(period: Period) -> str:
    kind = "relativedelta" if period.calendar else "dt.timedelta"
    return f"{kind}({period.unit}={period.count})"


def _moment(moment: dt.datetime | None) -> str:
    if moment is None:
        return "None"
    parts = [moment.year, moment.month, moment.day, moment.hour, moment.minute]
    numbers = ", ".join(str(p) for p in parts)
    if moment.second:
        numbers += f", {moment.second}"
    return f"dt.datetime({numbers}, tzinfo=dt.timezone.utc)"


def _task_lines(task: Task) -> str:
    args = [f"task_id={task.task_id!r}"]
    if task.kind == "untranslated":
        args.append(f"reason={task.reason!r}")
        return _call(task.task_id, "NotTranslatedOperator", args)
    args += [
        "definition=DEFINITION",
        f"object_id={task.object_id!r}",
        "secrets=SECRETS",
    ]
    if task.kind == "sensor":
        if task.sensor_timeout_s is not None:
            args.append(f"timeout={task.sensor_timeout_s!r},  # preconditionTimeout")
        args.append(f"poke_interval={task.poke_interval_s!r},  # retryDelay")
        args.append("mode='reschedule',  # no worker slot held between checks")
        return _call(task.task_id, "DpRunnerPreconditionSensor", [*args, *_queue(task)])
    args.append(f"retries={task.retries},  # maximumRetries")
    args.append(f"retry_delay={_delta(task.retry_delay_s)},  # retryDelay")
    if task.execution_timeout_s is not None:
        args.append(
            f"execution_timeout={_delta(task.execution_timeout_s)},"
            "  # attemptTimeout + 60 s (exec times out first)"
        )
    if task.max_active is not None:
        args.append(f"max_active_tis_per_dag={task.max_active},  # maxActiveInstances")
    args.extend(_callbacks("on_failure_callback", task.on_fail, "onFail"))
    args.extend(_callbacks("on_success_callback", task.on_success, "onSuccess"))
    return _call(task.task_id, "DpRunnerExecOperator", [*args, *_queue(task)])


def _queue(task: Task) -> list[str]:
    return [f"queue={task.queue!r},  # workerGroup"] if task.queue is not None else []


def _callbacks(name: str, alarms: list[Alarm], key: str) -> list[str]:
    if not alarms:
        return []
    calls = [
        f"SnsAlarm({a.topic_arn!r}, subject={a.subject!r}, message={a.message!r})"
        for a in alarms
    ]
    if len(calls) == 1:
        return [f"{name}={calls[0]},  # {key} {alarms[0].object_id}"]
    return [f"{name}=[{', '.join(calls)}],  # {key}"]


def _call(task_id: str, operator: str, args: Iterable[str]) -> str:
    lines = [f"    {_variable(task_id)} = {operator}("]
    for arg in args:
        text = arg if ",  #" in arg else f"{arg},"
        lines.append(f"        {text}")
    lines.append("    )")
    return "\n".join(lines)


def _edge_lines(plan: Plan) -> list[str]:
    if not plan.edges:
        return []
    lines = [
        "",
        "    # dependsOn, preconditions, and the writer of each input data node",
    ]
    lines.extend(f"    {_variable(up)} >> {_variable(down)}" for up, down in plan.edges)
    return lines


def _variable(task_id: str) -> str:
    """The task's Python name: its id is letters, digits and _ (plan)."""
    return f"t_{task_id}"


def _delta(value: float | None) -> str:
    return "None" if value is None else f"dt.timedelta(seconds={float(value)!r})"
