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

from runner.errors import TransientServiceError

T = TypeVar("T")

#: How often a wait on two events looks at the ones after the first.
EVENT_SLICE_S = 0.05
#: Waited on when there is nothing to wait for: never set.
_NEVER = threading.Event()


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


def wait_any(events: Sequence[threading.Event], timeout_s: float) -> bool:
    """Block up to ``timeout_s``; return True as soon as any event is set.

    One event is waited on directly; with more, the first is waited on in slices
    of ``EVENT_SLICE_S`` and the others are looked at between slices. With none,
    the wait is the whole ``timeout_s``.
    """
    events = events or (_NEVER,)
    deadline = time.monotonic() + timeout_s
    while not any(event.is_set() for event in events):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        events[0].wait(remaining if len(events) == 1 else min(remaining, EVENT_SLICE_S))
    return True


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
) -> T:
    """Call ``attempt`` until it returns, retrying only ``retry_on``.

    Stops on ``policy.attempts``, on the budget (the sooner of ``policy.budget_s``
    and ``deadline_s``, from now) or when an ``interrupt`` event is set; then the
    last error is raised. ``on_retry(attempt_number, wait_s, error)`` runs before
    each backoff. An event set during a backoff ends it at once (no extra try).
    Blocks; thread-safe (a fresh ``Retrying`` per call). Every try, the first
    included, is tenacity's: one loop, nothing replayed.
    """
    errors: list[BaseException] = []

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        if error is not None:
            errors.append(error)
            on_retry(state.attempt_number, state.upcoming_sleep, error)

    def sleep(seconds: float) -> None:
        if wait_any(interrupt, seconds):
            raise _Interrupted

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(retry_on),
        stop=_stop(policy, deadline_s, interrupt),
        wait=tenacity.wait_random_exponential(
            multiplier=policy.wait_initial_s, max=policy.wait_max_s
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


def retry_until(
    retry: Callable[[tuple[threading.Event, ...], float], T],
    budget_s: float,
    until: Callable[[], float | None],
    wake: Sequence[threading.Event],
) -> T:
    """``retry(pending, left_s)``: one retry loop (``call_with_retries``) that the
    events ``pending`` cut short and that ends within ``left_s``. Runs it within
    ``budget_s`` and never past ``until()`` (a monotonic deadline, or None), which
    may move: when an event of ``wake`` cuts a loop short, the loop starts again
    under the new deadline (SetTaskStatus during a shutdown: each stage of the
    shutdown brings its deadline closer). The last ``TransientServiceError``
    leaves once no event woke it or no time is left."""
    ends = time.monotonic() + budget_s
    while True:
        deadline = until()
        left_s = ends - time.monotonic()
        if deadline is not None:
            left_s = min(left_s, deadline - time.monotonic())
        pending = tuple(event for event in wake if not event.is_set())
        try:
            return retry(pending, left_s)
        except TransientServiceError:
            if not any(event.is_set() for event in pending) or left_s <= 0:
                raise


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
