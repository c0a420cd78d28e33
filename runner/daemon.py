"""The daemon's parts: how a runner is built and started.

Owns the steps that ``lifecycle.Lifecycle`` puts in one order for ``run``, ``run
--local`` and ``exec``: ``build`` (logs, the locked work dir, the journal, the
clients, the one shutdown state, the runner heartbeat, and the ``say`` of a
terminal run, from ``Settings``), ``open_work_dir`` (the umask, the ``run_as``
user, the work dir's folder and lock) and ``start`` (the start-up recovery, then
the worker built with what it found, and the listener: a ``Serving``); the main
thread's loop is ``dispatcher.py``'s. Nothing is set on what it builds afterwards.
This module, ``lifecycle`` and ``localrun`` are the composition root with ``cli``:
they read ``Settings``; nothing below them does.

Must not: exit, echo, or import click (``cli`` turns results into exit codes).

With ``http_address``, ``start`` opens ``/healthz``, ``/readyz`` and ``/metrics``
(``health.py``, ``metrics.py``), imported only then: prometheus-client and the HTTP
server cost an idle runner that does not ask for them nothing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from runner import __version__, logs, probes, runas, supervisor, systemd
from runner.aws.client import Client
from runner.aws.s3 import S3
from runner.config import Settings, split_http_address
from runner.dispatcher import Runner, Serving, request_name
from runner.liveness import Liveness
from runner.runnerbeat import RunnerBeat
from runner.shutdown import Shutdown
from runner.signals import DUMP_SIGNAL, STOP_SIGNALS, TERMINATE, WAKE, Signals
from runner.task.execution import ExecutionSettings
from runner.task.journal import Journal
from runner.task.recovery import Recovery, recover
from runner.taskpool import TaskPool
from runner.workdir import WorkDir
from runner.worker import Worker, default_hostname
from runner.workerbooks import WorkerBooks

if TYPE_CHECKING:
    from runner.health import HealthServer

#: The runner's umask from ``open_work_dir`` on (its tasks get 077 from Supervisor).
RUNNER_UMASK = 0o077
JOURNAL_NAME = "journal.db"
#: How long a stopped recovery's status try in flight is waited for.
RECOVERY_ABANDON_S = 2.0
#: The S3 read timeout is max(this, kill_grace): a stop leaves a hung transfer
#: behind, and its thread must end soon after (every wait is stoppable).
S3_MIN_READ_TIMEOUT_S = 1.0


def build(
    settings: Settings,
    signals: Signals,
    session: Any = None,
    *,
    say: Callable[[str], None] | None = None,
) -> Runner:
    """Logs, the work dir (locked), the journal, the clients and the runner
    heartbeat: what the start-up recovery and the preflight need. ``session``: the
    boto3 session of the Data Pipeline client (``run --local``); None for boto3's
    chain. ``say``: a line for a person at a terminal (``run --local``, ``exec``).
    The worker is built by ``start``, after the recovery. Raises ``ConfigError``."""
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
    groups = list(settings.worker_groups)
    books = WorkerBooks(settings.max_tasks, tuple(groups))
    hostname = settings.hostname or default_hostname()
    taskrunner_id = settings.taskrunner_id or work_dir.taskrunner_id()
    runner_beat = RunnerBeat(
        client=client,
        taskrunner_id=taskrunner_id,
        groups=groups,
        hostname=hostname,
        interval_s=settings.runner_heartbeat_interval,
        requests=signals.inbox,
        books=books,
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
        liveness,
        books,
        runner_beat,
        taskrunner_id,
        hostname,
        say,
    )


def _worker(
    runner: Runner,
    blocked_attempts: frozenset[str],
    instance_identity: Mapping[str, str] | None,
) -> Worker:
    """The pollers and the task pool, with what the recovery found."""
    settings, client = runner.settings, runner.client
    pool = TaskPool(
        max_tasks=settings.max_tasks,
        client=client,
        s3=runner.s3,
        work_dir=runner.work_dir,
        settings=ExecutionSettings(
            heartbeat_interval=settings.heartbeat_interval,
            lease_timeout=settings.lease_timeout,
            kill_grace=settings.kill_grace,
            region=settings.region or client.region,
            wind_down_s=_s3_read_timeout_s(settings),
        ),
        shutdown=runner.shutdown,
        journal=runner.journal,
        books=runner.books,
        requests=runner.signals.inbox,
        log=runner.log,
        blocked_attempts=blocked_attempts,
    )
    return Worker(
        client=client,
        pool=pool,
        runner_beat=runner.runner_beat,
        books=runner.books,
        worker_groups=list(settings.worker_groups),
        hostname=runner.hostname,
        taskrunner_id=runner.taskrunner_id,
        shutdown=runner.shutdown,
        journal=runner.journal,
        log=runner.log,
        liveness=runner.liveness,
        instance_identity=instance_identity,
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


def start(
    runner: Runner,
    *,
    instance_identity: Mapping[str, str] | None = None,
    **details: Any,
) -> Serving:
    """Before the first poll: what the last run left (its trees killed, its unsent
    statuses sent, from the journal), then the worker, built with what the
    recovery found, and the listener; ``details`` go on its start-up line. A stop
    signal during the recovery ends it, and the worker is then never started:
    ``dispatch`` finds the runner stopping and idle."""
    recovery = _recover(runner)
    if recovery is None:
        runner.signals.inbox.put(WAKE)  # the dispatcher: nothing to wait for
        return Serving(runner, _worker(runner, frozenset(), instance_identity))
    worker = _worker(runner, recovery.blocked_attempts, instance_identity)
    http, http_address = _serve_http(runner, worker)
    worker.start(
        version=__version__,
        region=runner.client.region,
        endpoint_url=runner.settings.endpoint_url,
        work_dir=str(runner.work_dir.root),
        # under ProtectSystem=strict (or a read-only root), where tasks can write
        writable_paths=systemd.writable_paths(),
        http_address=http_address,
        **supervisor.containment().fields(),
        **details,
    )
    return Serving(runner, worker, http)


def _recover(runner: Runner) -> Recovery | None:
    """``recover`` on a thread of its own while this (the main) thread reads the
    signals: the first stop signal begins the shutdown, which ends the recovery
    between two rows and cuts its retries short; a status try in flight (up to
    one read timeout) is abandoned after ``RECOVERY_ABANDON_S``. None: stopped.
    Raises what ``recover`` raised."""
    done: list[Recovery] = []
    failed: list[Exception] = []
    # Set before the WAKE is queued: the thread may still be alive when the main
    # thread reads that WAKE, and a loop on is_alive() would then wait forever.
    ended = threading.Event()

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
            ended.set()
            runner.signals.inbox.put(WAKE)

    thread = threading.Thread(target=run, name="recovery", daemon=True)
    thread.start()
    while not ended.is_set() and not runner.shutdown.requested.is_set():
        request = runner.signals.next(None)
        if request == DUMP_SIGNAL:
            runner.signals.dump()
        elif request in STOP_SIGNALS or request == TERMINATE:
            runner.shutdown.begin(request_name(request))
    thread.join(RECOVERY_ABANDON_S)
    if failed:
        raise failed[0]
    if runner.shutdown.requested.is_set():
        runner.log.info(
            "recovery_stopped",
            abandoned=thread.is_alive(),
            reason=runner.shutdown.reason,
        )
        return None
    return done[0]


def _serve_http(
    runner: Runner, worker: Worker
) -> tuple[HealthServer | None, str | None]:
    """/healthz, /readyz and /metrics when ``http_address`` is set: the listener
    and the address it listens on. Raises ``ConfigError`` when it cannot listen."""
    if runner.settings.http_address is None:
        return None, None
    from runner import health, metrics  # noqa: PLC0415 - only with http_address

    host, port = split_http_address(runner.settings.http_address)
    client, shutdown = runner.client, runner.shutdown
    http = health.HealthServer(
        host,
        port,
        live=lambda: probes.live(runner.liveness),
        ready=lambda: probes.ready(worker, client, shutdown),
        metrics=metrics.exposition(worker, client),
    )
    return http, http.start()


def _s3_read_timeout_s(settings: Settings) -> float:
    """An attempt abandons a hung transfer on a stop: its thread must end within a
    read. A stopped attempt's log upload gets as long (one read)."""
    return max(S3_MIN_READ_TIMEOUT_S, settings.kill_grace)
