"""One attempt's stop flag: why it must stop, decided once, and one wake-up.

Owns: ``StopFlag``, the amazon-ssm-agent's CancelFlag in Python. Every way an
attempt can be stopped before it ends by itself (the service said ``canceled``, the
task is gone, the lease ran out, ``attemptTimeout`` passed, the drain ran out, a
second signal) is a ``StopReason`` set here, by whichever thread learns it first: the
progress heartbeat, the worker, or the attempt's own thread when a clock runs out.

Must not: act on the stop. It kills nothing and sends nothing; the execution does,
and ``verdict.py`` maps the reason to the final call.

Why this shape:

- A lock and "first reason wins": ``set`` is a check-then-set under the lock and
  returns whether it won, so a ``canceled`` (no status) can never be overwritten by a
  timeout (FAILED) or the reverse, and the winner knows it won.
- One wake-up: every wait of the attempt blocks on the flag's event, or registers a
  waker (the supervisor's pidfd wait has a pipe of its own) that ``set`` calls once.
  A waker added after the flag is set runs at once, so no wait can miss the stop.
- A stopped attempt still winds down: its tree gets ``kill_grace`` after TERM, and
  its logs are uploaded within that grace. ``hurry`` (the second signal) ends that
  too: it sets FAST_STOP when no reason was set yet, and ``urgent`` in every case,
  which the grace waits block on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from runner.taskmodel import StopReason
from runner.wakeup import Wakeable


class StopFlag:
    """Thread-safe. ``set`` once (first reason wins); everything else reads or waits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._event = Wakeable()
        self._urgent = Wakeable()
        self._reason: StopReason | None = None
        self._detail = ""
        self._set_at: float | None = None
        self._wakers: list[Callable[[], None]] = []
        self._urgent_wakers: list[Callable[[], None]] = []

    def set(self, reason: StopReason, detail: str = "") -> bool:
        """Stop the attempt for ``reason``. True when this call won: the reason was
        unset and is now ``reason`` for good; False when another reason was first."""
        with self._lock:
            if self._reason is not None:
                return False
            self._reason, self._detail = reason, detail
            self._set_at = time.monotonic()
            wakers, self._wakers = self._wakers, []
            self._event.set()
        for wake in wakers:
            wake()
        return True

    def hurry(self, detail: str = "") -> None:
        """Stop now: FAST_STOP unless a reason was set first, and ``urgent`` set, so
        that a grace in progress (a TERM'd tree, a log upload) ends at once."""
        self.set(StopReason.FAST_STOP, detail)
        with self._lock:
            self._urgent.set()
            wakers, self._urgent_wakers = self._urgent_wakers, []
        for wake in wakers:
            wake()

    @property
    def urgent(self) -> threading.Event:
        """Set by ``hurry``: wind-down waits (grace periods) end at once."""
        return self._urgent

    @property
    def reason(self) -> StopReason | None:
        return self._reason

    @property
    def detail(self) -> str:
        return self._detail

    @property
    def set_at(self) -> float | None:
        """``time.monotonic()`` when the reason was set, else None."""
        return self._set_at

    def is_set(self) -> bool:
        return self._event.is_set()

    @property
    def event(self) -> threading.Event:
        """The wake-up, for code below ``task/`` that waits on events (retry
        backoffs, transfers). Wait on it; never set it: ``set`` is the only way in."""
        return self._event

    def wait(self, timeout: float | None) -> bool:
        """Block until the flag is set or ``timeout`` passes; True when set."""
        return self._event.wait(timeout)

    def add_waker(
        self, wake: Callable[[], None], *, urgent: bool = False
    ) -> Callable[[], None]:
        """Call ``wake`` once when the flag is set (``urgent``: when it is hurried),
        at once if that has already happened. Returns a function that removes it.
        ``wake`` must not block."""
        with self._lock:
            pending = self._urgent_wakers if urgent else self._wakers
            done = self._urgent.is_set() if urgent else self._reason is not None
            if not done:
                pending.append(wake)
                return lambda: self._remove(pending, wake)
        wake()
        return lambda: None

    def _remove(
        self, pending: list[Callable[[], None]], wake: Callable[[], None]
    ) -> None:
        with self._lock:
            if wake in pending:
                pending.remove(wake)
