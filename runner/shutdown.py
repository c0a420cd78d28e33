"""The runner's one shutdown state, shared by the dispatcher, the worker, the
clients and every execution.

Owns: whether the runner is stopping and why, when the drain began and when it runs
out, whether a second signal asked to stop fast, and the deadline every final status
must be sent by. It is state and nothing more: it signals no process and logs
nothing. Only the dispatcher (``daemon.py``, on the main thread) changes it; a
signal, ``terminate: true`` and the end of ``run --local`` all reach the dispatcher
the same way (a queue), so they all take the same path.

Why an object and not an exception: shutdown must not unwind a task's thread. An
execution keeps heartbeating and working while the runner drains (dramatiq stops
consumers before workers; trio's cancel scopes are state, not exceptions).

The exit is bounded: running tasks get ``drain_timeout``; then their trees get
``kill_grace``; then each final status gets what is left of ``status_budget_s``
(the setting ``status_budget``, ``STATUS_BUDGET_S`` by default;
``FAST_STATUS_BUDGET_S`` after a second signal). So ``drain_timeout + kill_grace +
status_budget_s`` bounds the time from the first signal to the exit, and the
systemd unit's ``TimeoutStopSec`` is derived from it at the defaults. A status not
sent by then stays in the journal for the next start. The same budget bounds the
whole start-up recovery (``task/recovery.py``): one value for both.
"""

from __future__ import annotations

import threading
import time

from runner.wakeup import Wakeable

#: After the drain and the kill, each final status gets at most this long, and
#: the start-up recovery all its statuses together (the default of the setting
#: ``status_budget``).
STATUS_BUDGET_S = 30.0
#: After a second signal, at most this long.
FAST_STATUS_BUDGET_S = 5.0


class Shutdown:
    """Thread-safe. ``begin`` starts the drain clock (the first call wins); ``hurry``
    ends the drain at once. Read from any thread."""

    def __init__(
        self,
        *,
        drain_timeout: float,
        kill_grace: float,
        status_budget_s: float = STATUS_BUDGET_S,
    ) -> None:
        self.drain_timeout = drain_timeout
        self.kill_grace = kill_grace
        self.status_budget_s = status_budget_s
        #: Set by ``begin``: stop polling; backoffs of polls and heartbeats end.
        self.requested = Wakeable()
        #: Set by ``hurry``: kill now; every other backoff ends.
        self.fast = Wakeable()
        self.reason: str | None = None
        self._began: float | None = None
        self._hurried: float | None = None
        self._lock = threading.Lock()

    def begin(self, reason: str) -> bool:
        """Start draining for ``reason``; True for the call that started it."""
        with self._lock:
            if self._began is not None:
                return False
            self._began, self.reason = time.monotonic(), reason
            self.requested.set()
            return True

    def hurry(self, reason: str = "second signal") -> None:
        """Stop fast: the drain has run out now."""
        self.begin(reason)
        with self._lock:
            if self._hurried is None:
                self._hurried = time.monotonic()
                self.fast.set()

    def expired(self) -> bool:
        """True once running tasks must be stopped."""
        left = self.until_expiry_s()
        return left is not None and left <= 0

    def until_expiry_s(self) -> float | None:
        """Seconds until the drain runs out (0 once it has); None before a drain."""
        began = self._began
        if began is None:
            return None
        if self.fast.is_set():
            return 0.0
        return max(0.0, began + self.drain_timeout - time.monotonic())

    def status_deadline(self) -> float | None:
        """``time.monotonic()`` by which a final status must have been sent, or None
        while the runner is not stopping. Moves closer on ``hurry``: wait on
        ``requested`` and ``fast`` (``Wakeable``: a retry's backoff wakes on them)
        to learn when it moves."""
        began, hurried = self._began, self._hurried
        if began is None:
            return None
        deadline = began + self.drain_timeout + self.kill_grace + self.status_budget_s
        if hurried is not None:
            deadline = min(deadline, hurried + FAST_STATUS_BUDGET_S)
        return deadline
