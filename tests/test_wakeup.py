"""``wakeup``: a wait on several events is one wait, woken by the first set.

The bounds are far below a slice-and-poll loop's and far above the machine's
scheduling noise: a set from another thread ends the wait within a second while
the wait's own timeout is a minute.
"""

from __future__ import annotations

import threading
import time

import pytest

from runner.wakeup import Wakeable, wait_any


def test_the_second_event_ends_a_wait_on_two_at_once() -> None:
    first, second = Wakeable(), Wakeable()
    threading.Timer(0.1, second.set).start()
    began = time.monotonic()
    assert wait_any((first, second), 60.0) is True
    assert time.monotonic() - began < 5.0
    assert not first.is_set()


def test_a_wait_times_out_when_none_is_set() -> None:
    began = time.monotonic()
    assert wait_any((Wakeable(), Wakeable()), 0.2) is False
    assert time.monotonic() - began >= 0.2


def test_an_event_set_before_the_wait_ends_it_at_once() -> None:
    done = Wakeable()
    done.set()
    assert wait_any((Wakeable(), done), 60.0) is True


def test_the_wait_leaves_no_waker_behind() -> None:
    event = Wakeable()
    wait_any((event, Wakeable()), 0.01)
    assert event._wakers == []


def test_plain_events_cannot_be_waited_on_together() -> None:
    with pytest.raises(TypeError):
        wait_any((threading.Event(), threading.Event()), 0.01)


def test_one_plain_event_is_waited_on_directly() -> None:
    event = threading.Event()
    threading.Timer(0.05, event.set).start()
    assert wait_any((event,), 60.0) is True
