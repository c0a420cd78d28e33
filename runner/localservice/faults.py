"""The fault switch and the call record: what tests script and what they assert on.

Owns: scripted faults per operation (an AWS error, a dropped connection, a cut
answer, added latency or a hold until the test lets the call go on; a number of
times or forever) and the record of the calls
received (the most recent 50,000).

Must not: know how an operation works. Faults are applied by the server BEFORE
the operation runs, so an injected error never leaves a half-done change and a
client retry succeeds. The one exception is a cut answer (``CUTS``): the answer
must exist to be cut, so the operation runs and commits, and then only half of
its 200 answer is sent before the connection closes ("cut": no Content-Length,
the body ends at the close; "cut-length": a Content-Length that promises the
whole body). That is exactly the case a client must survive: the operation
committed but the client did not learn it. An operation that fails is answered
whole; the fault is used up all the same.

Why: the runner's retry and journal logic has to be tested against the errors
AWS really sends; scripting them on the service side keeps the tests free of
mocks (style.md).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: A function from an operation's answer to the answer sent instead.
Rewrite = Callable[[dict[str, Any]], dict[str, Any]]

#: Faults applied after the operation ran: its 200 answer is sent cut in half.
CUTS = frozenset({"cut", "cut-length"})
ERRORS = (
    frozenset(
        {"InternalServiceError", "ThrottlingException", "ServiceUnavailable", "drop"}
    )
    | CUTS
)


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One request as the service received it and how it was answered."""

    operation: str
    request: dict[str, Any]
    error: str | None
    at: float  # time.monotonic() when the request arrived
    answered: float  # time.monotonic() when its answer (or error) was ready


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do to one call: `error` (an AWS code, "drop", or one of `CUTS`)
    after `latency_s` and, with `hold`, once `hold` is set; or, after the operation
    ran, `rewrite` its answer."""

    error: str | None
    latency_s: float
    rewrite: Rewrite | None = None
    hold: threading.Event | None = None


@dataclass
class _Script:
    operation: str
    fault: Fault
    times: int | None


class Faults:
    """Scripted faults, consumed in the order they were added. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: list[_Script] = []

    def add(
        self,
        operation: str,
        *,
        error: str | None = None,
        latency_s: float = 0.0,
        times: int | None = 1,
        rewrite: Rewrite | None = None,
        hold: threading.Event | None = None,
    ) -> None:
        """Script a fault for the next `times` calls of `operation` (None = forever).
        `hold`: the call waits, before the operation runs, until the test sets it
        (or the service stops): a slow call that ends on a condition, not a clock."""
        if error is not None and error not in ERRORS:
            raise ValueError(f"unknown fault {error!r}; one of {sorted(ERRORS)}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for forever)")
        fault = Fault(error, latency_s, rewrite, hold)
        with self._lock:
            self._scripts.append(_Script(operation, fault, times))

    def clear(self) -> None:
        with self._lock:
            self._scripts.clear()

    def pending(self, operation: str) -> int | None:
        """How many more calls of `operation` are scripted (None: forever)."""
        with self._lock:
            left: int | None = 0
            for script in self._scripts:
                if script.operation == operation:
                    if script.times is None:
                        return None
                    left = (left or 0) + script.times
            return left

    def take(self, operation: str) -> Fault | None:
        """The fault for this call, if one is scripted (consumes one use)."""
        with self._lock:
            for script in self._scripts:
                if script.operation != operation:
                    continue
                if script.times is not None:
                    script.times -= 1
                    if script.times == 0:
                        self._scripts.remove(script)
                return script.fault
        return None


class CallLog:
    """The most recent `MAX_CALLS` calls, oldest first. Thread-safe.

    Bounded so that a long-running `dp-runner local` does not grow without end; a
    request whose body is over `MAX_BODY_BYTES` (a large definition) is kept as
    its short top-level members only, so that a burst of them is not held."""

    MAX_CALLS = 50_000
    MAX_BODY_BYTES = 64 * 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: deque[RecordedCall] = deque(maxlen=self.MAX_CALLS)

    def append(self, call: RecordedCall, body_bytes: int = 0) -> None:
        if body_bytes > self.MAX_BODY_BYTES:
            kept = {
                key: value
                for key, value in call.request.items()
                if isinstance(value, str | int | float | bool)
                and len(str(value)) <= 1024
            }
            call = dataclasses.replace(call, request={**kept, "...": body_bytes})
        with self._lock:
            self._calls.append(call)

    def calls(self, operation: str | None = None) -> list[RecordedCall]:
        with self._lock:
            return [
                c for c in self._calls if operation is None or c.operation == operation
            ]
