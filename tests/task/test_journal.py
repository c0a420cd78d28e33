"""The crash journal on a real SQLite file: rows round-trip, runs are told apart,
rows survive a ``kill -9`` of the writer, the files are private, and threads
writing at once lose nothing."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import structlog

from runner.errors import ConfigError
from runner.task.journal import Journal
from runner.task.journalfile import SCHEMA_VERSION, JournalEntry
from runner.taskmodel import FinalStatus, TaskStatus, digest
from tests.support.runners import REPO

LOG = structlog.get_logger()
#: Task ids are about 900 characters long in AWS.
TASK_ID = "task-" + "x" * 900
FAILED = FinalStatus.failed("Boom", "it broke\nbadly", "Traceback: ...")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@pytest.fixture
def journal(path: Path) -> Iterator[Journal]:
    opened = Journal.open(path, log=LOG)
    yield opened
    opened.close()


def this_boot() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def write_attempt(journal: Journal, task_id: str, pid: int = 4242) -> None:
    journal.attempt_opened(task_id, "@Step_1", Path("/w/attempts/a1"), "@Step_1:abc")
    journal.process_started(task_id, pid, pid, 1700000000.25)


def test_rows_round_trip_from_opened_to_closed(journal: Journal) -> None:
    before = time.time()
    journal.attempt_opened(TASK_ID, "@Step_1", Path("/w/a/1"), "@Step_1:d")
    (opened,) = journal.entries()
    assert (opened.pid, opened.pgid, opened.proc_start, opened.status) == (
        None,
        None,
        None,
        None,
    )
    journal.process_started(TASK_ID, 4242, 4242, 1700000000.25)
    journal.status_pending(TASK_ID, FAILED)
    (entry,) = journal.entries()
    assert entry == JournalEntry(
        task_id=TASK_ID,
        attempt_id="@Step_1",
        folder=Path("/w/a/1"),
        marker="@Step_1:d",
        pid=4242,
        pgid=4242,
        proc_start=1700000000.25,
        boot_id=this_boot(),
        run_id=journal.run_id,
        opened_at=entry.opened_at,
        status=FAILED,
        runner_pid=os.getpid(),
        runner_start=psutil.Process().create_time(),
    )
    assert before <= entry.opened_at <= time.time()
    assert journal.folders() == {Path("/w/a/1")}
    journal.attempt_closed(TASK_ID)
    journal.attempt_closed(TASK_ID)  # idempotent
    assert journal.entries() == []
    assert journal.folders() == set()


def test_every_status_shape_round_trips(journal: Journal) -> None:
    statuses = [
        FinalStatus(TaskStatus.FINISHED),
        FinalStatus(TaskStatus.FALSE),
        FAILED,
        FinalStatus.failed("RunnerRestarted", "ünïcode ✓ and\ttabs"),
    ]
    for n, status in enumerate(statuses):
        journal.status_pending(f"t{n}", status)
    found = {entry.task_id: entry.status for entry in journal.entries()}
    assert found == {f"t{n}": status for n, status in enumerate(statuses)}


def test_leftovers_are_the_rows_of_other_runs_only(path: Path) -> None:
    first = Journal.open(path, log=LOG)
    write_attempt(first, "old-task")
    first.status_pending("old-task", FAILED)
    assert first.leftovers() == []  # its own rows are not leftovers
    first.close()
    second = Journal.open(path, log=LOG)
    try:
        write_attempt(second, "new-task")
        assert second.run_id != first.run_id
        (left,) = second.leftovers()
        assert (left.task_id, left.run_id, left.status) == (
            "old-task",
            first.run_id,
            FAILED,
        )
        assert {e.task_id for e in second.entries()} == {"old-task", "new-task"}
    finally:
        second.close()


def test_a_status_without_an_opened_attempt_gets_a_row(journal: Journal) -> None:
    journal.status_pending(TASK_ID, FAILED, attempt_id="@Step_2")
    (entry,) = journal.entries()
    assert (entry.attempt_id, entry.folder, entry.marker, entry.pid) == (
        "@Step_2",
        None,
        None,
        None,
    )
    assert entry.status == FAILED
    assert journal.folders() == set()


def test_process_started_without_an_opened_attempt_is_a_bug(journal: Journal) -> None:
    with pytest.raises(LookupError, match=digest(TASK_ID)) as caught:
        journal.process_started(TASK_ID, 1, 1, 1.0)
    assert TASK_ID not in str(caught.value)


def test_opening_an_attempt_again_replaces_its_row(path: Path) -> None:
    first = Journal.open(path, log=LOG)
    write_attempt(first, TASK_ID)
    first.close()
    second = Journal.open(path, log=LOG)
    try:
        second.attempt_opened(TASK_ID, "@Step_1", Path("/w/a/2"), "@Step_1:abc")
        (entry,) = second.entries()
        assert (entry.run_id, entry.folder, entry.pid) == (
            second.run_id,
            Path("/w/a/2"),
            None,
        )
        assert second.leftovers() == []
    finally:
        second.close()


def test_the_repr_of_an_entry_never_shows_the_task_id(journal: Journal) -> None:
    write_attempt(journal, TASK_ID)
    (entry,) = journal.entries()
    assert TASK_ID not in repr(entry)
    assert entry.digest == digest(TASK_ID)


WRITER = """
import signal, sys
from pathlib import Path
import structlog
from runner.task.journal import Journal
from runner.taskmodel import FinalStatus, TaskStatus
journal = Journal.open(Path(sys.argv[1]), log=structlog.get_logger())
for n in range(3):
    task = f"task-{n}"
    journal.attempt_opened(task, f"@A_{n}", Path(f"/w/{n}"), f"@A_{n}:m")
    journal.process_started(task, 1000 + n, 1000 + n, 1.5 + n)
    if n:
        journal.status_pending(task, FinalStatus(TaskStatus.FINISHED))
print(journal.run_id, "written", flush=True)
signal.pause()
"""


def test_rows_survive_a_kill_9_of_the_writer(path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert writer.stdout is not None
    try:
        line = writer.stdout.readline()  # the log line of the open comes first
        while line and not line.endswith(" written\n"):
            line = writer.stdout.readline()
        run_id = line.split()[0]
        assert path.with_name("journal.db-wal").stat().st_size > 0  # not checkpointed
    finally:
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(10) == -signal.SIGKILL
        writer.stdout.close()
    journal = Journal.open(path, log=LOG)
    try:
        left = {entry.task_id: entry for entry in journal.leftovers()}
    finally:
        journal.close()
    assert sorted(left) == ["task-0", "task-1", "task-2"]
    assert all(entry.run_id == run_id for entry in left.values())
    assert [left[t].pid for t in sorted(left)] == [1000, 1001, 1002]
    assert left["task-0"].status is None
    assert left["task-2"].status == FinalStatus(TaskStatus.FINISHED)
    assert left["task-2"].proc_start == 3.5
    with sqlite3.connect(path) as db:  # WAL is a property of the file
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()


def test_the_files_are_private_whatever_the_umask(path: Path) -> None:
    old = os.umask(0o022)
    try:
        journal = Journal.open(path, log=LOG)
        write_attempt(journal, TASK_ID)
        names = ["journal.db", "journal.db-wal", "journal.db-shm"]
        modes = {n: stat.S_IMODE(path.with_name(n).stat().st_mode) for n in names}
        journal.close()
    finally:
        os.umask(old)
    assert modes == dict.fromkeys(names, 0o600)


def test_an_existing_file_is_made_private(path: Path) -> None:
    Journal.open(path, log=LOG).close()
    path.chmod(0o644)
    Journal.open(path, log=LOG).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_symlink_is_refused(tmp_path: Path, path: Path) -> None:
    target = tmp_path / "elsewhere.db"
    path.symlink_to(target)
    with pytest.raises(ConfigError, match="journal"):
        Journal.open(path, log=LOG)
    assert not target.exists()


def test_a_file_that_is_not_a_journal_is_refused(path: Path) -> None:
    path.write_bytes(b"not a database, just bytes " * 100)
    with pytest.raises(ConfigError, match="journal"):
        Journal.open(path, log=LOG)


def test_a_journal_of_a_newer_schema_is_refused(path: Path) -> None:
    Journal.open(path, log=LOG).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(ConfigError, match="newer"):
        Journal.open(path, log=LOG)


def test_threads_writing_at_once_lose_nothing(journal: Journal) -> None:
    threads, per_thread = 8, 40
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            start.wait()
            for n in range(per_thread):
                task = f"task-{worker}-{n}"
                write_attempt(journal, task, pid=worker * 1000 + n)
                journal.status_pending(task, FinalStatus(TaskStatus.FINISHED))
                if n % 2:
                    journal.attempt_closed(task)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(30)
    assert errors == []
    entries = journal.entries()
    assert len(entries) == threads * per_thread // 2
    assert {e.task_id for e in entries} == {
        f"task-{w}-{n}" for w in range(threads) for n in range(0, per_thread, 2)
    }
    assert all(
        e.pid == int(e.task_id.split("-")[1]) * 1000 + int(e.task_id.split("-")[2])
        for e in entries
    )
    assert all(e.status == FinalStatus(TaskStatus.FINISHED) for e in entries)


def test_an_attempt_costs_well_under_a_few_milliseconds(journal: Journal) -> None:
    """The four writes every attempt pays, with a task id of AWS's length. The
    bound is loose (a shared disk); ``-s`` prints the figure."""
    rounds = 200
    started = time.perf_counter()
    for n in range(rounds):
        task = f"{TASK_ID}-{n}"
        write_attempt(journal, task)
        journal.status_pending(task, FAILED)
        journal.attempt_closed(task)
    per_attempt_ms = (time.perf_counter() - started) / rounds * 1000
    sys.stdout.write(f"journal: {per_attempt_ms:.3f} ms per attempt\n")
    assert per_attempt_ms < 5.0
