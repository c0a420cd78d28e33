"""Events that wake other waits: a wait on several events is one ``Event.wait``.

``Wakeable`` is a ``threading.Event`` that calls its wakers when it is set (the
``StopFlag.add_waker`` pattern); ``wait_any`` adds one waker to each event it
waits on, so that the first set ends the wait at once, with no loop of short
slices looking at each event in turn.

Must not: log, sleep with ``time.sleep``, or know what an event means (the
shutdown state and the stop flags own theirs). It imports nothing from the runner,
so every layer can use it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence


class Wakeable(threading.Event):
    """An event that calls each of its wakers once it is set. A waker added after
    the event is set runs at once, so no wait can miss it. Thread-safe."""

    def __init__(self) -> None:
        super().__init__()
        self._wakers_lock = threading.Lock()
        self._wakers: list[Callable[[], None]] = []

    def set(self) -> None:
        super().set()
        with self._wakers_lock:
            wakers = list(self._wakers)
        for wake in wakers:
            wake()

    def add_waker(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` when the event is set (now, if it is); returns the call
        that removes it."""
        with self._wakers_lock:
            self._wakers.append(wake)
        if self.is_set():
            wake()

        def remove() -> None:
            with self._wakers_lock, contextlib.suppress(ValueError):
                self._wakers.remove(wake)

        return remove


def wait_any(events: Sequence[threading.Event], timeout_s: float | None) -> bool:
    """Block up to ``timeout_s`` (None: until one is set); True as soon as any
    event is set. One event is waited on directly; several must be ``Wakeable``
    (raises ``TypeError``): each wakes the one wait. With none, the wait is the
    whole ``timeout_s``."""
    if len(events) <= 1:
        event = events[0] if events else threading.Event()
        return event.wait(timeout_s)
    woken = threading.Event()
    removers = [_wakeable(event).add_waker(woken.set) for event in events]
    try:
        woken.wait(timeout_s)
    finally:
        for remove in removers:
            remove()
    return any(event.is_set() for event in events)


def _wakeable(event: threading.Event) -> Wakeable:
    if not isinstance(event, Wakeable):
        raise TypeError("a wait on several events needs Wakeable events")
    return event
