"""``StopFlag``: first reason wins under races, and every waiter wakes."""

from __future__ import annotations

import threading

from runner.task.stopflag import StopFlag
from runner.taskmodel import StopReason

REASONS = list(StopReason)
RACES = 1000
WAITERS = 2


def race_once() -> None:
    flag = StopFlag()
    barrier = threading.Barrier(len(REASONS) + WAITERS)
    won: list[StopReason] = []
    woke: list[bool] = []
    waker_calls: list[int] = []
    flag.add_waker(lambda: waker_calls.append(1))

    def setter(reason: StopReason) -> None:
        barrier.wait()
        if flag.set(reason, reason.value):
            won.append(reason)  # list.append is atomic

    def waiter() -> None:
        barrier.wait()
        woke.append(flag.wait(10))

    threads = [threading.Thread(target=setter, args=(r,)) for r in REASONS]
    threads += [threading.Thread(target=waiter) for _ in range(WAITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(won) == 1, won
    assert flag.reason is won[0]
    assert flag.detail == won[0].value
    assert woke == [True] * WAITERS
    assert waker_calls == [1]
    # the reason never changes afterwards
    for reason in REASONS:
        assert not flag.set(reason)
    assert flag.reason is won[0]


def test_first_reason_wins_in_a_thousand_races() -> None:
    for _ in range(RACES):
        race_once()


def test_a_waker_added_after_the_stop_runs_at_once_and_removal_is_safe() -> None:
    flag = StopFlag()
    calls: list[str] = []
    remove = flag.add_waker(lambda: calls.append("early"))
    remove()
    flag.set(StopReason.TIMEOUT)
    assert calls == []  # removed before the stop
    flag.add_waker(lambda: calls.append("late"))
    assert calls == ["late"]


def test_hurry_keeps_the_first_reason_and_wakes_the_grace_waits() -> None:
    flag = StopFlag()
    urgent: list[str] = []
    flag.add_waker(lambda: urgent.append("woken"), urgent=True)
    flag.set(StopReason.DRAIN_EXPIRED, "the drain ran out")
    assert not flag.urgent.is_set()
    assert urgent == []
    flag.hurry("a second signal")
    assert flag.reason is StopReason.DRAIN_EXPIRED
    assert flag.urgent.is_set()
    assert urgent == ["woken"]
    fresh = StopFlag()
    fresh.hurry()
    assert fresh.reason is StopReason.FAST_STOP
    assert fresh.is_set()
