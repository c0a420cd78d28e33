"""Each attempt in a cgroup of its own, end to end, on this machine's real cgroup2
(/sys/fs/cgroup/unified, writable as root, PID 1 not systemd).

A task leaves ``setsid env -i sleep 1000 &``: an orphan in a session of its own,
without the marker in its environment, that no walk of the process table can tie
to the attempt. It must die at the task's normal end, at a cancel, at
``attemptTimeout`` and after a ``kill -9`` of the runner and a restart, and no
attempt cgroup may be left behind. Then the fallback, forced by a read-only
cgroup2 mount (or a systemd that owns the runner's cgroup) in a mount namespace of
the runner's own: the start-up line names it, and the orphan still dies at the
task's end while one attempt runs (it is the runner's adopted child).
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import structlog

from runner.localservice import LocalService
from runner.supervisor import kill, proctable
from runner.supervisor.cgroup import AttemptCgroup
from runner.task.journal import Journal
from tests.conftest import (
    REPO,
    RunnerProcess,
    default_object,
    runner_command,
    shell,
    submit,
    wait_for,
)
from tests.test_crash import HarnessedRunner
from tests.test_daemon_stops import instance_of
from tests.users import NOBODY, folder_for

UNIFIED = Path("/sys/fs/cgroup/unified")
Spawn = Callable[..., RunnerProcess]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not (UNIFIED / "cgroup.procs").exists(),
    reason="the cgroup tests need root and cgroup2 at /sys/fs/cgroup/unified",
)


def orphan_task(tmp_path: Path, then: str = "true") -> tuple[str, Path, Path]:
    """A command that leaves the orphan (its pid in one file, the task's own
    cgroup in another), then runs ``then``."""
    pid_file, cgroup_file = tmp_path / "orphan.pid", tmp_path / "task.cgroup"
    command = (
        f"cat /proc/self/cgroup > {cgroup_file}; "
        f"setsid env -i sleep 1000 & echo $! > {pid_file}.tmp; "
        f"mv {pid_file}.tmp {pid_file}; {then}"
    )
    return command, pid_file, cgroup_file


def orphan(pid_file: Path) -> psutil.Process:
    """The orphan, once it runs, checked to be the ``sleep 1000`` without the
    marker in its environment, in a session of its own."""
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), 15, "pid"))
    proc = psutil.Process(pid)
    wait_for(lambda: proc.cmdline() == ["sleep", "1000"], 10, "the orphan's exec")
    assert proc.environ() == {}
    assert os.getsid(pid) == pid
    return proc


def gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def attempt_cgroups(group: Path) -> list[str]:
    return sorted(p.name for p in group.iterdir() if p.name.startswith("task-"))


def started_in_cgroup(runner: RunnerProcess | HarnessedRunner) -> Path:
    """The runner's group, from its start-up line, which names the cgroup."""
    started = runner.wait_event("worker_started")
    assert started["containment"] == "cgroup", started
    assert "PID 1 is not systemd" in started["containment_reason"]
    group = Path(started["cgroup"])
    assert group.parent == UNIFIED  # the tests run in the root cgroup
    runner_pid = group.name.split("-")[2]  # dp-runner-<pid>-<random>
    assert runner_pid in (group / "runner" / "cgroup.procs").read_text().split()
    return group


def ran_in(cgroup_file: Path, group: Path) -> None:
    """The task's shell ran in an attempt cgroup of the runner's group."""
    line = wait_for(lambda: cgroup_file.exists() and cgroup_file.read_text(), 10, "cg")
    (unified,) = [x for x in line.splitlines() if x.startswith("0::")]
    path = Path(unified[3:])
    assert path.parent.name == group.name
    assert path.name.startswith("task-")


def until(go: Path) -> str:
    """Shell that waits for the test to create ``go``: the task ends when told."""
    return f"while [ ! -e {go} ]; do sleep 0.05; done"


def stopped(runner: RunnerProcess, group: Path) -> None:
    """A SIGTERM ends the runner, and its own group goes with it."""
    runner.signal()
    assert runner.wait_exit() == 0
    assert not group.exists()


def test_the_orphan_dies_at_the_tasks_normal_end(
    dp: Any, spawn_runner: Spawn, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    command, pid_file, cgroup_file = orphan_task(tmp_path, then=until(go))
    submit(dp, [default_object(), shell("Orphan", command, maximumRetries="0")])
    runner = spawn_runner()
    group = started_in_cgroup(runner)
    left = orphan(pid_file)
    ran_in(cgroup_file, group)
    go.touch()
    finished = runner.wait_event("task_finished")
    assert finished["outcome"] == "finished"
    assert gone(left)
    assert attempt_cgroups(group) == []
    stopped(runner, group)


def test_the_orphan_dies_at_a_cancel(
    dp: Any, spawn_runner: Spawn, tmp_path: Path
) -> None:
    command, pid_file, cgroup_file = orphan_task(tmp_path, then="sleep 1000")
    pipeline_id = submit(
        dp, [default_object(), shell("Orphan", command, maximumRetries="0")]
    )
    runner = spawn_runner()
    group = started_in_cgroup(runner)
    left = orphan(pid_file)
    ran_in(cgroup_file, group)
    assert len(attempt_cgroups(group)) == 1
    dp.set_status(
        pipelineId=pipeline_id,
        objectIds=[instance_of(dp, pipeline_id, "Orphan")],
        status="TRY_CANCEL",
    )
    assert runner.wait_event("task_finished")["outcome"] == "canceled"
    assert gone(left)
    assert attempt_cgroups(group) == []
    stopped(runner, group)


def test_the_orphan_dies_at_attempt_timeout(
    dp: Any, spawn_runner: Spawn, tmp_path: Path
) -> None:
    command, pid_file, _ = orphan_task(tmp_path, then="sleep 1000")
    timeout = {"attemptTimeout": "2 seconds", "maximumRetries": "0"}
    submit(dp, [default_object(), shell("Orphan", command, **timeout)])
    runner = spawn_runner()
    group = started_in_cgroup(runner)
    left = orphan(pid_file)
    finished = runner.wait_event("task_finished")
    assert finished["error_id"] == "AttemptTimeout"
    assert gone(left)
    assert attempt_cgroups(group) == []
    stopped(runner, group)


@pytest.fixture
def harnessed(service: LocalService, tmp_path: Path) -> Iterator[list[HarnessedRunner]]:
    started: list[HarnessedRunner] = []
    yield started
    for runner in started:
        runner.stop()


@pytest.mark.parametrize("run_as", [(), ("--run-as", "nobody")])
def test_the_orphan_dies_after_a_kill_9_of_the_runner_and_a_restart(
    run_as: tuple[str, ...],
    service: LocalService,
    dp: Any,
    tmp_path: Path,
    harnessed: list[HarnessedRunner],
    tmp_folders: list[Path],
) -> None:
    files = folder_for(NOBODY, tmp_folders)  # a run_as task can write there too
    command, pid_file, cgroup_file = orphan_task(files, then="sleep 1000")
    submit(dp, [default_object(), shell("Orphan", command, maximumRetries="0")])
    work = ("--work-dir", str(folder_for(0, tmp_folders))) if run_as else ()
    runner = HarnessedRunner(service, tmp_path, *run_as, *work)
    harnessed.append(runner)
    old_group = started_in_cgroup(runner)
    left = orphan(pid_file)
    assert left.uids().real == (NOBODY if run_as else 0)
    ran_in(cgroup_file, old_group)

    runner.kill9_and_restart()
    recovered = runner.wait_event("journal_recovered", count=2)  # the restart's
    assert recovered["processes_found"] >= 2  # the task's shell and the orphan
    assert gone(left)
    assert not old_group.exists()  # its attempt's cgroup, then the dead runner's
    restarted = runner.wait_event("worker_started", count=2)
    new_group = Path(restarted["cgroup"])
    assert new_group != old_group
    runner.process.send_signal(signal.SIGTERM)  # the harness passes it on
    assert runner.process.wait(30) == 0
    assert not new_group.exists()


# ------------------------------------------------------------------ the fallback


def namespaced_runner(
    service: LocalService, tmp_path: Path, setup: str, *args: str
) -> RunnerProcess:
    """``dp-runner run`` in a mount namespace of its own (``unshare -m``, private
    propagation) where the shell ``setup`` ran first."""
    work_dir, log_path = tmp_path / "work", tmp_path / "runner.log"
    command = runner_command(
        service.endpoint_url, work_dir, "--worker-group", "wg", *args
    )
    script = f'{setup} && exec "$@"'
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private",
             "sh", "-c", script, "sh", *command],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=REPO,
        )  # fmt: skip
    return RunnerProcess(process, log_path, work_dir)


@pytest.fixture
def namespaced(
    service: LocalService, tmp_path: Path
) -> Iterator[Callable[..., RunnerProcess]]:
    started: list[RunnerProcess] = []

    def spawn(setup: str, *args: str) -> RunnerProcess:
        runner = namespaced_runner(service, tmp_path, setup, *args)
        started.append(runner)
        return runner

    yield spawn
    for runner in started:
        if runner.process.poll() is None:
            runner.process.kill()
        runner.process.wait(10)


READ_ONLY_CGROUP2 = (
    f"mount --bind {UNIFIED} {UNIFIED} && mount -o remount,bind,ro {UNIFIED}"
)


def test_the_fallback_is_named_and_still_kills_the_orphan_at_the_tasks_end(
    dp: Any, namespaced: Callable[..., RunnerProcess], tmp_path: Path
) -> None:
    assert shutil.which("unshare") is not None
    go = tmp_path / "go"
    command, pid_file, cgroup_file = orphan_task(tmp_path, then=until(go))
    submit(dp, [default_object(), shell("Orphan", command, maximumRetries="0")])
    runner = namespaced(READ_ONLY_CGROUP2)
    started = runner.wait_event("worker_started")
    assert started["containment"] == "process-tree"
    assert started["containment_reason"] == f"cgroup2 is mounted read-only at {UNIFIED}"
    assert "cgroup" not in started
    left = orphan(pid_file)
    assert "task-" not in cgroup_file.read_text()
    go.touch()
    finished = runner.wait_event("task_finished")
    assert finished["outcome"] == "finished"
    wait_for(lambda: gone(left), 5, "the orphan's end")  # found as the adopted child


def test_the_fallback_tells_two_attempts_orphans_apart_by_their_sessions(
    dp: Any, namespaced: Callable[..., RunnerProcess], tmp_path: Path
) -> None:
    """Two attempts at once, each leaving ``env -i sleep 1000`` (no marker) in
    its own session: at the end of one, only its orphan dies."""
    files = {}
    for name in ("a", "b"):
        go, pid_file = tmp_path / f"go-{name}", tmp_path / f"{name}.pid"
        command = (
            f"env -i sleep 1000 & echo $! > {pid_file}.tmp; "
            f"mv {pid_file}.tmp {pid_file}; {until(go)}"
        )
        submit(dp, [default_object(), shell("Orphan", command, maximumRetries="0")])
        files[name] = (go, pid_file)
    runner = namespaced(READ_ONLY_CGROUP2, "--max-tasks", "2")
    assert runner.wait_event("worker_started")["containment"] == "process-tree"
    orphans = {}
    for name, (_, pid_file) in files.items():
        pid = int(wait_for(lambda f=pid_file: f.exists() and f.read_text(), 15, name))
        orphans[name] = psutil.Process(pid)
        wait_for(lambda p=orphans[name]: p.cmdline() == ["sleep", "1000"], 10, "exec")
        assert orphans[name].environ() == {}
    files["a"][0].touch()
    wait_for(lambda: len(runner.events("task_finished")) == 1, 15, "a's end")
    assert gone(orphans["a"])
    assert not gone(orphans["b"])
    files["b"][0].touch()
    wait_for(lambda: len(runner.events("task_finished")) == 2, 15, "b's end")
    assert gone(orphans["b"])


def test_under_a_systemd_that_owns_its_cgroup_the_runner_writes_nothing_there(
    dp: Any, namespaced: Callable[..., RunnerProcess]
) -> None:
    """PID 1 seems to be systemd (/run/systemd/system, in the namespace only) and
    the runner's cgroup carries no delegation mark: it falls back and says so."""
    runner = namespaced("mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system")
    started = runner.wait_event("worker_started")
    assert started["containment"] == "process-tree"
    assert started["containment_reason"].startswith("systemd owns the runner's cgroup")
    runner.signal()
    assert runner.wait_exit() == 0
    mine = f"dp-runner-{runner.process.pid}-"
    assert not [p for p in UNIFIED.iterdir() if p.name.startswith(mine)]


# ------------------------------------------------------------ the kill, alone


@pytest.fixture
def test_cgroup() -> Iterator[AttemptCgroup]:
    """A cgroup for this test only, named by the test process's pid (never like a
    runner's group, which a starting runner sweeps when it is empty); removed at
    the end."""
    group = UNIFIED / f"dp-runner-test-{os.getpid()}"
    path = group / f"task-{threading.get_native_id():x}-1"
    path.mkdir(parents=True)
    yield AttemptCgroup(path)
    for pid in AttemptCgroup(path).pids():
        os.kill(pid, 9)
    wait_for(lambda: not AttemptCgroup(path).pids(), 5, "the test cgroup empty")
    for leftover in (path, group):
        if leftover.exists():
            leftover.rmdir()


@pytest.fixture
def owned() -> Iterator[set[int]]:
    """Pids registered as a Supervisor's children: the kill never reaps them."""
    pids: set[int] = set()
    yield pids
    with proctable.OWNED_LOCK:
        proctable.OWNED.difference_update(pids)


def start_in(
    group: AttemptCgroup, script: str, owned: set[int]
) -> subprocess.Popen[bytes]:
    """A shell that puts itself in ``group`` and then runs ``script``; registered
    as a Supervisor's child is, so that its Popen reaps it."""
    procs = group.path / "cgroup.procs"
    with proctable.OWNED_LOCK:
        child = subprocess.Popen(
            ["sh", "-c", f"echo $$ > {procs}; {script}"], start_new_session=True
        )
        proctable.OWNED.add(child.pid)
    owned.add(child.pid)
    wait_for(lambda: child.pid in group.pids(), 5, "the child in its cgroup")
    return child


def test_a_tree_that_ignores_sigterm_is_killed_whole_after_the_grace(
    test_cgroup: AttemptCgroup, owned: set[int]
) -> None:
    child = start_in(
        test_cgroup,
        "trap '' TERM; (trap '' TERM; setsid sleep 1000 & sleep 1000) & sleep 1000",
        owned,
    )
    wait_for(lambda: len(test_cgroup.pids()) >= 4, 5, "the tree")
    found, after_term, survivors = kill.kill_cgroup(test_cgroup, 0.3)
    assert found >= 4
    assert after_term >= 4  # TERM was ignored: the KILL did it
    assert survivors == 0
    assert test_cgroup.pids() == []
    assert not test_cgroup.populated()
    assert child.wait(5) == -9


def test_a_tree_that_obeys_sigterm_needs_no_kill(
    test_cgroup: AttemptCgroup, owned: set[int]
) -> None:
    child = start_in(test_cgroup, "sleep 1000 & exec sleep 1000", owned)
    wait_for(lambda: len(test_cgroup.pids()) == 2, 5, "the tree")
    stop = threading.Event()
    found, after_term, survivors = kill.kill_cgroup(test_cgroup, 30.0, stop)
    assert (found, after_term, survivors) == (2, 0, 0)
    assert child.wait(5) == -15
    assert test_cgroup.remove()
    assert not test_cgroup.path.exists()


# ------------------------------------------------------------ the journal


OLD_SCHEMA = """
CREATE TABLE attempts (
    task_id TEXT PRIMARY KEY, attempt_id TEXT NOT NULL, folder TEXT, marker TEXT,
    pid INTEGER, pgid INTEGER, proc_start REAL, boot_id TEXT NOT NULL,
    run_id TEXT NOT NULL, opened_at REAL NOT NULL, status TEXT
)
"""


def test_a_journal_from_before_cgroups_gains_the_column_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.db"
    with sqlite3.connect(path) as db:
        db.execute(OLD_SCHEMA)
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO attempts (task_id, attempt_id, folder, marker, boot_id,"
            " run_id, opened_at) VALUES ('old', 'a0', '/w/a0', 'm0', 'b', 'r', 1.0)"
        )
    db.close()
    journal = Journal.open(path, log=structlog.get_logger())
    (old,) = journal.leftovers()
    assert (old.attempt_id, old.cgroup) == ("a0", None)
    journal.attempt_opened("new", "a1", tmp_path / "a1", "m1")
    journal.cgroup_opened("new", "/sys/fs/cgroup/unified/dp-runner-1-2/task-ab-1")
    cgroups = {e.attempt_id: e.cgroup for e in journal.entries()}
    assert cgroups == {
        "a0": None,
        "a1": "/sys/fs/cgroup/unified/dp-runner-1-2/task-ab-1",
    }
    with pytest.raises(LookupError):
        journal.cgroup_opened("never-opened", "/x")
    journal.close()


# ------------------------------------------------------------ the sweep at start


@pytest.fixture
def dead_runners_group(owned: set[int]) -> Iterator[Path]:
    """What a runner killed with ``kill -9`` leaves: its group, its empty leaf, an
    empty attempt cgroup and one that a process still holds (the journal's to
    recover). Named like a runner's, with a pid no runner has here."""
    group = UNIFIED / f"dp-runner-4194305-{os.getpid() & 0xFFFFFFFF:08x}"
    for name in ("runner", "task-0123456789ab-1", "task-0123456789ab-2"):
        (group / name).mkdir(parents=True)
    held = AttemptCgroup(group / "task-0123456789ab-2")
    child = start_in(held, "exec sleep 1000", owned)
    yield group
    child.kill()
    child.wait(5)
    wait_for(lambda: not held.populated(), 5, "the held cgroup empty")
    for path in (*group.glob("task-*"), group / "runner", group):
        if path.exists():
            path.rmdir()


def test_a_start_removes_what_a_gone_runner_left_empty_and_nothing_else(
    spawn_runner: Spawn, dead_runners_group: Path
) -> None:
    group = dead_runners_group
    made = group.stat().st_ctime
    # a group younger than a start takes could be a runner starting: left alone
    young = spawn_runner()
    young.wait_event("worker_started")
    assert (group / "runner").exists()
    young.signal()
    assert young.wait_exit() == 0
    wait_for(lambda: time.time() - made > 11, 15, "the group to age")
    old = spawn_runner()
    old.wait_event("worker_started")
    old.signal()
    assert old.wait_exit() == 0
    assert sorted(p.name for p in group.iterdir() if p.is_dir()) == [
        "task-0123456789ab-2"  # a process is still in it
    ]


# ------------------------------------------------------------ who can leave


@pytest.mark.parametrize(
    ("run_as", "expected"), [((), "moved"), (("--run-as", "nobody"), "stayed")]
)
def test_only_run_as_keeps_a_task_from_moving_itself_out_of_its_cgroup(
    run_as: tuple[str, ...],
    expected: str,
    dp: Any,
    spawn_runner_as: Callable[..., RunnerProcess],
    tmp_folders: list[Path],
) -> None:
    """A task of the runner's own user can write its pid into the runner's leaf
    (the docs say so); a ``run_as`` task cannot write the runner's cgroup files."""
    out = folder_for(NOBODY, tmp_folders) / "moved"
    command = (
        "cg=$(sed -n 's/^0:://p' /proc/self/cgroup); "
        f'if echo $$ > "{UNIFIED}${{cg%/*}}/runner/cgroup.procs"; '
        f"then echo moved; else echo stayed; fi > {out}; "
        f"sed -n 's/^0:://p' /proc/self/cgroup >> {out}"
    )
    submit(dp, [default_object(), shell("Escape", command, maximumRetries="0")])
    runner = spawn_runner_as(0, *run_as)
    group = started_in_cgroup(runner)
    assert runner.wait_event("task_finished")["outcome"] == "finished"
    answer, now_in = out.read_text().split()
    assert answer == expected
    left_to = "runner" if expected == "moved" else "task-"
    assert Path(now_in).name.startswith(left_to)
    assert Path(now_in).parent.name == group.name
    stopped(runner, group)
