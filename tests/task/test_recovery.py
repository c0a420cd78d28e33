"""Recovery at start against the local service over real HTTP and real process
trees: what the last run left is killed, each journaled status is sent once, a
task the service forgot is dropped, a failed send waits for the next start, and
nothing that is not the attempt's is ever signalled (``supervisor.kill_marked``).

The test process is not a subreaper: a double-forked orphan of a killed tree
re-parents to PID 1, which on these machines does not reap, so a zombie whose
parent is not us counts as gone.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import structlog
from structlog.testing import capture_logs

from runner import logs, supervisor
from runner.aws.client import Client, RetryPolicies, RetryPolicy
from runner.localservice import LocalService
from runner.supervisor import MARKER_ENV
from runner.task.journal import Journal
from runner.task.recovery import RESTARTED_ERROR_ID, recover
from runner.taskmodel import FinalStatus, TaskStatus, digest
from runner.wakeup import Wakeable
from tests.support.pipelines import default_object, shell, submit
from tests.support.runners import SCRIPTS
from tests.support.waiting import wait_for

#: The leases these tests take hold for the whole test: a second ``recover()`` must
#: find its task whatever the machine's speed (the ack window is 1.2 s otherwise).
pytestmark = pytest.mark.leases_hold

LOG = structlog.get_logger()
WORKER_GROUP = "wg-recovery"
GRACE = 0.2
#: The statuses' budget for the whole recovery (``Shutdown.status_budget_s``).
BUDGET_S = 5.0
FINISHED = FinalStatus(TaskStatus.FINISHED)


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@pytest.fixture
def new_client(service: LocalService) -> Callable[..., Client]:
    def build(policies: RetryPolicies | None = None) -> Client:
        return Client(
            region="us-east-1",
            endpoint_url=service.endpoint_url,
            stop=Wakeable(),
            abort=Wakeable(),
            policies=policies or RetryPolicies.fast(),
            log=logs.get_logger("test"),
        )

    return build


@pytest.fixture
def client(new_client: Callable[..., Client]) -> Client:
    return new_client()


@pytest.fixture
def lease(dp: Any) -> Callable[[], dict[str, Any]]:
    """A real task, leased from the local service with plain boto3."""

    def take() -> dict[str, Any]:
        objects = [default_object(WORKER_GROUP), shell("Step", "true")]
        submit(dp, objects)
        task: dict[str, Any] = wait_for(
            lambda: dp.poll_for_task(workerGroup=WORKER_GROUP).get("taskObject"),
            what="a task",
        )
        return task

    return take


class Started(list[psutil.Process]):
    """Processes a test started (and the ``Popen`` of each child, to wait for)."""

    def __init__(self) -> None:
        super().__init__()
        self.children: list[subprocess.Popen[Any]] = []


@pytest.fixture
def procs() -> Iterator[Started]:
    """Whatever a test started and left is killed, and its children waited for."""
    started = Started()
    yield started
    for proc in started:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    for child in started.children:
        child.wait(10)  # its status may be reaped already: then it reads 0


def gone(pid: int) -> bool:
    """Dead, or a zombie that its new parent (init) has yet to reap."""
    try:
        proc = psutil.Process(pid)
        return proc.status() == psutil.STATUS_ZOMBIE and proc.ppid() != os.getpid()
    except psutil.NoSuchProcess:
        return True


def marker_of(task: dict[str, Any]) -> str:
    return f"{task['attemptId']}:{digest(task['taskId'])}"


def spawn(
    procs: Started, argv: list[str], marker: str | None
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != MARKER_ENV}
    if marker is not None:
        env[MARKER_ENV] = marker
    child = subprocess.Popen(argv, env=env, start_new_session=True)
    procs.children.append(child)
    procs.append(psutil.Process(child.pid))
    return child


def start_tree(
    procs: Started, tmp_path: Path, marker: str
) -> tuple[int, dict[str, int]]:
    """tests/scripts/tree.py with the marker, TERM-proof: a TERM-ignoring child, a
    setsid grandchild and a double-forked orphan. Its pid and the tree's pids."""
    pid_file = tmp_path / f"tree-{uuid.uuid4().hex}.json"
    argv = [sys.executable, str(SCRIPTS / "tree.py"), str(pid_file), "ignore-term"]
    child = spawn(procs, argv, marker)
    wait_for(pid_file.exists, what="the tree")
    pids: dict[str, int] = json.loads(pid_file.read_text())
    procs.extend(psutil.Process(pid) for pid in pids.values() if pid != child.pid)
    return child.pid, pids


def sleeper(procs: Started, marker: str | None) -> int:
    return spawn(
        procs, [sys.executable, "-c", "import time; time.sleep(60)"], marker
    ).pid


def journal_attempt(
    path: Path, task: dict[str, Any], pid: int | None, status: FinalStatus | None
) -> str:
    """What a run that was then killed with ``kill -9`` left: its run id."""
    journal = Journal.open(path, log=LOG)
    task_id = task["taskId"]
    journal.attempt_opened(task_id, task["attemptId"], path.parent, marker_of(task))
    if pid is not None:
        start = supervisor.start_time(pid)
        assert start is not None
        journal.process_started(task_id, pid, pid, start)
    if status is not None:
        journal.status_pending(task_id, status)
    journal.close()
    return journal.run_id


def events(logged: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logged if e["event"] == name]


# -- recover ---------------------------------------------------------------------


def test_a_tree_left_running_is_killed_and_reported_restarted(
    tmp_path: Path,
    journal_path: Path,
    service: LocalService,
    client: Client,
    lease: Callable[[], dict[str, Any]],
    procs: Started,
) -> None:
    task = lease()
    pid, pids = start_tree(procs, tmp_path, marker_of(task))
    journal_attempt(journal_path, task, pid, None)
    journal = Journal.open(journal_path, log=LOG)
    with capture_logs() as logged:
        recovery = recover(
            journal, client, kill_grace=GRACE, log=LOG, budget_s=BUDGET_S
        )
    assert [name for name, p in pids.items() if not gone(p)] == []
    assert (recovery.leftovers, recovery.processes_found, recovery.restarted) == (
        1,
        5,
        1,
    )
    assert (recovery.sent, recovery.processes_survived) == (1, 0)
    assert recovery.blocked_attempts == frozenset()
    (call,) = service.calls("SetTaskStatus")
    assert call.request["taskId"] == task["taskId"]
    assert call.request["taskStatus"] == "FAILED"
    assert call.request["errorId"] == RESTARTED_ERROR_ID
    assert "restarted" in call.request["errorMessage"]
    assert journal.entries() == []
    (sent,) = events(logged, "journal_status_sent")
    assert sent["task_id"] == digest(task["taskId"])
    assert not any(task["taskId"] in str(e) for e in logged)  # never the full id
    journal.close()


def test_a_pending_status_is_sent_exactly_once(
    journal_path: Path,
    service: LocalService,
    client: Client,
    dp: Any,
    lease: Callable[[], dict[str, Any]],
    procs: Started,
) -> None:
    task = lease()
    ended = spawn(procs, [sys.executable, "-c", "pass"], marker_of(task))
    journal_attempt(journal_path, task, ended.pid, FINISHED)
    ended.wait(10)
    for _restart in range(2):
        journal = Journal.open(journal_path, log=LOG)
        recover(journal, client, kill_grace=GRACE, log=LOG, budget_s=BUDGET_S)
        assert journal.entries() == []
        journal.close()
    (call,) = service.calls("SetTaskStatus")
    assert call.request == {"taskId": task["taskId"], "taskStatus": "FINISHED"}
    attempt = dp.describe_objects(
        pipelineId=task["pipelineId"], objectIds=[task["attemptId"]]
    )["pipelineObjects"][0]
    fields = {f["key"]: f.get("stringValue") for f in attempt["fields"]}
    assert fields["@status"] == "FINISHED"


def test_a_task_the_service_forgot_is_dropped_with_one_line(
    journal_path: Path,
    service: LocalService,
    client: Client,
    dp: Any,
    lease: Callable[[], dict[str, Any]],
) -> None:
    task = lease()
    dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")  # moved on
    journal_attempt(journal_path, task, None, FINISHED)
    stale = Journal.open(journal_path, log=LOG)
    stale.status_pending("no-such-task", FinalStatus.failed("Boom", "it broke"))
    stale.close()
    journal = Journal.open(journal_path, log=LOG)
    with capture_logs() as logged:
        recovery = recover(
            journal, client, kill_grace=GRACE, log=LOG, budget_s=BUDGET_S
        )
    assert (recovery.dropped, recovery.sent, recovery.unsent) == (2, 0, 0)
    dropped = events(logged, "journal_status_dropped")
    assert sorted(e["task_id"] for e in dropped) == sorted(
        [digest(task["taskId"]), digest("no-such-task")]
    )
    assert {e["code"] for e in dropped} == {"TaskNotFoundException"}
    assert len(service.calls("SetTaskStatus")) == 3  # boto3's, then one try each
    assert journal.entries() == []
    journal.close()


def test_a_status_the_service_refuses_stays_for_the_next_start(
    tmp_path: Path,
    journal_path: Path,
    service: LocalService,
    new_client: Callable[..., Client],
    lease: Callable[[], dict[str, Any]],
    procs: Started,
) -> None:
    task = lease()
    pid, pids = start_tree(procs, tmp_path, marker_of(task))
    first_run = journal_attempt(journal_path, task, pid, None)
    service.faults.add("SetTaskStatus", error="InternalServiceError", times=None)
    # Waits far longer than the budget: only the budget can end the retries.
    slow = RetryPolicy(
        attempts=1000, budget_s=60.0, wait_initial_s=0.05, wait_max_s=0.1
    )
    journal = Journal.open(journal_path, log=LOG)
    started = time.monotonic()
    with capture_logs() as logged:
        recovery = recover(
            journal,
            new_client(RetryPolicies(*[slow] * 6)),
            kill_grace=GRACE,
            log=LOG,
            budget_s=2.0,  # room for two tries on a loaded machine
        )
    assert time.monotonic() - started < 10.0
    assert (recovery.restarted, recovery.unsent, recovery.sent) == (1, 1, 0)
    assert all(gone(p) for p in pids.values())
    (not_sent,) = events(logged, "journal_status_not_sent")
    assert not_sent["code"] == "InternalServiceError"
    tries = len(service.calls("SetTaskStatus"))
    assert tries >= 2  # retried within the budget
    (left,) = journal.leftovers()
    assert left.run_id == first_run
    assert left.status is not None
    assert left.status.error_id == RESTARTED_ERROR_ID  # journaled before the send
    journal.close()

    service.faults.clear()
    journal = Journal.open(journal_path, log=LOG)
    recovery = recover(
        journal, new_client(), kill_grace=GRACE, log=LOG, budget_s=BUDGET_S
    )
    assert (recovery.sent, recovery.restarted, recovery.processes_found) == (1, 0, 0)
    calls = service.calls("SetTaskStatus")
    assert len(calls) == tries + 1
    assert calls[-1].request["errorId"] == RESTARTED_ERROR_ID
    assert journal.entries() == []
    journal.close()


def test_no_status_is_tried_once_the_budget_is_spent(
    journal_path: Path, service: LocalService, client: Client
) -> None:
    """One budget bounds the whole recovery: past it, the rows wait for the next
    start (before, each still got one try: 8 stalled tries held a start 201 s)."""
    old = Journal.open(journal_path, log=LOG)
    for n in range(3):
        old.status_pending(f"task-{n}", FINISHED)
    old.close()
    journal = Journal.open(journal_path, log=LOG)
    recovery = recover(journal, client, kill_grace=GRACE, log=LOG, budget_s=0)
    assert recovery.unsent == 3
    assert service.calls("SetTaskStatus") == []
    assert len(journal.leftovers()) == 3
    journal.close()


def test_a_stop_ends_the_recovery_and_leaves_the_rows(
    journal_path: Path, service: LocalService, new_client: Callable[..., Client]
) -> None:
    old = Journal.open(journal_path, log=LOG)
    for n in range(3):
        old.status_pending(f"task-{n}", FINISHED)
    old.close()
    stop = Wakeable()
    service.faults.add("SetTaskStatus", error="InternalServiceError", times=None)
    journal = Journal.open(journal_path, log=LOG)
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    slow = RetryPolicy(
        attempts=1000, budget_s=60.0, wait_initial_s=0.05, wait_max_s=0.1
    )
    client = new_client(RetryPolicies(*[slow] * 6))
    with capture_logs() as logged:
        recovery = recover(
            journal, client, kill_grace=GRACE, log=LOG, budget_s=60, stop=stop
        )
    assert time.monotonic() - started < 5.0
    assert recovery.unsent == 3
    assert len(journal.leftovers()) == 3
    (line,) = events(logged, "journal_recovered")
    assert line["stopped"] is True
    journal.close()


def test_an_attempt_that_never_started_a_process_is_closed_without_status(
    journal_path: Path,
    service: LocalService,
    client: Client,
    lease: Callable[[], dict[str, Any]],
) -> None:
    journal_attempt(journal_path, lease(), None, None)
    journal = Journal.open(journal_path, log=LOG)
    recovery = recover(journal, client, kill_grace=GRACE, log=LOG, budget_s=BUDGET_S)
    assert (recovery.closed, recovery.restarted, recovery.sent) == (1, 0, 0)
    assert service.calls("SetTaskStatus") == []
    assert journal.entries() == []
    journal.close()


def test_a_row_of_another_boot_kills_nothing_and_reports_restarted(
    journal_path: Path,
    service: LocalService,
    client: Client,
    lease: Callable[[], dict[str, Any]],
    procs: Started,
) -> None:
    task = lease()
    pid = sleeper(procs, marker_of(task))  # the same marker, but "another boot"
    journal_attempt(journal_path, task, pid, None)
    with sqlite3.connect(journal_path) as db:
        db.execute("UPDATE attempts SET boot_id = 'an-earlier-boot'")
    db.close()
    journal = Journal.open(journal_path, log=LOG)
    recovery = recover(journal, client, kill_grace=GRACE, log=LOG, budget_s=BUDGET_S)
    assert not gone(pid)
    assert (recovery.processes_found, recovery.restarted, recovery.sent) == (0, 1, 1)
    (call,) = service.calls("SetTaskStatus")
    assert call.request["errorId"] == RESTARTED_ERROR_ID
    journal.close()


def test_nothing_to_recover_calls_nothing(
    journal_path: Path, service: LocalService, client: Client
) -> None:
    journal = Journal.open(journal_path, log=LOG)
    journal.attempt_opened("mine", "@A", journal_path.parent, "@A:x")  # this run's
    recovery = recover(journal, client, kill_grace=GRACE, log=LOG, budget_s=BUDGET_S)
    assert recovery.leftovers == 0
    assert service.calls("SetTaskStatus") == []
    assert len(journal.entries()) == 1
    journal.close()


# -- supervisor.kill_marked ---------------------------------------------------------


def kill(marker: str, **kwargs: Any) -> supervisor.Sweep:
    args: dict[str, Any] = {
        "boot_id": supervisor.boot_id(),
        "not_before": time.time() - 30,
        "grace": GRACE,
        "log": LOG,
    }
    return supervisor.kill_marked(marker, **(args | kwargs))


def test_boot_id_is_this_boots() -> None:
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert supervisor.boot_id() == boot
    assert len(boot) == 36


def test_kill_marked_kills_the_marked_tree(tmp_path: Path, procs: Started) -> None:
    marker = f"test-{uuid.uuid4().hex}"
    other = sleeper(procs, f"test-{uuid.uuid4().hex}")
    _, pids = start_tree(procs, tmp_path, marker)
    sweep = kill(marker)
    assert sweep == supervisor.Sweep(found=5, survivors=0)
    assert all(gone(pid) for pid in pids.values())
    assert not gone(other)  # another attempt's marker


def test_kill_marked_spares_another_boots_processes(
    procs: Started,
) -> None:
    marker = f"test-{uuid.uuid4().hex}"
    pid = sleeper(procs, marker)
    assert kill(marker, boot_id="not-this-boot") == supervisor.Sweep(0, 0)
    assert not gone(pid)
    assert kill(marker) == supervisor.Sweep(1, 0)  # the same process, this boot
    assert gone(pid)


def test_kill_marked_spares_a_marked_process_older_than_the_attempt(
    procs: Started,
) -> None:
    marker = f"test-{uuid.uuid4().hex}"
    pid = sleeper(procs, marker)
    assert kill(marker, not_before=time.time() + 60) == supervisor.Sweep(0, 0)
    assert not gone(pid)
    assert kill(marker) == supervisor.Sweep(1, 0)
    assert gone(pid)


FORKER = (
    "import subprocess, sys, time\n"
    "sys.stdin.readline()\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def test_kill_marked_spares_the_children_of_an_older_marked_process(
    procs: Started,
) -> None:
    """Another runner's run of the same attempt started before ours: its children,
    born after ours was journaled, carry the marker too, and are not ours."""
    marker = f"test-{uuid.uuid4().hex}"
    env = {**os.environ, MARKER_ENV: marker}
    older = subprocess.Popen(
        [sys.executable, "-c", FORKER],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    procs.children.append(older)
    procs.append(psutil.Process(older.pid))
    created = psutil.Process(older.pid).create_time()
    wait_for(lambda: time.time() - created > 2.6, what="the process to age")
    assert older.stdin is not None
    assert older.stdout is not None
    older.stdin.write("go\n")
    older.stdin.flush()
    child = int(older.stdout.readline())
    procs.append(psutil.Process(child))
    not_before = time.time() - 0.5  # after `older` (beyond the slack), before `child`
    ours = sleeper(procs, marker)
    assert kill(marker, not_before=not_before) == supervisor.Sweep(1, 0)
    assert gone(ours)
    assert not gone(older.pid)
    assert not gone(child)
    older.stdin.close()
    older.stdout.close()


def test_kill_marked_finds_the_journaled_pid_only_with_its_start_time(
    procs: Started,
) -> None:
    marker = f"test-{uuid.uuid4().hex}"
    pid = sleeper(procs, None)  # a process that dropped the marker
    start = supervisor.start_time(pid)
    assert start is not None
    reused = kill(marker, pid=pid, proc_start=start - 100)  # as if the pid was reused
    assert reused == supervisor.Sweep(0, 0)
    assert not gone(pid)
    assert kill(marker, pid=pid, proc_start=start) == supervisor.Sweep(1, 0)
    assert gone(pid)


#: A runner stand-in: opens the journal, writes the attempt's row (the tree's pid
#: in it), says so, and stays alive until its stdin closes.
LIVE_RUNNER = """
import sys
from pathlib import Path
import structlog
from runner import supervisor
from runner.task.journal import Journal
path, task_id, attempt_id, marker, pid = sys.argv[1:]
journal = Journal.open(Path(path), log=structlog.get_logger())
journal.attempt_opened(task_id, attempt_id, Path(path).parent, marker)
journal.process_started(task_id, int(pid), int(pid), supervisor.start_time(int(pid)))
print("written", flush=True)
sys.stdin.read()
"""


def test_recovery_never_touches_an_attempt_whose_runner_is_alive(
    tmp_path: Path,
    journal_path: Path,
    service: LocalService,
    client: Client,
    lease: Callable[[], dict[str, Any]],
    procs: Started,
) -> None:
    task = lease()
    tree = sleeper(procs, marker_of(task))
    args = [journal_path, task["taskId"], task["attemptId"], marker_of(task), tree]
    other = subprocess.Popen(
        [sys.executable, "-c", LIVE_RUNNER, *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None
        lines = iter(other.stdout.readline, "")
        assert any(line.strip() == "written" for line in lines)
        journal = Journal.open(journal_path, log=LOG)
        with capture_logs() as logged:
            recovery = recover(
                journal, client, kill_grace=GRACE, log=LOG, budget_s=BUDGET_S
            )
        assert psutil.Process(tree).status() != psutil.STATUS_ZOMBIE  # not killed
        assert service.calls("SetTaskStatus") == []
        assert recovery.blocks(task["attemptId"])
        assert [e["runner_pid"] for e in events(logged, "journal_row_live_runner")] == [
            other.pid
        ]
        (entry,) = journal.entries()  # left whole for its runner
        assert (entry.runner_pid, entry.pid) == (other.pid, tree)
    finally:
        assert other.stdin is not None
        other.stdin.close()
        other.wait(10)
        if other.stdout is not None:
            other.stdout.close()
