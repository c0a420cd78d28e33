"""Housekeeping, driven by the journal: the journal's owed writes made again, old
attempt folders pruned, the orphans the runner adopted reaped.

Owns when each runs (the dispatcher calls ``run`` at each pass of its loop) and
what each may touch: a folder or a process the journal names is never removed or
reaped, so housekeeping never reads an execution's fields and never races a task
thread.

Must not: decide to stop, or touch a process the journal or a ``Supervisor``
holds. Split from the worker (pruning) and the dispatcher (reaping) by concept:
the worker serves tasks, the dispatcher follows the shutdown state.
"""

from __future__ import annotations

import time

import structlog

from runner import supervisor
from runner.task.journal import Journal
from runner.workdir import WorkDir

#: Pruning runs at most this often, and 24 times within ``keep_attempts`` at least
#: (so ``keep_attempts = 0`` prunes at every housekeeping pass).
PRUNE_EVERY_S = 3600.0
#: Orphan reaping scans the process table: often enough to keep zombies few,
#: rarely enough that an idle runner stays near 0 % CPU.
REAP_EVERY_S = 5.0


class Housekeeping:
    """The housekeeping of one runner. Main thread only."""

    def __init__(
        self,
        journal: Journal,
        work_dir: WorkDir,
        keep_attempts: float,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._journal = journal
        self._work_dir = work_dir
        self._keep_attempts = keep_attempts
        self._log = log
        self._last_prune = 0.0
        self._last_reap = 0.0

    def run(self) -> None:
        """Make the journal's owed writes again (every ``journal.RETRY_EVERY_S``),
        prune, reap: each only when it is due."""
        writable = self._journal.retry()
        now = time.monotonic()
        every_s = min(PRUNE_EVERY_S, self._keep_attempts * 86400.0 / 24)
        # while a write is owed the journal may not name every running attempt
        if writable and now - self._last_prune >= every_s:
            self._last_prune = now
            self.prune()
        if now - self._last_reap >= REAP_EVERY_S:
            self._last_reap = now
            self.reap()

    def prune(self) -> None:
        """Remove attempt folders older than ``keep_attempts``, never one the
        journal holds (each running attempt's row names its folder)."""
        removed = self._work_dir.prune_attempts(
            self._keep_attempts, keep=self._journal.folders()
        )
        if removed:
            self._log.info("attempts_pruned", removed=removed)

    def reap(self) -> None:
        """Reap the orphans the runner adopted as subreaper: never a process the
        journal names (a running attempt's, or one a recovery could not kill),
        nor one a ``Supervisor`` owns."""
        owned = [e.pid for e in self._journal.entries() if e.pid is not None]
        for pid in supervisor.reap_orphans(owned):
            self._log.info("orphan_reaped", pid=pid)
