"""One call to the service: a counted, timed, translated try, and its retries.

Owns the client's books (``CallStats``: tries, errors, latency), the outage log
(one line when an outage starts and when it ends), the liveness ticks around each
try, and the retry loop every Data Pipeline call runs through
(``retries.call_with_retries``). ``client.py`` keeps the boto3 clients and the
operations: which policy each uses and what its answers mean.

Must not: know an operation's request or answer, sleep with ``time.sleep``, or log
a full task id or a request body.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from structlog.typing import FilteringBoundLogger

from runner.aws.callstats import CallStats, ClientStatistics
from runner.aws.outage import OutageLog
from runner.aws.retries import RetryPolicy, call_with_retries
from runner.aws.translate import FOREIGN_ERRORS, translate
from runner.errors import (
    CredentialsRejectedError,
    RejectedRequestError,
    ServiceError,
    TransientServiceError,
)
from runner.liveness import Liveness
from runner.taskmodel import digest

T = TypeVar("T")


class Caller:
    """Tries and retries for one client. Thread-safe. ``liveness``: the calling
    thread's watch is ticked before and after every try (``runner.liveness``)."""

    def __init__(
        self, log: FilteringBoundLogger, liveness: Liveness | None = None
    ) -> None:
        self._log = log
        self._stats, self._outages = CallStats(), OutageLog(log)
        self.liveness = liveness

    def statistics(self) -> ClientStatistics:
        return self._stats.snapshot()  # a consistent snapshot; thread-safe

    def one_try(
        self,
        operation: str,
        method: Callable[..., dict[str, Any]],
        request: Mapping[str, Any],
    ) -> dict[str, Any]:
        """One counted and timed try; a foreign error leaves as ours, ``from`` the
        original. The calling thread's liveness watch is ticked before and after."""
        if liveness := self.liveness:
            liveness.tick()
        began = time.monotonic()
        try:
            answer = method(**request)
        except FOREIGN_ERRORS as exc:
            error = translate(operation, exc)
            code = error.code if isinstance(error, ServiceError) else type(exc).__name__
            answered = not isinstance(error, TransientServiceError)
            self._stats.tried(operation, began, code, answered=answered)
            if liveness:
                liveness.tick()
            if isinstance(error, RejectedRequestError):  # never retried
                self._log.error(
                    "service_credentials_rejected"  # an operator's problem
                    if isinstance(error, CredentialsRejectedError)
                    else "service_rejected_request",  # our bug
                    operation=operation,
                    code=code,
                    message=error.message[:500] or "(the service gave no message)",
                )
            raise error from exc
        self._stats.tried(operation, began, None, answered=True)
        self._outages.answered(operation)
        if liveness:
            liveness.tick()
        return answer

    def retried(
        self,
        operation: str,
        attempt: Callable[[], T],
        policy: RetryPolicy,
        interrupt: tuple[threading.Event, ...],
        *,
        deadline_s: float | None = None,
        task: str | None = None,
        retry_on: type[ServiceError] = TransientServiceError,
        until: Callable[[], float | None] = lambda: None,
        wake: Sequence[threading.Event] = (),
    ) -> T:
        """``attempt`` under ``policy``; only ``retry_on`` is retried."""
        context = {"task_id": digest(task)} if task is not None else {}

        def on_retry(attempt_number: int, wait_s: float, error: BaseException) -> None:
            self._stats.retried()
            code = getattr(error, "code", type(error).__name__)
            self._outages.retrying(operation, attempt_number, wait_s, code, **context)

        try:
            return call_with_retries(
                attempt,
                policy,
                retry_on=retry_on,
                interrupt=interrupt,
                on_retry=on_retry,
                deadline_s=deadline_s,
                until=until,
                wake=wake,
            )
        except ServiceError:
            self._stats.failed(operation)
            raise
