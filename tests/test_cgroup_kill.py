"""The cgroup kill on its own, on a cgroup of the test's own; the sweep at a
runner's start of what gone runners left empty; the journal's cgroup column.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from runner.supervisor import kill, proctable
from runner.supervisor.cgroup import AttemptCgroup
from runner.task.journal import Journal
from tests.support.cgroups import NEEDS_CGROUP2, UNIFIED, Spawn
from tests.support.waiting import wait_for

pytestmark = NEEDS_CGROUP2

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
    began = time.monotonic()
    found, after_term, survivors = kill.kill_cgroup(test_cgroup, 0.3)
    assert time.monotonic() - began < 0.3 + kill.REAP_TIMEOUT_S  # the bound
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
    began = time.monotonic()
    found, after_term, survivors = kill.kill_cgroup(test_cgroup, 30.0, stop)
    assert time.monotonic() - began < 30.0  # the grace is not waited out
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
