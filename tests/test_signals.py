"""Signals delivered for real to the test process, after install(); restored after.
And the one shutdown state (``shutdown.Shutdown``), which the dispatcher drives."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.shutdown import FAST_STATUS_BUDGET_S, STATUS_BUDGET_S, Shutdown
from runner.signals import LOCAL_RUN_ENDED, STOP_SIGNALS, Signals, hold_stop_signals


@pytest.fixture
def signals() -> Iterator[Signals]:
    handlers = Signals()
    handlers.install()
    try:
        yield handlers
    finally:
        handlers.restore()


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1]
)
def test_a_handler_only_queues_the_signal_number(
    signals: Signals, signum: signal.Signals
) -> None:
    os.kill(os.getpid(), signum)
    assert signals.next(2) == signum
    assert signals.next(0) is None


def test_requests_from_threads_share_the_signals_path(signals: Signals) -> None:
    threading.Thread(target=signals.inbox.put, args=(LOCAL_RUN_ENDED,)).start()
    os.kill(os.getpid(), signal.SIGTERM)
    got = {signals.next(2), signals.next(2)}
    assert got == {LOCAL_RUN_ENDED, signal.SIGTERM}


def test_a_signal_wakes_the_main_thread_waiting_on_the_inbox(signals: Signals) -> None:
    timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    started = time.monotonic()
    try:
        assert signals.next(5) == signal.SIGTERM
    finally:
        timer.join()
    assert time.monotonic() - started < 2


def test_the_stack_dump_names_this_test(signals: Signals, tmp_path: Path) -> None:
    with (tmp_path / "stacks").open("w") as handle:
        signals.dump(handle)
    assert "test_the_stack_dump_names_this_test" in (tmp_path / "stacks").read_text()


def test_restore_puts_back_the_previous_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM)
    handlers = Signals()
    handlers.install()
    assert signal.getsignal(signal.SIGTERM) != before
    handlers.restore()
    assert signal.getsignal(signal.SIGTERM) == before
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_a_stop_signal_held_since_the_start_is_queued_by_install() -> None:
    """As PID 1 the entry point blocks the stop signals (the kernel would drop
    them, unhandled); one sent before ``install`` stays pending, and ``install``
    unblocks it into the inbox. tests/test_container.py does it as a real PID 1."""
    assert not hold_stop_signals()  # the test process is not PID 1
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # what it does as PID 1
    handlers = Signals()
    try:
        # to this thread: other threads of the test process do not hold it (as PID 1
        # the runner holds it before any other thread exists)
        signal.pthread_kill(threading.get_ident(), signal.SIGHUP)
        handlers.install()
        assert handlers.next(2) == signal.SIGHUP
        assert not STOP_SIGNALS & signal.pthread_sigmask(signal.SIG_BLOCK, [])
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # while handled
        handlers.restore()


def test_the_first_stop_wins_and_starts_the_drain_clock() -> None:
    shutdown = Shutdown(drain_timeout=10.0, kill_grace=2.0)
    assert shutdown.status_deadline() is None
    assert shutdown.until_expiry_s() is None
    assert shutdown.begin("SIGTERM")
    assert not shutdown.begin("terminate")
    assert shutdown.reason == "SIGTERM"
    assert shutdown.requested.is_set()
    assert not shutdown.expired()
    left = shutdown.until_expiry_s()
    assert left is not None
    assert 9.0 < left <= 10.0


def test_the_status_deadline_is_drain_plus_grace_plus_budget_then_fast() -> None:
    shutdown = Shutdown(drain_timeout=10.0, kill_grace=2.0)
    began = time.monotonic()
    shutdown.begin("SIGTERM")
    deadline = shutdown.status_deadline()
    assert deadline is not None
    assert abs(deadline - (began + 10.0 + 2.0 + STATUS_BUDGET_S)) < 0.5
    hurried = time.monotonic()
    shutdown.hurry()
    assert shutdown.fast.is_set()
    assert shutdown.expired()
    fast = shutdown.status_deadline()
    assert fast is not None
    assert abs(fast - (hurried + FAST_STATUS_BUDGET_S)) < 0.5
