"""Date-times, periods and the date functions of the ``#{...}`` expression language.

Owns: the ``YYYY-MM-DDTHH:MM:SS`` wire format (always UTC, no zone), the ``N units``
period syntax, Joda-Time calendar arithmetic, Joda ``DateTimeFormat`` patterns, and
the table of the DG's functions (``FUNCTIONS``: parameter kinds and implementation).
It also holds the vocabulary every layer shares: ``ExpressionError`` and ``Scalar``.

Must not: import the tokenizer, parser or evaluator (``exprparse``, ``expressions``),
or anything outside the standard library (``localservice`` is an island).

Why: all of this is plain calendar code, testable without the parser; keeping it at
the bottom lets the parser check function arity and the evaluator convert arguments
against one table, with imports pointing one way (expressions -> exprparse -> here).
The public names are re-exported by ``runner.localservice.expressions``.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Scalar: TypeAlias = str | int | float | datetime


class ExpressionError(ValueError):
    """An expression, period or date-time outside the supported subset.

    The message says what is wrong and where (the expression and the position)."""


# ---- date-times and periods -------------------------------------------------------
def _shift(moment: datetime, unit: str, amount: int) -> datetime:
    """Joda-Time arithmetic: minutes and hours are exact durations; days and weeks keep
    the wall-clock time; months and years clamp the day to the end of the month."""
    try:
        if unit in ("minutes", "hours"):
            utc = moment.astimezone(UTC) + timedelta(**{unit: amount})
            return utc.astimezone(moment.tzinfo)
        if unit in ("days", "weeks"):
            return moment + timedelta(**{unit: amount})
        year, month0 = divmod(
            moment.month - 1 + amount * (12 if unit == "years" else 1), 12
        )
        year += moment.year
        day = min(moment.day, calendar.monthrange(year, month0 + 1)[1])
        return moment.replace(year=year, month=month0 + 1, day=day)
    except (OverflowError, ValueError) as exc:
        raise ExpressionError(
            f"date-time out of range after adding {amount} {unit}"
        ) from exc


# N has at most 6 digits: a million weeks is already past what a datetime holds
_PERIOD = re.compile(r"\s*([0-9]{1,6})\s*([A-Za-z]+?)s?\s*")
_PERIOD_UNITS = {  # a month and a year are approximations: see add_period
    **{
        unit[:-1]: timedelta(**{unit: 1})
        for unit in ("minutes", "hours", "days", "weeks")
    },
    **{"month": timedelta(days=30), "year": timedelta(days=365)},
}


def _period_parts(text: str) -> tuple[int, str]:
    match = _PERIOD.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _PERIOD_UNITS or int(match.group(1)) == 0:
        units = "minutes|hours|days|weeks|months|years"
        raise ExpressionError(f"bad period {text!r}: expected 'N {units}' with N >= 1")
    return int(match.group(1)), unit


def parse_period(text: str) -> timedelta:
    """``"15 minutes"``, ``"1 Day"``, ``"2 weeks"``... as a duration.

    Approximation: a month is 30 days and a year 365 (``add_period`` steps by the
    calendar). The DG's bounds (15 minutes to 3 years) are the caller's to enforce.
    Raises ExpressionError."""
    count, unit = _period_parts(text)
    return count * _PERIOD_UNITS[unit]


def add_period(moment: datetime, period: str, times: int = 1) -> datetime:
    """``moment`` plus ``times`` periods, with Joda-Time calendar arithmetic (1 month
    after Jan 31 is Feb 28/29). Keeps the naive/aware kind of ``moment``."""
    count, unit = _period_parts(period)
    result = _shift(aware(moment), unit + "s", count * times)
    return result.replace(tzinfo=None) if moment.tzinfo is None else result


WIRE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)")


def aware(moment: datetime) -> datetime:
    """``moment`` with UTC attached when it is naive (naive means UTC here)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def wire(moment: datetime) -> str:
    """The wire format of ``moment`` in its own zone (kept by ``inTimeZone``)."""
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}"


def format_datetime(moment: datetime) -> str:
    """The wire format ``YYYY-MM-DDTHH:MM:SS`` in UTC; a naive ``moment`` is UTC."""
    return wire(aware(moment).astimezone(UTC))


def parse_datetime(text: str) -> datetime:
    """The inverse of ``format_datetime``, as an aware UTC datetime.
    Raises ExpressionError."""
    match = WIRE.fullmatch(text)
    if match is None:
        raise ExpressionError(f"bad date-time {text!r}: expected YYYY-MM-DDTHH:MM:SS")
    year, month, day, hour, minute, second = map(int, match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise ExpressionError(f"bad date-time {text!r}: {exc}") from None


# ---- Joda-Time DateTimeFormat patterns -------------------------------------------
_JODA_RUN = re.compile(r"''|'(?:[^']|'')+'|([A-Za-z])\1*|[^A-Za-z']+")
# fmt: off
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_NUMBERS: dict[str, Callable[[datetime], int]] = {
    "C": lambda m: m.year // 100, "Y": lambda m: m.year, "y": lambda m: m.year,
    "x": lambda m: m.isocalendar()[0], "w": lambda m: m.isocalendar()[1],
    "e": lambda m: m.isoweekday(), "D": lambda m: m.timetuple().tm_yday,
    "M": lambda m: m.month, "d": lambda m: m.day, "H": lambda m: m.hour,
    "k": lambda m: m.hour or 24, "K": lambda m: m.hour % 12,
    "h": lambda m: m.hour % 12 or 12, "m": lambda m: m.minute, "s": lambda m: m.second,
}
# fmt: on
_SHORT, _FULL, _NOON = 3, 4, 12  # Joda: 3 letters or fewer is short text, 4 is full
_TEXTS: dict[str, Callable[[datetime, int], str]] = {
    "G": lambda m, n: "AD",
    "E": lambda m, n: _DAYS[m.weekday()][: None if n >= _FULL else _SHORT],
    "a": lambda m, n: "AM" if m.hour < _NOON else "PM",
    "S": lambda m, n: f"{m.microsecond // 1000:03d}"[:n].ljust(n, "0"),
    "z": lambda m, n: _zone_id(m.tzinfo) if n >= _FULL else (m.tzname() or "UTC"),
    "Z": lambda m, n: (
        _zone_id(m.tzinfo) if n >= _SHORT else _offset(m, ":" if n > 1 else "")
    ),
}


def _zone_id(zone: tzinfo | None) -> str:
    return str(getattr(zone, "key", "UTC"))


def _offset(moment: datetime, separator: str) -> str:
    minutes = int((moment.utcoffset() or timedelta()).total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}{separator}{abs(minutes) % 60:02d}"


def _joda(moment: datetime, pattern: str) -> Iterator[str]:
    """Render ``moment`` in its own zone with a Joda ``DateTimeFormat`` pattern."""
    pos = 0
    while pos < len(pattern):
        match = _JODA_RUN.match(pattern, pos)
        if match is None:
            raise ExpressionError(f"unterminated quote in format pattern {pattern!r}")
        run, pos = match.group(), match.end()
        if match.group(1) is None:  # literal text, quoted text or ''
            yield (
                "'"
                if run == "''"
                else run[1:-1].replace("''", "'")
                if run[0] == "'"
                else run
            )
        else:
            yield _joda_field(run[0], len(run), moment, pattern)


def _joda_field(letter: str, count: int, moment: datetime, pattern: str) -> str:
    if letter == "M" and count >= _SHORT:
        return _MONTHS[moment.month - 1][: None if count >= _FULL else _SHORT]
    if letter in _TEXTS:
        return _TEXTS[letter](moment, count)
    if letter not in _NUMBERS:
        raise ExpressionError(
            f"illegal pattern letter {letter!r} in format {pattern!r}"
        )
    number = _NUMBERS[letter](moment)
    if count == len("yy") and letter in "xyY":
        return f"{number % 100:02d}"
    return f"{number:0{count}d}"


# ---- the DG's functions ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Function:
    """One DG function: the parser checks arity, the evaluator converts arguments."""

    kinds: str  # one letter per parameter: d DateTime, i int, s string
    impl: Callable[..., Scalar]


def _make(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    try:
        return datetime(year, month, day, hour, minute, tzinfo=UTC)
    except ValueError as exc:
        raise ExpressionError(f"no such date-time: {exc}") from exc


def _in_time_zone(moment: datetime, zone: str) -> datetime:
    try:
        return moment.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        raise ExpressionError(f"unknown time zone {zone!r}") from None


def _shifter(unit: str, sign: int) -> Function:
    return Function("di", lambda moment, n: _shift(moment, unit, sign * n))


_UNITS = ("minutes", "hours", "days", "weeks", "months", "years")
FUNCTIONS: dict[str, Function] = {  # name -> Function, for the parser and evaluator
    **{f"plus{unit.title()}": _shifter(unit, 1) for unit in _UNITS},
    **{f"minus{unit.title()}": _shifter(unit, -1) for unit in _UNITS},
    "format": Function("ds", lambda moment, pattern: "".join(_joda(moment, pattern))),
    "inTimeZone": Function("ds", _in_time_zone),
    "makeDate": Function("iii", _make),
    "makeDateTime": Function("iiiii", _make),
    "midnight": Function(
        "d", lambda m: m.replace(hour=0, minute=0, second=0, microsecond=0)
    ),
    "firstOfMonth": Function("d", lambda m: m.replace(day=1)),
    "sunday": Function("d", lambda m: _shift(m, "days", -((m.weekday() + 1) % 7))),
    "yesterday": Function("d", lambda m: _shift(m, "days", -1)),
    "year": Function("d", lambda m: m.year),
    "month": Function("d", lambda m: m.month),
    "day": Function("d", lambda m: m.day),
    "hour": Function("d", lambda m: m.hour),
    "minute": Function("d", lambda m: m.minute),
    "dayOfYear": Function("d", lambda m: m.timetuple().tm_yday),
}
