"""Heartbeat on a real thread with short intervals: cadence, stop, errors, names."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
import structlog
from structlog.testing import capture_logs

from runner.heartbeat import BeatThreads, Heartbeat
from tests.support.waiting import wait_for


def make(fn, interval_s: float = 0.05, **kwargs: object) -> Heartbeat:  # type: ignore[no-untyped-def]  # test helper
    return Heartbeat(
        fn,
        interval_s=interval_s,
        name="test-beat",
        log=structlog.get_logger(),
        **kwargs,
    )


def test_beats_at_the_interval_measured_from_each_start() -> None:
    starts: list[float] = []

    def slow() -> None:
        starts.append(time.monotonic())
        threading.Event().wait(0.02)  # a call that takes 40% of the interval

    beat = make(slow, first_delay_s=0.0)
    beat.start()
    try:
        assert beat.wait_beat(after=4, timeout=5)
    finally:
        beat.stop()
        assert beat.join(2)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= 0.045 for gap in gaps), gaps
    # The 20 ms call does not push the schedule: gaps stay near 50 ms, not 70.
    assert sum(gaps) / len(gaps) < 0.065, gaps


def test_an_overrunning_call_is_followed_at_once_and_never_overlaps() -> None:
    starts: list[float] = []
    running = threading.Lock()
    overlaps: list[bool] = []

    def overrun() -> None:
        overlaps.append(not running.acquire(blocking=False))
        starts.append(time.monotonic())
        threading.Event().wait(0.08)
        running.release()

    beat = make(overrun, first_delay_s=0.0)
    beat.start()
    try:
        assert beat.wait_beat(after=2, timeout=5)
    finally:
        beat.stop()
        assert beat.join(2)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert not any(overlaps)
    assert all(0.075 <= gap < 0.15 for gap in gaps), gaps


def test_first_delay_defaults_to_one_interval() -> None:
    calls: list[float] = []
    beat = make(lambda: calls.append(time.monotonic()), interval_s=0.1)
    started = time.monotonic()
    beat.start()
    try:
        assert beat.wait_beat(after=0, timeout=5)
    finally:
        beat.stop()
        beat.join(2)
    assert calls[0] - started >= 0.095


def test_stop_interrupts_the_wait_promptly() -> None:
    beat = make(lambda: None, interval_s=60)
    beat.start()
    started = time.monotonic()
    beat.stop()
    assert beat.join(2)
    assert time.monotonic() - started < 0.5
    assert beat.statistics().calls == 0


@pytest.mark.parametrize("first_delay_s", [None, 0.0])
def test_set_interval_reschedules_the_waiting_thread(
    first_delay_s: float | None,
) -> None:
    beat = make(lambda: None, interval_s=60, first_delay_s=first_delay_s)
    beat.start()
    try:
        if first_delay_s == 0.0:
            assert beat.wait_beat(after=0, timeout=2)  # now waiting out 60 s
        beat.set_interval(0.05)
        assert beat.wait_beat(after=1, timeout=2)
    finally:
        beat.stop()
        beat.join(2)


def test_errors_are_recorded_and_beating_continues() -> None:
    outcomes = iter([ValueError("boom"), None, None, None, None, None])

    def flaky() -> None:
        error = next(outcomes)
        if error is not None:
            raise error

    beat = make(flaky, first_delay_s=0.0)
    with capture_logs() as logs:
        beat.start()
        try:
            assert beat.wait_beat(after=2, timeout=5)
        finally:
            beat.stop()
            beat.join(2)
    stats = beat.statistics()
    assert stats.failures == 1
    assert isinstance(stats.last_error, ValueError)
    assert isinstance(beat.error, ValueError)
    assert stats.calls >= 3
    assert stats.last_success is not None
    assert beat.last_success == stats.last_success
    failed = [e for e in logs if e["event"] == "heartbeat_failed"]
    assert failed[0]["heartbeat"] == "test-beat"
    assert failed[0]["log_level"] == "error"


def test_thread_is_named_and_a_daemon() -> None:
    seen: list[threading.Thread] = []
    beat = make(lambda: seen.append(threading.current_thread()), first_delay_s=0.0)
    beat.start()
    try:
        assert beat.wait_beat(after=0, timeout=5)
    finally:
        beat.stop()
        beat.join(2)
    assert seen[0].name == "test-beat"
    assert seen[0].daemon


def test_join_before_start_is_true() -> None:
    assert make(lambda: None).join(0.1)


def test_beat_threads_keep_a_thread_for_the_next_heartbeat() -> None:
    threads = BeatThreads("test-progress")
    seen: list[tuple[threading.Thread, str]] = []

    def record() -> None:
        thread = threading.current_thread()
        seen.append((thread, thread.name))

    for name in ("task-a-progress", "task-b-progress"):
        beat = Heartbeat(
            record,
            interval_s=0.05,
            name=name,
            log=structlog.get_logger(),
            first_delay_s=0.0,
            threads=threads,
        )
        beat.start()
        try:
            assert beat.wait_beat(after=0, timeout=5)
        finally:
            beat.stop()
            assert beat.join(2)
        wait_for(lambda: threads.idle() == 1, 5, "the thread back, idle")
    (first, first_name), (second, second_name) = seen[0], seen[-1]
    assert second is first  # the same thread: no thread made for the second
    assert (first_name, second_name) == ("task-a-progress", "task-b-progress")
    assert first.daemon
    assert first.name == "test-progress-idle-1"


def test_a_heartbeat_never_waits_for_a_thread_still_in_a_call() -> None:
    threads = BeatThreads("test-progress")
    in_call, release = threading.Event(), threading.Event()

    def call() -> None:
        in_call.set()
        release.wait(5)

    slow = make(call, first_delay_s=0.0, threads=threads)
    slow.start()
    assert in_call.wait(5)
    slow.stop()  # ends after the call in progress, which goes on
    beats: list[threading.Thread] = []
    quick = make(
        lambda: beats.append(threading.current_thread()),
        first_delay_s=0.0,
        threads=threads,
    )
    try:
        quick.start()
        assert quick.wait_beat(after=0, timeout=2)  # at once, on a new thread
        assert not slow.join(0)
    finally:
        quick.stop()
        release.set()
    assert slow.join(2)
    assert quick.join(2)
    wait_for(lambda: threads.idle() == 2, 5, "both threads idle")


def test_a_thread_whose_heartbeat_died_of_a_bug_is_not_kept() -> None:
    threads = BeatThreads("test-progress")
    died: list[threading.Thread] = []

    def bug() -> None:
        died.append(threading.current_thread())
        crashing.set_interval(None)  # type: ignore[arg-type]  # the loop then raises

    crashing = make(bug, first_delay_s=0.0, threads=threads)
    with capture_logs() as logs:
        crashing.start()
        assert crashing.join(2)
    assert isinstance(crashing.error, TypeError)
    assert [e["event"] for e in logs] == ["heartbeat_crashed"]
    died[0].join(2)
    assert not died[0].is_alive()
    assert threads.idle() == 0
