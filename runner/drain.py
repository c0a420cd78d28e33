"""The runner's shutdown state, shared by the worker and every execution.

Owns: when the drain began, when it runs out, and whether a second signal asked to
stop fast. It is state and nothing more: it signals no process and logs nothing.

Why an object and not an exception: shutdown must not unwind a task's thread. An
execution keeps heartbeating and supervising while the runner drains, and looks at
``expired`` on each tick to decide when to kill its tree (dramatiq stops consumers
before workers; trio's cancel scopes are state, not exceptions, for the same reason).
"""

from __future__ import annotations

import threading
import time


class Drain:
    """Thread-safe. ``begin`` starts the drain clock (first call wins); ``hurry``
    ends it at once."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.fast = threading.Event()
        self._deadline: float | None = None
        self._lock = threading.Lock()

    def begin(self, timeout_s: float) -> None:
        """Start draining: running tasks may go on for ``timeout_s`` more."""
        with self._lock:
            if not self.requested.is_set():
                self._deadline = time.monotonic() + timeout_s
                self.requested.set()

    def hurry(self) -> None:
        """Stop fast: the drain has run out now."""
        self.begin(0.0)
        self.fast.set()

    def expired(self) -> bool:
        """True once running tasks must be killed."""
        deadline = self._deadline
        return self.fast.is_set() or (
            deadline is not None and time.monotonic() >= deadline
        )
