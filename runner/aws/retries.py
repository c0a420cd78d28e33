"""Retry policies and the one retry loop the API client runs every call through.

Owns: ``RetryPolicy`` (attempts, a total budget, full-jitter waits), the set of
policies per call site (``RetryPolicies``), and ``call_with_retries``: tenacity with
an ``Event.wait`` sleep, so a shutdown signal cuts a backoff short.

Must not: know about boto3, the service or its error codes (``client.py`` decides
what is retryable and logs each retry), or sleep with ``time.sleep``.

Why: after hynek/stamina, retries name the errors they retry, back off with jitter
and cap both attempts and time. The budget is a deadline from the call's start
(``stop_before_delay``: no backoff starts that would end past it). An interrupted
backoff re-raises the last error instead of trying once more or returning nothing:
the caller must know the call did not land. Split from ``client.py`` to keep that
module about the API; it is re-exported there.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from runner.wakeup import wait_any

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one call site retries.

    ``attempts`` caps the tries and ``budget_s`` the total time from the call's
    start. Waits are full-jitter exponential: before retry n (from 1) the wait is
    uniform(0, min(wait_max_s, wait_initial_s * 2**(n-1))).
    """

    attempts: int
    budget_s: float
    wait_initial_s: float
    wait_max_s: float

    def __post_init__(self) -> None:
        if self.attempts < 1 or min(self.budget_s, self.wait_initial_s) < 0:
            raise ValueError(f"invalid retry policy {self!r}")


@dataclass(frozen=True, slots=True)
class RetryPolicies:
    """One policy per call site (design.md §3 and §5)."""

    poll: RetryPolicy
    ack: RetryPolicy  # the first ReportTaskProgress
    progress: RetryPolicy  # later heartbeats; the caller also passes a deadline
    status: RetryPolicy  # SetTaskStatus
    runner_heartbeat: RetryPolicy
    other: RetryPolicy

    @classmethod
    def default(cls) -> RetryPolicies:
        """Production budgets: the ack lands well inside the 2-minute window; the
        final status, the commit point, gets the longest budget."""
        # attempts, budget_s, wait_initial_s, wait_max_s
        return cls(
            # the poller's only retry loop: every service error, until the shutdown
            poll=RetryPolicy(2**31 - 1, math.inf, 1.0, 60.0),
            ack=RetryPolicy(20, 60.0, 0.5, 10.0),
            progress=RetryPolicy(10, 60.0, 0.5, 10.0),
            status=RetryPolicy(1000, 900.0, 1.0, 60.0),
            runner_heartbeat=RetryPolicy(10, 300.0, 1.0, 30.0),
            other=RetryPolicy(8, 120.0, 0.5, 20.0),
        )

    @classmethod
    def fast(cls) -> RetryPolicies:
        """Near-zero waits and a short budget, for tests and the local demo."""
        quick = RetryPolicy(5, 10.0, 0.01, 0.05)
        return cls(quick, quick, quick, quick, quick, quick)


class _Interrupted(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised out of tenacity by the backoff sleep when an event is set."""


def call_with_retries(
    attempt: Callable[[], T],
    policy: RetryPolicy,
    *,
    retry_on: type[Exception],
    interrupt: Sequence[threading.Event],
    on_retry: Callable[[int, float, BaseException], None],
    deadline_s: float | None = None,
    until: Callable[[], float | None] = lambda: None,
    wake: Sequence[threading.Event] = (),
) -> T:
    """Call ``attempt`` until it returns, retrying only ``retry_on``.

    Stops on ``policy.attempts``, on the budget (the sooner of ``policy.budget_s``
    and ``deadline_s``, from now), once ``until()`` (a ``time.monotonic()``
    deadline that may move, or None) has passed, or when an ``interrupt`` event is
    set; then the last error is raised. A backoff never ends past ``until()``: the
    last one is cut to end on it.
    ``on_retry(attempt_number, wait_s, error)`` runs before each backoff. An
    ``interrupt`` event set during a backoff ends it at once (no extra try); a
    ``wake`` event set during one means ``until`` may have moved: the backoff
    ends and one more try is made at once, after which the stop reads the new
    deadline.
    The events are waited on together (``wakeup.wait_any``), never in slices.
    Blocks; thread-safe (a fresh ``Retrying`` per call). Every try, the first
    included, is tenacity's: one loop, nothing replayed, never a loop of loops.
    """
    errors: list[BaseException] = []

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        if error is not None:
            errors.append(error)
            on_retry(state.attempt_number, state.upcoming_sleep, error)

    def sleep(seconds: float) -> None:
        pending = [event for event in wake if not event.is_set()]
        wait_any((*interrupt, *pending), seconds)
        if any(event.is_set() for event in interrupt):
            raise _Interrupted

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(retry_on),
        stop=_stop(policy, deadline_s, interrupt) | _Past(until),
        wait=_Fit(
            tenacity.wait_random_exponential(
                multiplier=policy.wait_initial_s, max=policy.wait_max_s
            ),
            until,
        ),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except _Interrupted:
        pass
    raise errors[-1]


def _stop(
    policy: RetryPolicy, deadline_s: float | None, interrupt: Sequence[threading.Event]
) -> tenacity.stop.stop_base:
    """Attempts, or no backoff that would end past the budget, or an event set."""
    budget_s = (
        policy.budget_s if deadline_s is None else min(policy.budget_s, deadline_s)
    )
    stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(policy.attempts)
    stop = stop | tenacity.stop_before_delay(budget_s)
    for event in interrupt:
        stop = stop | tenacity.stop_when_event_set(event)
    return stop


class _Past(tenacity.stop.stop_base):
    """Stop once ``until()`` has passed, read at each stop (the status deadline
    moves closer as the shutdown goes on)."""

    def __init__(self, until: Callable[[], float | None]) -> None:
        self._until = until

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        deadline = self._until()
        return deadline is not None and time.monotonic() >= deadline


class _Fit(tenacity.wait.wait_base):
    """A backoff cut to end by ``until()``: the retries go on until the deadline,
    the last backoff ending on it, never past it."""

    def __init__(
        self, inner: tenacity.wait.wait_base, until: Callable[[], float | None]
    ) -> None:
        self._inner = inner
        self._until = until

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        wait_s = self._inner(retry_state)
        deadline = self._until()
        if deadline is None:
            return wait_s
        return max(0.0, min(wait_s, deadline - time.monotonic()))
