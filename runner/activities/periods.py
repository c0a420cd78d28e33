"""Data Pipeline periods ("2 hours", "30 minutes") and the task timeouts built on them.

Owns: the runner's parser for the Period type (DG: Pipeline Expressions and Functions,
"N [years|months|weeks|days|hours|minutes]", N a positive integer) and the two
timeouts an activity reads from its task, ``attemptTimeout`` and
``reportProgressTimeout``.

Must not: import anything of the local service. The local service keeps its own copy
of this parser on purpose (it is an island), so the two may be tested side by side
but never share code.

Why this way: the grammar is small and strict. Units may be singular or plural and any
case ("1 Hour", "2 hours"); ``seconds`` is accepted as well, beyond the DG, because a
runner-side timeout of a few seconds is what tests and demos need. A month counts as
30 days and a year as 365: the service never documents calendar arithmetic for a
timeout, and a timeout only needs to be roughly right. Anything else is an error, never
a guess: a timeout silently read as "none" would let a hung task run forever.
"""

from __future__ import annotations

import re

from runner.errors import ActivityError
from runner.taskmodel import Task

_UNIT_S = {
    "second": 1.0,
    "minute": 60.0,
    "hour": 3600.0,
    "day": 86400.0,
    "week": 7 * 86400.0,
    "month": 30 * 86400.0,
    "year": 365 * 86400.0,
}
_PERIOD = re.compile(r"\s*(\d{1,9})\s*([a-z]+?)s?\s*", re.ASCII | re.IGNORECASE)


def parse_period_s(text: str) -> float:
    """Seconds in a Period such as ``"2 hours"``; raises ``ValueError`` when malformed.

    N must be a positive integer; units are second(s), minute(s), hour(s), day(s),
    week(s), month(s) (30 days) and year(s) (365 days), in any case.
    """
    match = _PERIOD.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a period like '30 minutes' or '2 hours'")
    count, unit = int(match.group(1)), match.group(2).lower()
    if unit not in _UNIT_S:
        units = ", ".join(f"{name}s" for name in _UNIT_S)
        raise ValueError(f"{text!r} has an unknown unit {unit!r}; use one of {units}")
    if count <= 0:
        raise ValueError(f"{text!r} must be a positive number of {unit}s")
    return count * _UNIT_S[unit]


def _period_field_s(task: Task, key: str) -> float | None:
    text = task.get_str(key)
    if text is None or not text.strip():
        return None
    try:
        return parse_period_s(text)
    except ValueError as exc:
        raise ActivityError(
            "InvalidField", f"field {key!r} has an invalid value {text!r:.100}: {exc}"
        ) from None


def attempt_timeout_s(task: Task) -> float | None:
    """The task's ``attemptTimeout`` in seconds, or ``None`` when it has none.

    Raises ``ActivityError(InvalidField)`` naming the field and value when malformed.
    """
    return _period_field_s(task, "attemptTimeout")


def report_progress_timeout_s(task: Task) -> float | None:
    """The task's ``reportProgressTimeout`` in seconds, or ``None`` when it has none.

    Raises ``ActivityError(InvalidField)`` naming the field and value when malformed.
    """
    return _period_field_s(task, "reportProgressTimeout")
