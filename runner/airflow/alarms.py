"""An activity's alarms, as the DAG carries them: ``onFail``, ``onSuccess``, and
``lateAfterTimeout`` with ``onLateAction``.

Owns: ``Alarm`` (one SnsAlarm, as a callback publishes it), ``alarms`` (the
SnsAlarms an activity's ``onFail``, ``onSuccess`` or ``onLateAction`` names),
and ``late_alarm`` (``lateAfterTimeout`` + ``onLateAction`` as a ``Late``: a
deadline on the DAG run, ``lateAfterTimeout`` after its ``@scheduledStartTime``,
which publishes the onLateAction alarms when the run has not finished by then).
Each reports what it cannot carry in ``notes``.

How late maps, and where it differs. In Data Pipeline an instance is late when
it has not completed ``lateAfterTimeout`` after its scheduled start; then its
``onLateAction`` runs. Airflow 3.1+ has deadline alerts on the DAG run only: the
DAG file gives the run one ``DeadlineAlert`` per late activity (reference: the
run's logical date, which is the slot's start; interval: ``lateAfterTimeout``),
so the alarm fires when the *run* is not done by then, which includes the
activity. Airflow 2.x has no deadline alerts (``sla_miss_callback`` measures
each task from the end of the data interval and is gone in 3.x): there the late
alarms are not carried, and the export says so. ``ondemand`` has no scheduled
start: AWS never makes such an instance late either.

Must not: import airflow, boto3 or click (the export runs without them);
evaluate expressions (a subject with ``#{...}`` is published as written, and
reported).
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.airflow.fields import Reader
from runner.airflow.schedule import ScheduleError, period_seconds


@dataclass(frozen=True, slots=True)
class Alarm:
    """An SnsAlarm, as a callback publishes it."""

    object_id: str
    topic_arn: str
    subject: str
    message: str


@dataclass(frozen=True, slots=True)
class Late:
    """``lateAfterTimeout`` and the ``onLateAction`` alarms of one activity."""

    object_id: str
    after_s: float
    alarms: tuple[Alarm, ...]


def alarms(reader: Reader, obj_id: str, key: str, notes: list[str]) -> list[Alarm]:
    """The SnsAlarms ``key`` of ``obj_id`` names; any other action in ``notes``."""
    found = []
    for action in reader.refs(obj_id, key):
        kind = reader.type_of(action)
        topic = reader.text(action, "topicArn")
        if kind != "SnsAlarm" or topic is None:
            notes.append(f"{obj_id}: {key} {action} (a {kind or 'typeless object'})")
            continue
        subject = reader.text(action, "subject") or ""
        message = reader.text(action, "message") or ""
        if "#{" in subject + message:
            notes.append(
                f"{obj_id}: {key} {action}: expressions in subject or message "
                "(published as written)"
            )
        found.append(Alarm(action, topic, subject, message))
    return found


def late_alarm(
    reader: Reader, obj_id: str, *, manual: bool, notes: list[str]
) -> Late | None:
    """``lateAfterTimeout`` + ``onLateAction`` of ``obj_id`` as a ``Late``, or
    None (and why, in ``notes``, when either is set). ``manual``: the DAG is
    triggered by hand (``ondemand``). ValueError for a timeout that is not a
    period."""
    text = reader.text(obj_id, "lateAfterTimeout")
    actions = alarms(reader, obj_id, "onLateAction", notes)
    if text is None:
        if reader.refs(obj_id, "onLateAction"):
            notes.append(f"{obj_id}: onLateAction, no lateAfterTimeout (never late)")
        return None
    if manual:
        notes.append(f"{obj_id}: lateAfterTimeout (ondemand: no scheduled start)")
        return None
    if not actions:
        notes.append(f"{obj_id}: lateAfterTimeout without an onLateAction SnsAlarm")
        return None
    try:
        after = period_seconds(text)
    except ScheduleError as exc:
        raise ValueError(f"{obj_id}: lateAfterTimeout: {exc}") from exc
    notes.append(
        f"{obj_id}: lateAfterTimeout {text} + onLateAction: a deadline alert on the "
        "DAG run (Airflow 3.1+); not carried on Airflow 2.x (no deadline alerts)"
    )
    return Late(obj_id, after, tuple(actions))
