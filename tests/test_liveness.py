"""``Liveness`` and ``Durations``: the watchdog's registry and the histograms' tally,
with real threads and small bounds."""

from __future__ import annotations

import threading
import time

import pytest

from runner.config import split_http_address
from runner.durations import Durations
from runner.liveness import Liveness
from tests.support.waiting import wait_for


def watched_thread(
    liveness: Liveness, name: str, bound_s: float, *, ticking: threading.Event
) -> tuple[threading.Thread, threading.Event]:
    """A thread that enters, ticks while ``ticking`` is set, and leaves once told
    to stop."""
    stop = threading.Event()

    def body() -> None:
        liveness.enter(name, bound_s)
        while not stop.wait(0.02):
            if ticking.is_set():
                liveness.tick()
        liveness.leave()

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    wait_for(lambda: name in liveness.watched(), 5, "the watch")
    return thread, stop


def test_a_thread_that_stops_ticking_goes_overdue_and_comes_back() -> None:
    liveness = Liveness(slack_s=0.05)
    ticking = threading.Event()
    ticking.set()
    thread, stop = watched_thread(liveness, "poll-wg", 0.1, ticking=ticking)
    until = time.monotonic() + 0.4  # several bounds: ticking keeps it on time
    while time.monotonic() < until:
        assert liveness.overdue() == []
        ticking.wait(0.02)
    ticking.clear()
    (late,) = wait_for(liveness.overdue, 5, "overdue")
    assert late.name == "poll-wg"
    assert late.bound_s == pytest.approx(0.15)
    assert late.silent_s >= 0.1
    ticking.set()
    wait_for(lambda: liveness.overdue() == [], 5, "on time again")
    stop.set()
    thread.join(5)
    assert liveness.watched() == []  # a clean exit leaves


def test_a_tick_from_an_unwatched_thread_does_nothing() -> None:
    liveness = Liveness(slack_s=0.0)
    liveness.tick()
    assert liveness.watched() == []
    assert liveness.overdue() == []


def test_a_thread_that_dies_without_leaving_goes_overdue() -> None:
    liveness = Liveness(slack_s=0.0)

    def dies() -> None:
        liveness.enter("runner-heartbeat", 0.05)

    thread = threading.Thread(target=dies)
    thread.start()
    thread.join()
    wait_for(lambda: [o.name for o in liveness.overdue()] == ["runner-heartbeat"], 5)


def test_durations_fall_into_their_buckets() -> None:
    durations = Durations((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 3.0, 4.0):
        durations.observe(seconds)
    snapshot = durations.snapshot()
    assert snapshot.counts == (2, 1, 2)  # ≤ 0.1, ≤ 1, above
    assert snapshot.count == 5
    assert snapshot.sum_s == pytest.approx(7.65)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9102", ("127.0.0.1", 9102)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),  # noqa: S104 - parsed, never bound
        ("[::1]:9102", ("::1", 9102)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_http_address_is_split(text: str, expected: tuple[str, int]) -> None:
    assert split_http_address(text) == expected


@pytest.mark.parametrize("text", ["9102", ":9102", "host:", "host:port", "h:70000"])
def test_a_bad_http_address_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        split_http_address(text)
