"""``call_with_retries`` on plain functions: the first try made outside tenacity
must leave the retries exactly as a tenacity loop over every try made them."""

from __future__ import annotations

import threading

import pytest

from runner.aws.retries import RetryPolicy, call_with_retries


class FlakyError(Exception):
    """The error that is retried."""


def flaky(failures: int, tries: list[int], wait_s: float = 0.0):  # type: ignore[no-untyped-def]  # test helper
    """A call that fails ``failures`` times (each after ``wait_s``), then returns."""

    def attempt() -> str:
        tries.append(len(tries) + 1)
        if wait_s:
            threading.Event().wait(wait_s)
        if len(tries) <= failures:
            raise FlakyError(f"try {len(tries)}")
        return "done"

    return attempt


def call(attempt, policy: RetryPolicy, retried: list[tuple[int, str]], **kw: object):  # type: ignore[no-untyped-def]  # test helper
    return call_with_retries(
        attempt,
        policy,
        retry_on=FlakyError,
        interrupt=(),
        on_retry=lambda n, _wait_s, error: retried.append((n, str(error))),
        **kw,
    )


def test_a_first_try_that_succeeds_makes_no_retry() -> None:
    tries: list[int] = []
    retried: list[tuple[int, str]] = []
    assert call(flaky(0, tries), RetryPolicy(5, 10.0, 0.0, 0.0), retried) == "done"
    assert (tries, retried) == ([1], [])


def test_a_failed_first_try_is_attempt_one_and_is_not_made_again() -> None:
    tries: list[int] = []
    retried: list[tuple[int, str]] = []
    assert call(flaky(2, tries), RetryPolicy(5, 10.0, 0.0, 0.0), retried) == "done"
    assert tries == [1, 2, 3]
    assert retried == [(1, "try 1"), (2, "try 2")]


def test_attempts_count_the_first_try() -> None:
    tries: list[int] = []
    retried: list[tuple[int, str]] = []
    with pytest.raises(FlakyError, match="try 3"):
        call(flaky(9, tries), RetryPolicy(3, 10.0, 0.0, 0.0), retried)
    assert tries == [1, 2, 3]
    assert [n for n, _ in retried] == [1, 2]


def test_the_budget_counts_from_before_the_first_try() -> None:
    tries: list[int] = []
    retried: list[tuple[int, str]] = []
    with pytest.raises(
        FlakyError, match="try 1"
    ):  # 0.1 s spent: no backoff fits in 0.05
        call(flaky(9, tries, wait_s=0.1), RetryPolicy(5, 0.05, 0.0, 0.0), retried)
    assert (tries, retried) == ([1], [])


def test_an_error_that_is_not_retried_leaves_at_once() -> None:
    def broken() -> str:
        raise KeyError("a bug")

    retried: list[tuple[int, str]] = []
    with pytest.raises(KeyError):
        call(broken, RetryPolicy(5, 10.0, 0.0, 0.0), retried)
    assert retried == []


def test_an_interrupt_set_before_the_first_failure_stops_after_it() -> None:
    tries: list[int] = []
    stop = threading.Event()
    stop.set()
    with pytest.raises(FlakyError, match="try 1"):
        call_with_retries(
            flaky(9, tries),
            RetryPolicy(5, 10.0, 0.0, 0.0),
            retry_on=FlakyError,
            interrupt=(stop,),
            on_retry=lambda *_: None,
        )
    assert tries == [1]
