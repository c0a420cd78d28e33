"""What the text of a duration or number field means to the local service.

Owns: the timeout-type keys that also take local "N seconds", parsing a duration
(AWS's periods, plus those seconds) and a whole number, each bounded so that no
text can overflow a datetime or an int conversion, and `InvalidFieldError`, the
error of a field whose value is not what its key takes.

Must not: evaluate expressions (`definition` does, then parses the result here).

Why: validation, instance creation and the timers must agree on what a value
means, and a hostile value (5000 digits, "999999999 days") must be a validation
error or an InvalidField attempt, never an exception the service did not expect.
"""

from __future__ import annotations

import datetime as dt
import re

from runner.localservice.expressions import ExpressionError, parse_period

# Timeout-type fields that also take "N seconds" (AWS documents minutes and up;
# the runner and the local service accept seconds for tests and demos).
SECONDS_OK = frozenset(
    {
        "attemptTimeout",
        "reportProgressTimeout",
        "retryDelay",
        "preconditionTimeout",
        "terminateAfter",
    }
)
_SECONDS = re.compile(r"\s*([0-9]{1,9})\s*seconds?\s*", re.IGNORECASE)
_NUMBER = re.compile(r"\s*[0-9]{1,12}\s*")
MAX_NUMBER = 1_000_000


class InvalidFieldError(ValueError):
    """A field whose value, once evaluated, is not what its key takes."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"Field '{key}': {reason}")
        self.key = key


def parse_number(text: str) -> int:
    """text as a whole number from 0 to MAX_NUMBER; ValueError otherwise."""
    if _NUMBER.fullmatch(text) is None or int(text) > MAX_NUMBER:
        raise ValueError(f"{text[:40]!r} is not a whole number from 0 to {MAX_NUMBER}")
    return int(text)


def in_seconds(text: str) -> bool:
    """Whether text is written "N seconds" (which AWS may not accept)."""
    return _SECONDS.fullmatch(text) is not None


def parse_duration(text: str) -> dt.timedelta:
    """`parse_period`, plus "N seconds". Raises ExpressionError (a ValueError)."""
    match = _SECONDS.fullmatch(text)
    if match is None:
        return parse_period(text)
    if int(match.group(1)) == 0:
        raise ExpressionError(f"bad period {text!r}: N must be >= 1")
    return dt.timedelta(seconds=int(match.group(1)))
