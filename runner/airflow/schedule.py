"""A Data Pipeline Schedule as an Airflow timetable with the same instants.

Owns: ``timing``, which reads a Schedule object (``period``, ``startDateTime`` or
``startAt``, ``endDateTime`` or ``occurrences``) and the pipeline's
``scheduleType`` into a ``Timing``: which timetable, its period, and the DAG's
``start_date`` and ``end_date``.

How the instants match. In Data Pipeline an instance has a slot
[``@scheduledStartTime``, ``@scheduledEndTime``): with ``timeseries`` it runs at
the end of its slot, with ``cron`` at the start. Airflow's data interval is the
same slot: ``DeltaDataIntervalTimetable`` runs a DAG run at the end of its
interval (timeseries), ``DeltaTriggerTimetable`` at the instant itself, with an
empty interval (cron). Either way the operator hands ``data_interval_start`` to
``dp-runner exec --scheduled-start``, so ``@scheduledStartTime`` means in Airflow
what it meant in Data Pipeline. ``ondemand`` is a DAG without a schedule, run by
hand. ``occurrences`` N ends the DAG at the N-th instant; ``endDateTime`` is
exclusive in Data Pipeline and inclusive in Airflow, so the end is one second
before it.

Must not: import airflow (the export runs without it): the timetable is written
into the DAG file as text, by ``render``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

#: A period's unit, as the DAG file writes it: a ``timedelta`` or a
#: ``relativedelta`` keyword (months and years are calendar arithmetic).
_UNITS = {
    "second": "seconds",
    "minute": "minutes",
    "hour": "hours",
    "day": "days",
    "week": "weeks",
    "month": "months",
    "year": "years",
}
_PERIOD = re.compile(r"\s*(\d{1,9})\s*([a-z]+?)s?\s*", re.ASCII | re.IGNORECASE)
_DP_TIME = "%Y-%m-%dT%H:%M:%S"


class ScheduleError(ValueError):
    """A Schedule the export cannot turn into instants; the message names it."""


@dataclass(frozen=True, slots=True)
class Period:
    """A Data Pipeline period: ``count`` of ``unit`` (``days``, ``months``...)."""

    count: int
    unit: str

    @property
    def calendar(self) -> bool:
        """True for months and years: a ``relativedelta``, not a ``timedelta``."""
        return self.unit in {"months", "years"}

    def times(self, n: int) -> Period:
        return Period(self.count * n, self.unit)

    def after(self, moment: dt.datetime) -> dt.datetime:
        """``moment`` plus this period (months and years by the calendar)."""
        if not self.calendar:
            return moment + dt.timedelta(**{self.unit: self.count})
        months = self.count * (12 if self.unit == "years" else 1)
        month0 = moment.month - 1 + months
        year, month = moment.year + month0 // 12, month0 % 12 + 1
        day = min(moment.day, _days_in(year, month))
        return moment.replace(year=year, month=month, day=day)


@dataclass(frozen=True, slots=True)
class Timing:
    """The DAG's schedule. ``kind``: ``manual`` (ondemand), ``interval``
    (timeseries) or ``trigger`` (cron). ``notes``: what did not carry exactly."""

    kind: str
    period: Period | None
    start: dt.datetime | None
    end: dt.datetime | None
    notes: tuple[str, ...] = ()


def parse_period(text: str) -> Period:
    """``"1 Day"`` -> ``Period(1, "days")``. ScheduleError when malformed."""
    match = _PERIOD.fullmatch(text)
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None or int(match.group(1)) <= 0:
        raise ScheduleError(f"period {text!r} is not like '1 day' or '15 minutes'")
    return Period(int(match.group(1)), unit)


def period_seconds(text: str) -> float:
    """A period as a duration (a timeout, a retry delay), months as 30 days and
    years as 365, as the runner reads one (``activities.periods``, which this
    module must not import: its package imports boto3). ScheduleError else."""
    period = parse_period(text)
    days = {"months": 30, "years": 365}.get(period.unit)
    if days is not None:
        return float(period.count * days * 86400)
    return dt.timedelta(**{period.unit: period.count}).total_seconds()


def timing(
    schedule_type: str, fields: dict[str, str] | None, now: dt.datetime
) -> Timing:
    """The timing of a pipeline whose ``scheduleType`` is ``schedule_type`` and
    whose activities use the Schedule with ``fields`` (None: no schedule).
    ``now`` stands for the first activation (``startAt``)."""
    kind = (schedule_type or "timeseries").lower()
    if kind == "ondemand" or fields is None:
        return Timing("manual", None, None, None)
    if kind not in {"cron", "timeseries"}:
        raise ScheduleError(f"scheduleType {schedule_type!r} is not cron, timeseries")
    period = parse_period(fields.get("period", ""))
    notes: list[str] = []
    start = _start(fields, now, notes)
    end = _end(fields, start, period)
    return Timing(
        "trigger" if kind == "cron" else "interval", period, start, end, tuple(notes)
    )


def _start(fields: dict[str, str], now: dt.datetime, notes: list[str]) -> dt.datetime:
    if "startDateTime" in fields:
        return _time(fields["startDateTime"], "startDateTime")
    if fields.get("startAt") == "FIRST_ACTIVATION_DATE_TIME":
        notes.append(
            "startAt FIRST_ACTIVATION_DATE_TIME: start_date is the time of the "
            "export (Airflow has no first activation): edit it"
        )
        return now.replace(second=0, microsecond=0)
    raise ScheduleError("a Schedule needs startDateTime or startAt")


def _end(
    fields: dict[str, str], start: dt.datetime, period: Period
) -> dt.datetime | None:
    if "endDateTime" in fields:
        return _time(fields["endDateTime"], "endDateTime") - dt.timedelta(seconds=1)
    if "occurrences" in fields:
        text = fields["occurrences"]
        if not text.isdigit() or int(text) < 1:
            raise ScheduleError(f"occurrences {text!r} is not a positive number")
        count = int(text)
        return period.times(count - 1).after(start) if count > 1 else start
    return None


def _time(text: str, key: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(text, _DP_TIME).replace(tzinfo=dt.UTC)
    except ValueError:
        raise ScheduleError(f"{key} {text!r} is not YYYY-MM-DDTHH:MM:SS") from None


def _days_in(year: int, month: int) -> int:
    following = dt.date(year + month // 12, month % 12 + 1, 1)
    return (following - dt.timedelta(days=1)).day
