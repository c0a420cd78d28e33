"""The dispatcher: the runner's main thread from the first poll until it has drained,
and the objects of one run it dispatches for (``Runner``).

Owns: ``dispatch``, the one dispatcher of the shutdown state, the drain as one
function (``_drain``), and when the housekeeping runs (``housekeeping.py``).

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from runner import probes, systemd
from runner.aws.client import Client
from runner.aws.s3 import S3
from runner.config import Settings
from runner.housekeeping import Housekeeping
from runner.liveness import Liveness
from runner.runnerbeat import RunnerBeat
from runner.shutdown import Shutdown
from runner.signals import DUMP_SIGNAL, STOP_SIGNALS, WAKE, Request, Signals
from runner.task.journal import Journal
from runner.workdir import WorkDir
from runner.worker import Worker
from runner.workerbooks import WorkerBooks

if TYPE_CHECKING:
    from runner.health import HealthServer

#: The dispatcher's longest wait between two looks at the housekeeping.
MAIN_LOOP_S = 1.0


@dataclass(frozen=True)
class Runner:
    """The objects of one ``dp-runner run``, built by ``daemon.build``; nothing is
    set on them after. ``say``: ``run --local`` or ``exec`` on a terminal writes a
    line for the person at it."""

    settings: Settings
    signals: Signals
    shutdown: Shutdown
    log: structlog.typing.FilteringBoundLogger
    client: Client
    s3: S3
    work_dir: WorkDir
    journal: Journal
    liveness: Liveness
    books: WorkerBooks
    runner_beat: RunnerBeat
    taskrunner_id: str
    hostname: str
    say: Callable[[str], None] | None = None


@dataclass(frozen=True)
class Serving:
    """A started runner (``daemon.start``): its worker, built after the start-up
    recovery with what it found, and its listener."""

    runner: Runner
    worker: Worker
    http: HealthServer | None = None


def dispatch(serving: Serving) -> None:
    """The main thread until the runner has drained: act on each request of the
    inbox and do the housekeeping until the shutdown begins; then ``_drain``."""
    runner = serving.runner
    notifier = probes.Notifier(
        runner.liveness, serving.worker, runner.shutdown, runner.log
    )
    housekeeping = Housekeeping(
        runner.journal, runner.work_dir, runner.settings.keep_attempts, runner.log
    )
    stop_signals = 0
    while not runner.shutdown.requested.is_set():
        request = runner.signals.next(MAIN_LOOP_S)
        stop_signals += request in STOP_SIGNALS
        if request is not None:
            _act(serving, request, second_signal=False)
        housekeeping.run()
        notifier.notify()
    _drain(serving, housekeeping, notifier, stop_signals=stop_signals)


def _drain(
    serving: Serving,
    housekeeping: Housekeeping,
    notifier: probes.Notifier,
    *,
    stop_signals: int,
) -> None:
    """The drain, from the first stop to the exit: running attempts go on until
    they end or the drain runs out (then DRAIN_EXPIRED), a second stop signal
    hurries them (FAST_STOP); the housekeeping and systemd go on meanwhile. Then
    the worker, the listener and the journal close."""
    runner, worker = serving.runner, serving.worker
    while True:
        worker.expire()
        if worker.idle():
            break
        request = runner.signals.next(_next_wait_s(runner.shutdown))
        stop_signals += request in STOP_SIGNALS
        if request is not None:
            _act(serving, request, second_signal=stop_signals > 1)
        housekeeping.run()
        notifier.notify()
    worker.stop()
    if serving.http is not None:
        serving.http.close()
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


def _act(serving: Serving, request: Request, *, second_signal: bool) -> None:
    runner = serving.runner
    if request == DUMP_SIGNAL:
        runner.signals.dump()
    elif request == WAKE:
        return
    elif second_signal and not runner.shutdown.fast.is_set():
        runner.shutdown.hurry(request_name(request))
        serving.worker.hurry()
        if runner.say is not None:
            runner.say("stopping now: running tasks are killed, then reported")
    elif runner.shutdown.begin(request_name(request)):
        systemd.stopping()
        serving.worker.drain()
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
