"""What PutPipelineDefinition and ValidatePipelineDefinition report about a definition.

Owns: running every check over a definition and the AWS answer shape
`validationErrors` / `validationWarnings` (`[{"id", "errors"|"warnings"}]`), with
every masked value blanked out of the messages (they quote field values and
expression results). The checks made here: dangling references, expressions
outside the supported subset, periods (their syntax, and the AWS minimums of DG
dp-limits: a Schedule's `period` of at least 15 minutes and at most 3 years, a
`retryDelay` of at least 2 minutes; a timeout given in local `seconds` only gets
a warning), S3 locations after evaluation, the S3 preconditions' URIs, and
schedules (`scheduleType`, an activity's `schedule`, `startDateTime`'s form).
What each type requires is `typerules`' (from `catalog`); the parameter checks
are `parameters`'.

Must not: store anything.

Why: AWS accepts and stores an errored definition but refuses to activate it;
the local service does the same, so these checks must be complete enough that a
definition which passes here also runs here. An expression is checked by
evaluating it with trial runtime values, so the subset that validates is exactly
the subset that evaluates, and a location built by an expression is checked as
the value it evaluates to.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from runner.localservice import typerules
from runner.localservice.awschecks import s3_location
from runner.localservice.definition import (
    SERVICE_PRECONDITIONS,
    Definition,
    trial_runtime,
)
from runner.localservice.expressions import ExpressionError, parse_period
from runner.localservice.expressions import validate as validate_expression
from runner.localservice.fieldtypes import (
    SECONDS_OK,
    in_seconds,
    parse_duration,
    parse_number,
)
from runner.localservice.objecttype import ACTION

Report = dict[str, list[str]]
_PERIOD_KEYS = (
    "period",
    "retryDelay",
    "attemptTimeout",
    "reportProgressTimeout",
    "preconditionTimeout",
    "lateAfterTimeout",
    "terminateAfter",
    "initTimeout",
)
_NUMBER_KEYS = frozenset({"maximumRetries", "maxActiveInstances"})
# DG dp-limits: "Minimum scheduling interval 15 minutes", "Minimum delay between
# retry attempts 2 minutes"; DG dp-object-schedule: "the maximum period is 3 years".
MIN_PERIOD = dt.timedelta(minutes=15)
MAX_PERIOD = dt.timedelta(days=3 * 365)
MIN_RETRY_DELAY = dt.timedelta(minutes=2)
SCHEDULE_TYPES = frozenset({"ondemand", "cron", "timeseries"})


def check(defn: Definition, pipeline_id: str) -> tuple[Report, Report]:
    """Return (errors, warnings), each mapping an object id to messages."""
    errors: Report = defaultdict(list)
    warnings: Report = defaultdict(list)
    runtime = trial_runtime(pipeline_id)
    for obj_id in defn.objects:
        mine, noted = errors[obj_id], warnings[obj_id]
        _check_fields(defn, obj_id, runtime, mine, noted)
        _check_seconds(defn, obj_id, noted)
        typerules.check_limits(defn, obj_id, mine)
        if obj_id == "Default":
            typerules.check_default(defn, noted)
            continue
        found = typerules.check_type(defn, obj_id, mine)
        typerules.check_fields_of_type(defn, obj_id, found, mine, noted)
        typerules.check_rules_of_type(defn, obj_id, mine, noted)
        _check_service_precondition(defn, obj_id, runtime, mine)
    parameter_errors, parameter_warnings = defn.params.check()
    for report, found_by_id in (
        (errors, parameter_errors),
        (warnings, parameter_warnings),
    ):
        for name, messages in found_by_id.items():
            report[name].extend(messages)
    _check_schedules(defn, errors)
    return _compact(defn, errors), _compact(defn, warnings)


def _check_fields(
    defn: Definition,
    obj_id: str,
    runtime: dict[str, object],
    errors: list[str],
    warnings: list[str],
) -> None:
    # An action's `#{node...}` is the object it fires for (DG dp-object-snsalarm):
    # known only when it fires, so its expressions are parsed, not evaluated.
    action = defn.kind(obj_id) == ACTION
    for key, value, is_ref in defn.objects[obj_id][1]:
        if is_ref:
            if value not in defn.objects:
                errors.append(f"Field '{key}' references unknown object '{value}'")
            continue
        try:
            if action:
                validate_expression(value)
                continue
            shown = defn.expand_text(value, obj_id, runtime)
        except (ExpressionError, KeyError, ValueError, TypeError) as exc:
            errors.append(f"Field '{key}': unsupported expression in {value!r}: {exc}")
            continue
        for text in shown:
            typerules.check_location(key, text, errors, warnings)
            if key in _PERIOD_KEYS:
                _check_period(key, text, errors)
            if key in _NUMBER_KEYS:
                _check_number(key, text, errors)


def _check_number(key: str, text: str, errors: list[str]) -> None:
    try:
        parse_number(text)
    except ValueError as exc:
        errors.append(f"Field '{key}': {exc}")


def _check_period(key: str, text: str, errors: list[str]) -> None:
    try:
        period = (parse_duration if key in SECONDS_OK else parse_period)(text)
    except ValueError as exc:
        errors.append(f"Field '{key}': invalid period {text!r}: {exc}")
        return
    if in_seconds(text):
        return  # local seconds: `_check_seconds` warns
    if key == "period" and not MIN_PERIOD <= period <= MAX_PERIOD:
        errors.append(
            f"Field 'period': {text!r} is outside AWS's bounds of 15 minutes to "
            "3 years (DG dp-limits, dp-object-schedule)"
        )
    if key == "retryDelay" and period < MIN_RETRY_DELAY:
        errors.append(
            f"Field 'retryDelay': {text!r} is below AWS's minimum of 2 minutes "
            "(DG dp-limits)"
        )


def _check_seconds(defn: Definition, obj_id: str, warnings: list[str]) -> None:
    for key, value, is_ref in defn.objects[obj_id][1]:
        if key in SECONDS_OK and not is_ref and in_seconds(value):
            warnings.append(
                f"Field '{key}': {value!r} is in seconds; the local service and "
                "dp-runner accept it, AWS may not (its periods are minutes, hours, "
                "days, weeks, months or years)"
            )


def _check_service_precondition(
    defn: Definition, obj_id: str, runtime: dict[str, object], errors: list[str]
) -> None:
    """S3KeyExists' `s3Key` is an s3://bucket/key URI, S3PrefixNotEmpty's
    `s3Prefix` an s3://bucket[/prefix] one (DG dp-object-S3KeyExists,
    dp-object-s3prefixnotempty). Their absence is `typerules`' to report."""
    kind = defn.type_of(obj_id)
    key = SERVICE_PRECONDITIONS.get(kind)
    text = defn.first(obj_id, key) if key in {"s3Key", "s3Prefix"} else None
    if not key or not text:
        return
    try:
        uri = defn.evaluate_text(text, obj_id, runtime)
    except (ExpressionError, KeyError, ValueError, TypeError):
        return  # _check_fields reports it
    where = s3_location(uri)
    if where is None or (key == "s3Key" and not where[1]):
        errors.append(f"Field '{key}': {uri!r} is not an s3://bucket/key URI")


def _check_schedules(defn: Definition, errors: Report) -> None:
    """DG dp-object-schedule and the activities' "Object Invocation Fields": a
    cron or timeseries pipeline's activities need a `schedule`; an ondemand one's
    do not."""
    schedule_type = defn.schedule_type()
    if schedule_type not in SCHEDULE_TYPES:
        errors["Default"].append(f"Unknown scheduleType '{schedule_type}'")
        return
    for obj_id, (_, fields) in defn.objects.items():
        for key, value, is_ref in fields:
            if (
                key == "scheduleType"
                and not is_ref
                and value.lower() not in (SCHEDULE_TYPES)
            ):
                errors[obj_id].append(f"Unknown scheduleType '{value}'")
            if key in {"startDateTime", "endDateTime"} and "#{" not in value:
                _check_datetime(key, value, errors[obj_id])
    if schedule_type == "ondemand":
        return
    for activity in defn.activities():
        if not defn.refs(activity, "schedule"):
            errors[activity].append(f"scheduleType {schedule_type} needs a 'schedule'")


def _check_datetime(key: str, text: str, errors: list[str]) -> None:
    try:
        dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S")  # noqa: DTZ007 - AWS times are zone-less UTC
    except ValueError:
        errors.append(f"Field '{key}' must be YYYY-MM-DDTHH:MM:SS")


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
