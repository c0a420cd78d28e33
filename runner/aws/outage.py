"""Retries of a failing operation, logged at a bounded cadence.

An endpoint that does not answer makes every poller, the runner heartbeat and each
attempt's progress heartbeat retry; a warning per retry is a log flood during an
outage, and a flood hides the one line an operator needs. ``OutageLog`` warns at
the first retry of an operation (at once), then at most once per ``every_s`` with
the number of retries since its last warning (the others go to debug), and says at
info when the operation succeeds again, after how long and how many retries.

Owns: the per-operation outage state. Must not: decide what is retried (that is
``retries``/``client``), or log anything but the operation, counts and codes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from structlog.typing import FilteringBoundLogger

#: At most one retry warning per operation this often while it keeps failing.
WARN_EVERY_S = 60.0


@dataclass(slots=True)
class _Outage:
    began: float
    warned: float
    retries: int = 0
    quiet: int = 0  # retries since the last warning


class OutageLog:
    """Thread-safe. ``clock`` exists for tests."""

    def __init__(
        self,
        log: FilteringBoundLogger,
        every_s: float = WARN_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._every_s = every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, _Outage] = {}

    def retrying(
        self, operation: str, attempt: int, wait_s: float, error: str, **context: Any
    ) -> None:
        """A retry of ``operation`` is scheduled in ``wait_s``."""
        now = self._clock()
        with self._lock:
            outage = self._open.setdefault(operation, _Outage(now, now - self._every_s))
            outage.retries += 1
            warn = now - outage.warned >= self._every_s
            quiet = outage.quiet
            if warn:
                outage.warned, outage.quiet = now, 0
            else:
                outage.quiet += 1
        line = self._log.warning if warn else self._log.debug
        line(
            "client_retry_scheduled",
            operation=operation,
            attempt=attempt,
            wait_s=round(wait_s, 3),
            error=error,
            failing_for_s=round(now - outage.began, 1),
            **({"retries_since_last_warning": quiet} if warn and quiet else {}),
            **context,
        )

    def answered(self, operation: str) -> None:
        """``operation`` got an answer: an outage of it, if any, is over."""
        if not self._open:  # the common case, without the lock
            return
        with self._lock:
            outage = self._open.pop(operation, None)
        if outage is not None:
            self._log.info(
                "service_answers_again",
                operation=operation,
                failed_for_s=round(self._clock() - outage.began, 1),
                retries=outage.retries,
            )
