"""The watchdog means something: sd_notify on a real datagram socket.

The real runner process sends READY, STATUS, WATCHDOG, STOPPING and
EXTEND_TIMEOUT_USEC. In process, with bounds made small (a 1 s poll, backoffs of
50 ms, 0.3 s of slack): ``WATCHDOG=1`` stops while a poller is wedged on a lock
(a botocore hook on the client's own session blocks the poll) and goes on while
the endpoint answers 500 to every poll.
"""

from __future__ import annotations

import math
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from runner import probes
from runner.aws.client import Client
from runner.aws.retries import RetryPolicies, RetryPolicy
from runner.aws.s3 import S3
from runner.aws.session import new_session
from runner.liveness import Liveness
from runner.localservice import LocalService
from runner.runnerbeat import RunnerBeat
from runner.shutdown import Shutdown
from runner.signals import Signals
from runner.task.execution import ExecutionSettings
from runner.task.journal import Journal
from runner.taskpool import TaskPool
from runner.workdir import WorkDir
from runner.worker import Worker
from runner.workerbooks import WorkerBooks
from tests.support.pipelines import REGION, default_object, shell, submit
from tests.support.runners import RunnerProcess
from tests.support.waiting import wait_for

Spawn = Callable[..., RunnerProcess]


class Socket:
    """A bound datagram socket, as systemd's; what arrived, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received: list[str] = []

    def drain(self) -> list[str]:
        self.sock.setblocking(False)
        try:
            while True:
                self.received.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        return self.received

    def wait(self, prefix: str, timeout: float = 15.0) -> str:
        def found() -> str | None:
            return next((m for m in self.drain() if m.startswith(prefix)), None)

        return str(wait_for(found, timeout, f"{prefix} on the socket"))

    def watchdogs_during(self, seconds: float) -> int:
        """How many WATCHDOG=1 arrive in the next ``seconds``."""
        self.drain()
        self.received.clear()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                self.received.append(self.sock.recv(4096).decode())
            except TimeoutError:
                break
        return self.received.count("WATCHDOG=1")


@pytest.fixture
def notify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    yield Socket(sock)
    sock.close()


def test_the_runner_tells_systemd_what_it_does(
    notify: Socket, dp: Any, spawn_runner: Spawn, tmp_path: Path
) -> None:
    runner = spawn_runner()
    notify.wait("READY=1")
    assert notify.wait("STATUS=") == "STATUS=0/2 slots busy, 0 tasks done"
    notify.wait("WATCHDOG=1")
    flag = tmp_path / "started"
    submit(dp, [default_object(), shell("Hold", f"touch {flag}; sleep 2")])
    wait_for(flag.exists, 15, "the task")
    notify.wait("STATUS=1/2 slots busy, 0 tasks done")
    runner.signal(signal.SIGTERM)
    notify.wait("STOPPING=1")
    assert notify.wait("STATUS=1/2 slots busy, 0 tasks done, draining") == (
        "STATUS=1/2 slots busy, 0 tasks done, draining (SIGTERM)"
    )
    extend = notify.wait("EXTEND_TIMEOUT_USEC=")
    # drain_timeout 5 + kill_grace 0.5 + 30 s for the statuses + 10 s of margin
    assert 40e6 < int(extend.partition("=")[2]) <= 45.5e6
    assert runner.wait_exit() == 0
    order = [m.partition("=")[0] for m in notify.drain()]
    assert order.index("READY") < order.index("STOPPING")


class InProcess:
    """A worker with small bounds against the local service, and the notifier the
    dispatcher would call."""

    def __init__(self, service: LocalService, tmp_path: Path) -> None:
        self.wedge = threading.Lock()
        log = structlog.get_logger("test")
        session = new_session(REGION, ("test", "test"))
        # a hook of botocore's own, on the client's session: the poll waits on a lock
        session.events.register(
            "before-call.datapipeline.PollForTask", lambda **_: self._wedged()
        )
        self.shutdown = Shutdown(drain_timeout=1, kill_grace=0.1)
        self.liveness = Liveness(slack_s=0.3)
        quick = RetryPolicy(5, 5.0, 0.01, 0.05)
        policies = RetryPolicies(
            poll=RetryPolicy(2**31 - 1, math.inf, 0.01, 0.05),
            ack=quick,
            progress=quick,
            status=quick,
            runner_heartbeat=quick,
            other=quick,
        )
        client = Client(
            region=REGION,
            endpoint_url=service.endpoint_url,
            stop=self.shutdown.requested,
            abort=self.shutdown.fast,
            policies=policies,
            log=log,
            session=session,
            poll_read_timeout_s=1.0,
            liveness=self.liveness,
        )
        work_dir = WorkDir(tmp_path / "work")
        work_dir.lock()
        self.journal = Journal.open(work_dir.root / "journal.db", log=log)
        books = WorkerBooks(1, ("wg",))
        requests = Signals().inbox
        pool = TaskPool(
            max_tasks=1,
            client=client,
            s3=S3(region=REGION, log=log),
            work_dir=work_dir,
            settings=ExecutionSettings(
                heartbeat_interval=0.2, lease_timeout=2, kill_grace=0.1, region=REGION
            ),
            shutdown=self.shutdown,
            journal=self.journal,
            books=books,
            requests=requests,
            log=log,
        )
        runner_beat = RunnerBeat(
            client=client,
            taskrunner_id="test-runner",
            groups=["wg"],
            hostname="test-host",
            interval_s=0.5,
            requests=requests,
            books=books,
            log=log,
            liveness=self.liveness,
        )
        self.worker = Worker(
            client=client,
            pool=pool,
            runner_beat=runner_beat,
            books=books,
            worker_groups=["wg"],
            hostname="test-host",
            taskrunner_id="test-runner",
            shutdown=self.shutdown,
            journal=self.journal,
            log=log,
            poll_floor_s=0.05,
            liveness=self.liveness,
        )
        self.notifier = probes.Notifier(self.liveness, self.worker, self.shutdown, log)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._dispatch, daemon=True)

    def _wedged(self) -> None:
        with self.wedge:
            pass

    def _dispatch(self) -> None:
        """What the dispatcher does at each pass, every 0.1 s."""
        while not self._stop.wait(0.1):
            self.notifier.notify()

    def start(self) -> None:
        self.worker.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.shutdown.begin("test")
        self.worker.stop()
        self.journal.close()


@pytest.fixture
def in_process(
    service: LocalService, tmp_path: Path, notify: Socket
) -> Iterator[InProcess]:
    harness = InProcess(service, tmp_path)
    harness.start()
    yield harness
    if harness.wedge.locked():
        harness.wedge.release()
    harness.stop()


def test_a_poller_wedged_on_a_lock_stops_the_watchdog(
    in_process: InProcess, notify: Socket
) -> None:
    assert notify.watchdogs_during(1.0) >= 5
    in_process.wedge.acquire()
    # the bound: 1 s of read timeout + 0.05 s of backoff + 0.3 s of slack
    wait_for(lambda: not probes.live(in_process.liveness)[0], 10, "overdue")
    ok, why = probes.live(in_process.liveness)
    assert not ok
    assert why.startswith("overdue: poll-wg silent for")
    notify.watchdogs_during(0.3)  # one sent by a pass that began before the verdict
    assert notify.watchdogs_during(1.5) == 0
    in_process.wedge.release()
    wait_for(lambda: probes.live(in_process.liveness)[0], 10, "live again")
    assert notify.watchdogs_during(1.0) >= 5


def test_the_watchdog_goes_on_while_the_endpoint_answers_500(
    service: LocalService, in_process: InProcess, notify: Socket
) -> None:
    service.faults.add("PollForTask", error="InternalServiceError", times=None)
    service.faults.add(
        "ReportTaskRunnerHeartbeat", error="InternalServiceError", times=None
    )
    wait_for(lambda: len(service.calls("PollForTask")) >= 20, 10, "failed polls")
    # over three bounds of 1.35 s: every error and every backoff is an iteration
    assert notify.watchdogs_during(4.5) >= 30
    assert probes.live(in_process.liveness)[0]
    assert all(c.error for c in service.calls("PollForTask")[-10:])
