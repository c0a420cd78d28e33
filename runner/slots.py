"""The task slots the pollers reserve before they poll: first come, first served.

Owns: how many slots are free, and the line of pollers waiting for one.

Must not: poll, run a task, or log.

Why it is not a semaphore: a thread that gives a semaphore back and asks again at
once takes it again at once (it never waits), whoever was waiting first. The
pollers do exactly that after every empty poll, so with fewer free slots than
worker groups (three groups, three slots, one task running) one group's poller
could wait behind the others' empty polls for as long as they keep coming: its
tasks never polled, the service re-offering nothing because nothing was taken.
Here a slot given back goes to the poller that has waited longest, and a poller
whose wait runs out (it wakes to say it is alive, or to see the shutdown) keeps
its place in the line for its next ask.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable


class Slots:
    """``count`` slots, handed out in the order they were asked for. Thread-safe;
    ``who`` names one waiter (a poller's worker group): one ask at a time each."""

    def __init__(self, count: int) -> None:
        self._lock = threading.Lock()
        self._free = count
        #: Waiting, oldest first (a dict keeps insertion order).
        self._line: dict[Hashable, threading.Event] = {}
        #: Handed a slot while not waiting on it (its wait had run out).
        self._granted: set[Hashable] = set()

    def take(self, who: Hashable, timeout_s: float) -> bool:
        """A slot for ``who`` within ``timeout_s``; False when none came. Past a
        False, ``who`` is still in the line: its next ``take`` keeps the place."""
        with self._lock:
            if who in self._granted:
                self._granted.discard(who)
                return True
            turn = self._line.get(who)
            if turn is None:
                if self._free and not self._line:
                    self._free -= 1
                    return True
                turn = self._line[who] = threading.Event()
        if not turn.wait(timeout_s):
            return False
        with self._lock:  # handed over: ``give_back`` took it out of the line
            self._granted.discard(who)
        return True

    def give_back(self) -> None:
        """Give a slot back: to the longest waiter, else to the free ones."""
        with self._lock:
            if self._line:
                who = next(iter(self._line))
                self._line.pop(who).set()
                self._granted.add(who)
            else:
                self._free += 1

    def leave(self, who: Hashable) -> None:
        """``who`` asks no more (its poller ends): out of the line, and a slot
        handed to it meanwhile goes back."""
        with self._lock:
            self._line.pop(who, None)
            owed = who in self._granted
            self._granted.discard(who)
        if owed:
            self.give_back()
