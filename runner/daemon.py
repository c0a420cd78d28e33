"""The daemon: how one ``dp-runner run`` is put together, and its main thread.

Owns: ``build`` (logs, the locked work dir, the clients, the one shutdown state, the
worker, from ``Settings``), ``open_work_dir`` (the umask, the ``run_as`` user, the
work dir's folder and lock), ``serve`` (the daemon's whole life) and ``dispatch``,
the main thread's loop: the one dispatcher of the shutdown state. This module and
``localrun`` are the composition root with ``cli``, split out of it by size: they
read ``Settings``; nothing below them does.

Must not: exit, echo, or import click (``cli`` turns results into exit codes).

Why one dispatcher (gunicorn's arbiter, amazon-ssm-agent's ``blockUntilSignaled``):
signal handlers only queue the signal number, and the runner heartbeat's
``terminate: true`` and the end of ``run --local`` are queued the same way. Only the
dispatcher changes the shutdown state, so every request takes one path: the first
stop begins the drain (polls and every backoff of polls and heartbeats end at once),
the drain running out sets DRAIN_EXPIRED on running attempts, a second stop signal
hurries them (FAST_STOP), and the loop ends once no task runs. The loop wakes for
each request, at the drain's deadline, and at least every ``MAIN_LOOP_S`` for
housekeeping (reaping, pruning) and systemd (``probes.Notifier``: the watchdog only
while every poller and heartbeat comes round, the status line, the stop timeout
extended while draining).

With ``http_address``, ``start`` opens ``/healthz``, ``/readyz`` and ``/metrics``
(``health.py``, ``metrics.py``), imported only then: prometheus-client and the HTTP
server cost an idle runner that does not ask for them nothing.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from runner import __version__, ec2, logs, logship, probes, runas, supervisor, systemd
from runner.aws.client import Client
from runner.aws.s3 import S3
from runner.config import Settings, split_http_address
from runner.drain import Shutdown
from runner.liveness import Liveness
from runner.signals import (
    DUMP_SIGNAL,
    STOP_SIGNALS,
    TERMINATE,
    WAKE,
    Request,
    Signals,
)
from runner.task.execution import ExecutionSettings
from runner.task.journal import Journal
from runner.task.recovery import Recovery, recover
from runner.workdir import WorkDir
from runner.worker import Worker, default_hostname

if TYPE_CHECKING:
    from runner.health import HealthServer

#: The runner's umask from ``open_work_dir`` on (its tasks get 077 from Supervisor).
RUNNER_UMASK = 0o077
#: The dispatcher's longest wait between two looks at the housekeeping.
MAIN_LOOP_S = 1.0
JOURNAL_NAME = "journal.db"
#: Orphan reaping scans the process table: often enough to keep zombies few,
#: rarely enough that an idle runner stays near 0 % CPU.
REAP_EVERY_S = 5.0
#: How long a stopped recovery's status try in flight is waited for.
RECOVERY_ABANDON_S = 2.0
#: The S3 read timeout is max(this, kill_grace): a stop leaves a hung transfer
#: behind, and its thread must end soon after (every wait is stoppable).
S3_MIN_READ_TIMEOUT_S = 1.0


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


def build(settings: Settings, signals: Signals, session: Any = None) -> Runner:
    """Logs, the work dir (locked), the clients and the worker. ``session``: the
    boto3 session of the Data Pipeline client (``run --local``); None for boto3's
    chain. Raises ``ConfigError``."""
    logs.configure(log_format=settings.log_format, level=settings.log_level)
    log = logs.get_logger("dp-runner")
    work_dir = open_work_dir(settings, log)
    logs.add_file_log(work_dir.logs_dir())
    journal = Journal.open(work_dir.root / JOURNAL_NAME, log=log)
    shutdown = Shutdown(
        drain_timeout=settings.drain_timeout,
        kill_grace=settings.kill_grace,
        status_budget_s=settings.status_budget,
    )
    liveness = Liveness()
    client = Client(
        region=settings.region,
        endpoint_url=settings.endpoint_url,
        stop=shutdown.requested,
        abort=shutdown.fast,
        log=log,
        session=session,
        liveness=liveness,
    )
    logs.mask_values(client.secrets)
    s3 = S3(
        region=settings.region, log=log, read_timeout_s=_s3_read_timeout_s(settings)
    )
    worker = Worker(
        client=client,
        s3=s3,
        work_dir=work_dir,
        worker_groups=list(settings.worker_groups),
        hostname=settings.hostname or default_hostname(),
        taskrunner_id=settings.taskrunner_id or work_dir.taskrunner_id(),
        max_tasks=settings.max_tasks,
        runner_heartbeat_interval=settings.runner_heartbeat_interval,
        keep_attempts=settings.keep_attempts,
        execution_settings=ExecutionSettings(
            heartbeat_interval=settings.heartbeat_interval,
            lease_timeout=settings.lease_timeout,
            kill_grace=settings.kill_grace,
            region=settings.region or client.region,
            wind_down_s=_s3_read_timeout_s(settings),
        ),
        shutdown=shutdown,
        requests=signals.inbox,
        journal=journal,
        log=log,
        liveness=liveness,
    )
    return Runner(
        settings,
        signals,
        shutdown,
        log,
        client,
        s3,
        work_dir,
        journal,
        worker,
        liveness,
    )


def open_work_dir(
    settings: Settings, log: structlog.typing.FilteringBoundLogger
) -> WorkDir:
    """The work dir, locked, for tasks that run as ``run_as`` (resolved here) or
    as the runner's user; says what it changed. From here on the runner's umask is
    077: every file it makes (downloads, logs, the journal) is private whoever
    made it (design.md §3). Raises ``ConfigError``."""
    os.umask(RUNNER_UMASK)
    run_as = runas.resolve(settings.run_as) if settings.run_as else None
    work_dir = WorkDir(settings.work_dir, run_as=run_as)
    opened = work_dir.lock()
    if opened.shared:
        log.info(
            "work_dir_shared",
            configured=str(opened.configured),
            work_dir=str(opened.root),
            reason="the configured folder belongs to another user",
        )
    if opened.mode_was is not None:
        log.info(
            "work_dir_mode_fixed",
            work_dir=str(opened.root),
            mode_was=f"{opened.mode_was:04o}",
            mode=f"{work_dir.dir_mode:04o}",
        )
    if run_as is not None:
        log.info("tasks_run_as", user=run_as.name, uid=run_as.uid, gid=run_as.gid)
    return work_dir


def start(runner: Runner, **details: Any) -> None:
    """Before the first poll: what the last run left (its trees killed, its unsent
    statuses sent, from the journal), then the worker; ``details`` go on its
    start-up line. A stop signal during the recovery ends it, and the worker is
    then never started: ``dispatch`` finds the runner stopping and idle."""
    recovery = _recover(runner)
    if recovery is None:
        runner.signals.inbox.put(WAKE)  # the dispatcher: nothing to wait for
        return
    runner.worker.blocked_attempts = recovery.blocked_attempts
    http_address = _serve_http(runner)
    runner.worker.start(
        version=__version__,
        region=runner.client.region,
        endpoint_url=runner.settings.endpoint_url,
        work_dir=str(runner.work_dir.root),
        # under ProtectSystem=strict (or a read-only root), where tasks can write
        writable_paths=systemd.writable_paths(),
        http_address=http_address,
        **details,
    )


def _recover(runner: Runner) -> Recovery | None:
    """``recover`` on a thread of its own while this (the main) thread reads the
    signals: the first stop signal begins the shutdown, which ends the recovery
    between two rows and cuts its retries short; a status try in flight (up to
    one read timeout) is abandoned after ``RECOVERY_ABANDON_S``. None: stopped.
    Raises what ``recover`` raised."""
    done: list[Recovery] = []
    failed: list[Exception] = []

    def run() -> None:
        try:
            done.append(
                recover(
                    runner.journal,
                    runner.client,
                    kill_grace=runner.settings.kill_grace,
                    log=runner.log,
                    budget_s=runner.shutdown.status_budget_s,
                    stop=runner.shutdown.requested,
                )
            )
        except Exception as exc:  # noqa: BLE001 - raised again on the main thread
            failed.append(exc)
        finally:
            runner.signals.inbox.put(WAKE)

    thread = threading.Thread(target=run, name="recovery", daemon=True)
    thread.start()
    while thread.is_alive() and not runner.shutdown.requested.is_set():
        request = runner.signals.next(None)
        if request == DUMP_SIGNAL:
            runner.signals.dump()
        elif request in STOP_SIGNALS or request == TERMINATE:
            runner.shutdown.begin(_name(request))
    thread.join(RECOVERY_ABANDON_S)
    if failed:
        raise failed[0]
    if runner.shutdown.requested.is_set():
        runner.log.info("recovery_stopped", abandoned=thread.is_alive())
        return None
    return done[0]


def _serve_http(runner: Runner) -> str | None:
    """/healthz, /readyz and /metrics when ``http_address`` is set; the address
    listened on. Raises ``ConfigError`` when it cannot listen."""
    if runner.settings.http_address is None:
        return None
    from runner import health, metrics  # noqa: PLC0415 - only with http_address

    host, port = split_http_address(runner.settings.http_address)
    worker, client, shutdown = runner.worker, runner.client, runner.shutdown
    runner.http = health.HealthServer(
        host,
        port,
        live=lambda: probes.live(runner.liveness),
        ready=lambda: probes.ready(worker, client, shutdown),
        metrics=metrics.exposition(worker, client),
    )
    return runner.http.start()


def serve(settings: Settings) -> int:
    """The daemon: run until a signal or ``terminate`` drains it. Returns 0."""
    settings.require_worker_groups()
    signals = Signals()
    signals.install()
    runner = build(settings, signals)
    # the runner's own id: two runners on one host never ship to the same keys
    shipper = logship.start(
        settings.log_uri,
        s3=runner.s3,
        runner_id=runner.worker.taskrunner_id,
        log=runner.log,
    )
    supervisor.enable_subreaper()
    metadata = ec2.metadata_service()
    identity = ec2.instance_identity(metadata, runner.log)
    runner.worker.preflight()
    gc.collect()  # the sessions' endpoint tables, in reference cycles (aws/session.py)
    watch = None
    if identity is not None and metadata is not None:
        runner.worker.instance_identity = identity.to_api()
        watch = ec2.InstanceWatch(metadata, signals.inbox, runner.log)
    start(runner, instance_id=identity.instance_id if identity else None)
    systemd.ready()
    if watch is not None:
        watch.start()
    dispatch(runner)
    if watch is not None:
        watch.stop()
    if shipper is not None:
        shipper.close(logship.CLOSE_TIMEOUT_S)
    return 0


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
        runner.shutdown.hurry(_name(request))
        runner.worker.hurry()
        if runner.say is not None:
            runner.say("stopping now: running tasks are killed, then reported")
    elif runner.shutdown.begin(_name(request)):
        systemd.stopping()
        runner.worker.drain()
        if runner.say is not None and request in STOP_SIGNALS:
            runner.say("draining — Ctrl-C again to stop now")


def _name(request: Request) -> str:
    return signal.Signals(request).name if isinstance(request, int) else request


def _next_wait_s(shutdown: Shutdown) -> float:
    left_s = shutdown.until_expiry_s()
    if left_s is None or left_s <= 0:
        return MAIN_LOOP_S
    return min(MAIN_LOOP_S, left_s)


def _s3_read_timeout_s(settings: Settings) -> float:
    """An attempt abandons a hung transfer on a stop: its thread must end within a
    read. A stopped attempt's log upload gets as long (one read)."""
    return max(S3_MIN_READ_TIMEOUT_S, settings.kill_grace)
