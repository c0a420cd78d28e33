"""What the runner says about its own health: the probes, the watchdog, the status.

Owns: the verdicts of ``/healthz`` (liveness: every watched poller and heartbeat
thread on time, ``liveness.py``) and ``/readyz`` (readiness: not draining, every
poller running, and the service answered recently with no failure since), and
``Notifier``, which the dispatcher calls at each pass to keep systemd informed:
``WATCHDOG=1`` only while the runner is live, a ``STATUS=`` line when it changes,
and ``EXTEND_TIMEOUT_USEC`` while draining.

Must not: change any state, or call the service (a probe answers from snapshots).

Why liveness never looks at AWS: a liveness probe that fails on an outage restarts
every runner of a fleet at once and fixes nothing (peers.md §4). An outage is a
stream of errors and backoffs, and each one is an iteration of the thread that
met it; only a thread that stops coming round (wedged on a lock, dead of a bug)
fails it. Readiness is where the service's answers count.

Why ``EXTEND_TIMEOUT_USEC``: the runner bounds its own exit (``shutdown.py``), and a
``drain_timeout`` above what the unit's ``TimeoutStopSec`` was written for would
get the runner SIGKILLed mid-drain; extending by what is left of the bound (plus a
margin), at every pass, keeps systemd's deadline just past the runner's own.
"""

from __future__ import annotations

import time

import structlog

from runner import systemd
from runner.aws.client import Client
from runner.liveness import Liveness
from runner.shutdown import Shutdown
from runner.worker import Worker, WorkerStatistics

#: Ready only when the service answered within this long (an empty long poll
#: comes back within 90 s).
READY_WITHIN_S = 150.0
#: ``EXTEND_TIMEOUT_USEC`` asks for what is left of the shutdown bound plus this.
EXTEND_MARGIN_S = 10.0

Verdict = tuple[bool, str]


def live(liveness: Liveness) -> Verdict:
    """Every watched thread came round within its bound."""
    late = liveness.overdue()
    if late:
        names = ", ".join(
            f"{o.name} silent for {o.silent_s:g} s (bound {o.bound_s:g} s)"
            for o in late
        )
        return False, f"overdue: {names}"
    return True, f"ok: {len(liveness.watched())} threads on time"


def ready(
    worker: Worker,
    client: Client,
    shutdown: Shutdown,
    within_s: float = READY_WITHIN_S,
) -> Verdict:
    """Polling, the journal writable, and the service answered recently with no
    failure since."""
    if shutdown.requested.is_set():
        return False, f"draining ({shutdown.reason})"
    blocked = _worker_blocked(worker)
    if blocked is not None:
        return False, blocked
    stats = client.statistics()
    if stats.last_answer is None:
        return False, "no answer from the service yet"
    if stats.last_failure is not None and stats.last_failure > stats.last_answer:
        return False, "the last call to the service failed"
    silent_s = time.monotonic() - stats.last_answer
    if silent_s > within_s:
        return False, f"no answer from the service for {silent_s:.0f} s"
    return True, "ready"


def _worker_blocked(worker: Worker) -> str | None:
    """Why the worker takes no task now, or None."""
    if not worker.pollers_alive():
        return "a poller has stopped"
    if not worker.journal_writable():
        return "the journal cannot be written (a full disk?): no new task"
    return None


def status_line(stats: WorkerStatistics, shutdown: Shutdown) -> str:
    """``systemctl status``'s one line: slots busy, tasks done, and a drain."""
    line = (
        f"{stats.tasks_running}/{stats.max_tasks} slots busy, "
        f"{stats.tasks_done} tasks done"
    )
    if shutdown.requested.is_set():
        line += f", draining ({shutdown.reason})"
    return line


class Notifier:
    """sd_notify at each pass of the dispatcher (main thread only)."""

    def __init__(
        self,
        liveness: Liveness,
        worker: Worker,
        shutdown: Shutdown,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._liveness = liveness
        self._worker = worker
        self._shutdown = shutdown
        self._log = log
        self._status = ""
        self._withheld = False

    def notify(self) -> None:
        """Status if it changed, the watchdog if live, the extension if draining."""
        status = status_line(self._worker.statistics(), self._shutdown)
        if status != self._status:
            self._status = status
            systemd.status(status)
        ok, why = live(self._liveness)
        if ok:
            systemd.watchdog()
            if self._withheld:
                self._log.info("watchdog_resumed")
        elif not self._withheld:
            self._log.error("watchdog_withheld", reason=why)
        self._withheld = not ok
        deadline = self._shutdown.status_deadline()
        if deadline is not None:
            left_s = max(0.0, deadline - time.monotonic()) + EXTEND_MARGIN_S
            systemd.notify(f"EXTEND_TIMEOUT_USEC={int(left_s * 1_000_000)}")
