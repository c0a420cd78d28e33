"""What PutPipelineDefinition and ValidatePipelineDefinition report about a definition.

Owns: the definition checks (missing `type`, dangling refs, ShellCommand*
without `command` or `scriptUri`, activities with no worker group, schedules,
expressions outside the supported subset; the parameter checks are
`parameters`'), and the AWS answer shape `validationErrors` /
`validationWarnings` (`[{"id", "errors"|"warnings"}]`), with every masked value
blanked out of the messages (they quote field values and expression results).

Must not: store anything.

Why: AWS accepts and stores an errored definition but refuses to activate it;
the local service does the same, so these checks must be complete enough that a
definition which passes here also runs here. An expression is checked by
evaluating it with trial runtime values, so the subset that validates is exactly
the subset that evaluates.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from runner.localservice.definition import (
    COMMAND_TYPES,
    SECONDS_OK,
    SERVICE_PRECONDITIONS,
    SYSTEM_PRECONDITIONS,
    Definition,
    in_seconds,
    parse_duration,
    trial_runtime,
)
from runner.localservice.expressions import ExpressionError, parse_period
from runner.localservice.preconditions import s3_location

Report = dict[str, list[str]]
_PERIOD_KEYS = (
    "period",
    "retryDelay",
    "attemptTimeout",
    "reportProgressTimeout",
    "preconditionTimeout",
    "lateAfterTimeout",
)


def check(defn: Definition, pipeline_id: str) -> tuple[Report, Report]:
    """Return (errors, warnings), each mapping an object id to messages."""
    errors: Report = defaultdict(list)
    warnings: Report = defaultdict(list)
    runtime = trial_runtime(pipeline_id)
    for obj_id, (_, fields) in defn.objects.items():
        _check_fields(defn, obj_id, fields, runtime, errors[obj_id])
        _check_seconds(fields, warnings[obj_id])
        _check_type(defn, obj_id, errors[obj_id], warnings[obj_id])
        _check_service_precondition(defn, obj_id, runtime, errors[obj_id])
    parameter_errors, parameter_warnings = defn.params.check()
    for report, found in ((errors, parameter_errors), (warnings, parameter_warnings)):
        for name, messages in found.items():
            report[name].extend(messages)
    _check_schedules(defn, errors)
    return _compact(defn, errors), _compact(defn, warnings)


def _check_fields(
    defn: Definition,
    obj_id: str,
    fields: list[tuple[str, str, bool]],
    runtime: dict[str, object],
    errors: list[str],
) -> None:
    for key, value, is_ref in fields:
        if is_ref:
            if value not in defn.objects:
                errors.append(f"Field '{key}' references unknown object '{value}'")
            continue
        try:
            defn.expand_text(value, obj_id, runtime)
        except (ExpressionError, KeyError, ValueError, TypeError) as exc:
            errors.append(f"Field '{key}': unsupported expression in {value!r}: {exc}")
            continue
        if key in _PERIOD_KEYS and "#{" not in value:
            try:
                (parse_duration if key in SECONDS_OK else parse_period)(value)
            except ValueError as exc:
                errors.append(f"Field '{key}': invalid period {value!r}: {exc}")


def _check_type(
    defn: Definition, obj_id: str, errors: list[str], warnings: list[str]
) -> None:
    if obj_id == "Default":
        return
    kind = defn.type_of(obj_id)
    if not kind:
        errors.append("Missing required field: 'type'")
        return
    if kind in COMMAND_TYPES and not (
        defn.first(obj_id, "command") or defn.first(obj_id, "scriptUri")
    ):
        errors.append(f"{kind} requires one of 'command' or 'scriptUri'")
    if defn.is_activity(obj_id) and not (
        defn.first(obj_id, "workerGroup") or defn.refs(obj_id, "runsOn")
    ):
        errors.append("One of 'runsOn' or 'workerGroup' is required")
    if kind in SYSTEM_PRECONDITIONS and kind not in SERVICE_PRECONDITIONS:
        warnings.append(
            f"{kind} is checked by the service; the local service treats it as met"
        )


def _check_seconds(fields: list[tuple[str, str, bool]], warnings: list[str]) -> None:
    for key, value, is_ref in fields:
        if key in SECONDS_OK and not is_ref and in_seconds(value):
            warnings.append(
                f"Field '{key}': {value!r} is in seconds; the local service and "
                "dp-runner accept it, AWS may not (its periods are minutes, hours, "
                "days, weeks, months or years)"
            )


def _check_service_precondition(
    defn: Definition, obj_id: str, runtime: dict[str, object], errors: list[str]
) -> None:
    """S3KeyExists needs `s3Key`, S3PrefixNotEmpty `s3Prefix`: an s3:// URI."""
    key = SERVICE_PRECONDITIONS.get(defn.type_of(obj_id))
    if key is None or obj_id == "Default":
        return
    text = defn.first(obj_id, key)
    if not text:
        errors.append(f"Missing required field: '{key}'")
        return
    try:
        uri = defn.evaluate_text(text, obj_id, runtime)
    except (ExpressionError, KeyError, ValueError, TypeError):
        return  # _check_fields reports it
    where = s3_location(uri)
    if where is None or (key == "s3Key" and not where[1]):
        errors.append(f"Field '{key}': {uri!r} is not an s3://bucket/key URI")


def _check_schedules(defn: Definition, errors: Report) -> None:
    schedule_type = defn.schedule_type()
    if schedule_type not in {"ondemand", "cron", "timeseries"}:
        errors["Default"].append(f"Unknown scheduleType '{schedule_type}'")
        return
    if schedule_type == "ondemand":
        return
    for activity in defn.activities():
        schedules = defn.refs(activity, "schedule")
        if not schedules:
            errors[activity].append(f"scheduleType {schedule_type} needs a 'schedule'")
            continue
        schedule = schedules[0]
        if not defn.first(schedule, "period"):
            errors[schedule].append("Missing required field: 'period'")
        start = defn.first(schedule, "startDateTime")
        if (
            not start
            and defn.first(schedule, "startAt") != "FIRST_ACTIVATION_DATE_TIME"
        ):
            errors[schedule].append(
                "One of 'startDateTime' or 'startAt: FIRST_ACTIVATION_DATE_TIME' "
                "is required"
            )
        for key in ("startDateTime", "endDateTime"):
            text = defn.first(schedule, key)
            if text and "#{" not in text:
                try:
                    dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S")  # noqa: DTZ007 - AWS times are zone-less UTC
                except ValueError:
                    errors[schedule].append(
                        f"Field '{key}' must be YYYY-MM-DDTHH:MM:SS"
                    )


def _compact(defn: Definition, report: Report) -> Report:
    return {
        key: [defn.redact(message) for message in messages]
        for key, messages in report.items()
        if messages
    }


def answer(errors: Report, warnings: Report) -> dict[str, Any]:
    """The AWS response body for Put/ValidatePipelineDefinition."""
    return {
        "validationErrors": [{"id": k, "errors": v} for k, v in errors.items()],
        "validationWarnings": [{"id": k, "warnings": v} for k, v in warnings.items()],
        "errored": bool(errors),
    }
