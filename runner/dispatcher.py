"""The dispatcher: the runner's main thread from the first poll until it has drained,
and the objects of one run it dispatches for (``Runner``).

Owns: ``dispatch``, the one dispatcher of the shutdown state, and the housekeeping
it drives (the worker's, and reaping the orphans the runner adopted).

Must not: build anything (``daemon.build`` does), exit, echo, or import click.

Why one dispatcher (gunicorn's arbiter, amazon-ssm-agent's ``blockUntilSignaled``):
signal handlers only queue the signal number, and the runner heartbeat's
``terminate: true`` and the end of ``run --local`` are queued the same way. Only the
dispatcher changes the shutdown state, so every request takes one path: the first
stop begins the drain (polls and every backoff of polls and heartbeats end at once),
the drain running out sets DRAIN_EXPIRED on running attempts, a second stop signal
hurries them (FAST_STOP), and the loop ends once no task runs. The loop wakes for
each request, at the drain's deadline, and at least every ``MAIN_LOOP_S`` for
housekeeping (the journal's owed writes, pruning, reaping) and systemd
(``probes.Notifier``: the watchdog only while every poller and heartbeat comes
round, the status line, the stop timeout extended while draining). Split from
``daemon.py`` by concept: that module puts a run together, this one runs it.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from runner import probes, supervisor, systemd
from runner.aws.client import Client
from runner.aws.s3 import S3
from runner.config import Settings
from runner.drain import Shutdown
from runner.liveness import Liveness
from runner.signals import DUMP_SIGNAL, STOP_SIGNALS, WAKE, Request, Signals
from runner.task.journal import Journal
from runner.workdir import WorkDir
from runner.worker import Worker

if TYPE_CHECKING:
    from runner.health import HealthServer

#: The dispatcher's longest wait between two looks at the housekeeping.
MAIN_LOOP_S = 1.0
#: Orphan reaping scans the process table: often enough to keep zombies few,
#: rarely enough that an idle runner stays near 0 % CPU.
REAP_EVERY_S = 5.0


@dataclass
class Runner:
    """The objects of one ``dp-runner run``, built by ``build``."""

    settings: Settings
    signals: Signals
    shutdown: Shutdown
    log: structlog.typing.FilteringBoundLogger
    client: Client
    s3: S3
    work_dir: WorkDir
    journal: Journal
    worker: Worker
    liveness: Liveness
    http: HealthServer | None = None
    #: ``run --local`` on a terminal: writes a line for the person at it.
    say: Callable[[str], None] | None = None


def dispatch(runner: Runner) -> None:
    """The main thread until the runner has drained: act on each request of the
    inbox, expire the drain, do the housekeeping; then stop the worker."""
    shutdown, worker = runner.shutdown, runner.worker
    notifier = probes.Notifier(runner.liveness, worker, shutdown, runner.log)
    reaper = _Reaper(runner.journal, runner.log)
    stop_signals = 0
    while True:
        request = runner.signals.next(_next_wait_s(shutdown))
        if request in STOP_SIGNALS:
            stop_signals += 1
        if request is not None:
            _act(runner, request, second_signal=stop_signals > 1)
        if shutdown.requested.is_set():
            worker.expire()
            if worker.idle():
                break
        worker.housekeeping()
        reaper.reap()
        notifier.notify()
    worker.stop()
    if runner.http is not None:
        runner.http.close()
    runner.journal.close()
    stats = worker.statistics()
    runner.log.info(
        "runner_stopped",
        polls=stats.polls,
        tasks_started=stats.tasks_started,
        tasks_running=stats.tasks_running,
        outcomes=dict(stats.outcomes),
        terminate_requested=stats.terminate_requested,
    )


class _Reaper:
    """Reaps the orphans the runner adopted as subreaper, at most every
    ``REAP_EVERY_S``: never a process the journal names (a running attempt's, or
    one a recovery could not kill), nor one a ``Supervisor`` owns."""

    def __init__(
        self, journal: Journal, log: structlog.typing.FilteringBoundLogger
    ) -> None:
        self._journal = journal
        self._log = log
        self._last = 0.0

    def reap(self) -> None:
        now = time.monotonic()
        if now - self._last < REAP_EVERY_S:
            return
        self._last = now
        owned = [e.pid for e in self._journal.entries() if e.pid is not None]
        for pid in supervisor.reap_orphans(owned):
            self._log.info("orphan_reaped", pid=pid)


def _act(runner: Runner, request: Request, *, second_signal: bool) -> None:
    if request == DUMP_SIGNAL:
        runner.signals.dump()
    elif request == WAKE:
        return
    elif second_signal and not runner.shutdown.fast.is_set():
        runner.shutdown.hurry(request_name(request))
        runner.worker.hurry()
        if runner.say is not None:
            runner.say("stopping now: running tasks are killed, then reported")
    elif runner.shutdown.begin(request_name(request)):
        systemd.stopping()
        runner.worker.drain()
        if runner.say is not None and request in STOP_SIGNALS:
            runner.say("draining — Ctrl-C again to stop now")


def request_name(request: Request) -> str:
    """A signal's name (``SIGTERM``), or a request's own (``terminate``)."""
    return signal.Signals(request).name if isinstance(request, int) else request


def _next_wait_s(shutdown: Shutdown) -> float:
    left_s = shutdown.until_expiry_s()
    if left_s is None or left_s <= 0:
        return MAIN_LOOP_S
    return min(MAIN_LOOP_S, left_s)
