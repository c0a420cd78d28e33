"""Signals delivered for real to the test process, after install(); restored after."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.signals import Signals, SignalSafeEvent


@pytest.fixture
def signals() -> Iterator[Signals]:
    handlers = Signals()
    handlers.install()
    try:
        yield handlers
    finally:
        handlers.restore()


def deliver(signum: signal.Signals) -> None:
    """Send to ourselves; the Python handler runs at the next bytecode boundary
    of the main thread, so the events are set by the time this returns."""
    os.kill(os.getpid(), signum)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:  # a few bytecodes are enough; be patient anyway
        if signal.sigpending().isdisjoint({signum}):
            return


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_first_signal_stops_second_stops_fast(
    signals: Signals, signum: signal.Signals
) -> None:
    deliver(signum)
    assert signals.stop.is_set()
    assert not signals.fast_stop.is_set()
    assert signals.count == 1
    deliver(signal.SIGTERM)
    assert signals.fast_stop.is_set()
    assert signals.count == 2


def test_usr1_asks_for_a_stack_dump(signals: Signals, tmp_path: Path) -> None:
    deliver(signal.SIGUSR1)
    assert signals.dump_stacks.is_set()
    assert signals.wakeup.is_set()
    assert not signals.stop.is_set()
    assert signals.count == 0
    with (tmp_path / "stacks").open("w") as handle:
        signals.dump(handle)
    assert "test_usr1_asks_for_a_stack_dump" in (tmp_path / "stacks").read_text()


def test_signal_wakes_the_main_thread_waiting_on_stop(signals: Signals) -> None:
    timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    started = time.monotonic()
    try:
        assert signals.stop.wait(5)
    finally:
        timer.join()
    assert time.monotonic() - started < 2


def test_restore_puts_back_the_previous_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM)
    handlers = Signals()
    handlers.install()
    assert signal.getsignal(signal.SIGTERM) != before
    handlers.restore()
    assert signal.getsignal(signal.SIGTERM) == before
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_signal_safe_event_can_be_set_while_its_lock_is_held() -> None:
    """The handler's case: set() runs on the thread that is inside wait()."""
    event = SignalSafeEvent()
    with event._cond:  # what the main thread holds inside Event.wait
        event.set()  # a plain threading.Event would block here forever
    assert event.wait(0)
