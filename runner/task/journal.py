"""The crash journal: what this runner has running and what it still owes the service.

It owns ``work_dir/journal.db``, one SQLite row per attempt of this runner, written
*before* each fact it records, so that after a ``kill -9`` the next start knows which
process trees the last run left and which final statuses it never got confirmed
(design.md §3: "the final status is the commit point ... written to the journal in
the work dir before it is sent"). ``recovery.py`` reads it back on start.

It must not signal or scan processes (``supervisor`` does), call the service
(``recovery`` does), or log a task id in full (``JournalEntry`` hides it from its
repr; use ``digest``).

Why it is built this way:

- A row lives from the moment the attempt's folder is opened until its final
  status is confirmed, or the service said the task is gone, or no status is due
  (canceled, lost), and its tree is gone. Writes, in the order an attempt makes
  them: ``attempt_opened`` (folder, marker), ``cgroup_opened`` (the attempt's
  cgroup, before anything runs in it), ``process_started`` (pid, group,
  start time; a crash between the fork and this write leaves the marker, which a
  scan still finds, and the cgroup), ``status_pending`` (before SetTaskStatus),
  ``attempt_closed``.
- SQLite in WAL mode with ``synchronous=NORMAL``: each write is its own committed
  transaction, and a commit is a ``write`` into the WAL without an ``fsync``. The
  bytes are then in the kernel's page cache, which a crash of the runner (``kill
  -9``, OOM kill, a bug) cannot take away. Only losing power or the kernel can
  drop the last commits (never corrupt the file); that is out of scope, and
  ``synchronous=FULL`` would pay an ``fsync`` on every write of every task for it.
- One connection for the runner, shared by the task threads under a lock
  (``check_same_thread=False``), opened once: measured, an attempt's four writes
  cost about 0.1 ms this way, and 1 to 12 ms with a connection per call (each
  close of the last connection checkpoints and ``fsync``s the WAL).
- Every ``open`` is a run with a fresh ``run_id``; rows of other runs are
  ``leftovers``. Each row records the boot it was written on, so a row of an
  earlier boot is known to have no live process.
- The file and its ``-wal``/``-shm`` companions are mode 0600 (SQLite gives the
  companions the database file's mode), created without following a symlink.
- A write the host fails (a full disk, an I/O error, no memory) never loses a
  status and never stops a task: it is logged at error level and owed, and the
  owed writes are made again, in order, before the next write and at least
  every ``RETRY_EVERY_S`` (``retry``, from the housekeeping). While any is owed,
  ``writable`` is False: the worker takes no new task and ``/readyz`` is not
  ready. The status itself is sent all the same (``execution``); replayed in
  order, the owed writes leave the row as the attempt left it (closed).
- Each row names the runner that wrote it (``runner_pid``, ``runner_start``: its
  pid and psutil create time), so that recovery never touches an attempt whose
  runner is alive, whatever happened to the work dir's lock. The two columns are
  added to an older table in place (``journalfile.add_columns``): a runner of the
  previous schema reads its columns by name and ignores them.

The file itself (its schema, its creation and upgrade, a row read back) is
``journalfile.py``'s; this module keeps the connection, the writes in their order
and the owed ones.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from structlog.typing import FilteringBoundLogger

from runner.errors import ConfigError, refusal
from runner.supervisor import boot_id, start_time
from runner.task.journalfile import (
    COLUMNS,
    JournalEntry,
    create_private,
    entry_of,
    host_fault,
    prepare,
    refused,
    status_to_json,
)
from runner.taskmodel import FinalStatus, digest

_BUSY_TIMEOUT_S = 5.0  # only another process (the sqlite3 CLI) can hold the lock


#: How often owed writes are made again while the journal cannot be written.
RETRY_EVERY_S = 5.0


class Journal:
    """The journal of one runner process. Thread-safe: every method takes the
    connection's lock and returns once its write is committed, or owed (the host
    failed it: see ``writable``). Other write errors raise ``sqlite3.Error``."""

    def __init__(
        self,
        db: sqlite3.Connection,
        path: Path,
        boot: str,
        log: FilteringBoundLogger | None = None,
    ) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._log = log
        #: Writes the host failed, in order, to be made again (``retry``).
        self._owed: list[tuple[str, tuple[Any, ...] | dict[str, Any]]] = []
        self._last_try = 0.0
        self._last_failed = False
        self.path = path
        self.boot_id = boot
        self.run_id = uuid.uuid4().hex
        #: This runner, as each row it writes names it.
        self.runner_pid = os.getpid()
        self.runner_start = start_time(self.runner_pid)

    @classmethod
    def open(cls, path: Path, *, log: FilteringBoundLogger) -> Journal:
        """Open (or create) the journal at ``path`` (``work_dir/journal.db``; the
        folder must exist), once per runner. Raises ``ConfigError`` when it is a
        symlink or not a regular file, cannot be opened, or is not a journal of
        this schema: running without the journal could run an attempt beside an
        orphan, so the operator decides (move it aside to start afresh). Raises
        ``HostFaultError`` instead when the disk is full, or on an I/O error or
        no memory: the host's fault, for now (exit 75, the unit restarts)."""
        try:
            create_private(path)
            db = sqlite3.connect(
                path,
                isolation_level=None,  # autocommit: each write is its own transaction
                check_same_thread=False,  # shared by the task threads, under a lock
                timeout=_BUSY_TIMEOUT_S,
            )
        except OSError as exc:
            raise refusal(f"journal {path}: cannot open it: {exc}", exc) from exc
        except sqlite3.Error as exc:
            raise refused(f"journal {path}: cannot open it: {exc}", exc) from exc
        try:
            prepare(db)
        except (sqlite3.Error, ConfigError) as exc:
            db.close()
            raise refused(f"journal {path}: {exc}", exc) from exc
        journal = cls(db, path, boot_id(), log)
        log.info(
            "journal_opened",
            path=str(path),
            run_id=journal.run_id,
            leftovers=len(journal.leftovers()),
        )
        return journal

    # -- writes, each before the fact it records ----------------------------------

    def attempt_opened(
        self, task_id: str, attempt_id: str, folder: Path, marker: str
    ) -> None:
        """Before the attempt's first step: its folder and the ``DP_RUNNER_ATTEMPT``
        marker its processes will carry. Replaces a row with the same task id, an
        earlier run's included: check ``Recovery.blocked_attempts`` first."""
        row = self._new_row(task_id, attempt_id, folder=str(folder), marker=marker)
        self._write(
            "INSERT OR REPLACE INTO attempts"
            " (task_id, attempt_id, folder, marker, boot_id, run_id, opened_at,"
            " runner_pid, runner_start)"
            " VALUES (:task_id, :attempt_id, :folder, :marker, :boot_id, :run_id,"
            " :opened_at, :runner_pid, :runner_start)",
            row,
        )

    def process_started(
        self, task_id: str, pid: int, pgid: int, proc_start: float
    ) -> None:
        """Right after the spawn: the process, its group and its start time
        (``supervisor.start_time(pid)``). Raises ``LookupError`` when the attempt
        was never opened (a bug: recovery would not know the process)."""
        changed = self._write(
            "UPDATE attempts SET pid = ?, pgid = ?, proc_start = ? WHERE task_id = ?",
            (pid, pgid, proc_start, task_id),
        )
        if not changed and self.writable:
            raise LookupError(f"no journal row for task {digest(task_id)}")

    def cgroup_opened(self, task_id: str, path: str) -> None:
        """Before anything runs in it: the attempt's cgroup, which recovery kills
        and removes after a crash. Raises ``LookupError`` when the attempt was
        never opened."""
        changed = self._write(
            "UPDATE attempts SET cgroup = ? WHERE task_id = ?", (path, task_id)
        )
        if not changed and self.writable:
            raise LookupError(f"no journal row for task {digest(task_id)}")

    def status_pending(
        self, task_id: str, status: FinalStatus, *, attempt_id: str = ""
    ) -> None:
        """Before SetTaskStatus: the status to send (already redacted). Adds a row
        when the attempt has none (a task that failed before its folder opened),
        with ``attempt_id`` for the logs."""
        row = self._new_row(task_id, attempt_id, status=status_to_json(status))
        self._write(
            "INSERT INTO attempts"
            " (task_id, attempt_id, boot_id, run_id, opened_at, status,"
            " runner_pid, runner_start)"
            " VALUES (:task_id, :attempt_id, :boot_id, :run_id, :opened_at, :status,"
            " :runner_pid, :runner_start)"
            " ON CONFLICT (task_id) DO UPDATE SET status = excluded.status",
            row,
        )

    def attempt_closed(self, task_id: str) -> None:
        """The status was confirmed, or the task is gone, or none is due (canceled,
        lost); and the tree is gone. Idempotent."""
        self._write("DELETE FROM attempts WHERE task_id = ?", (task_id,))

    # -- reads --------------------------------------------------------------------

    def leftovers(self) -> list[JournalEntry]:
        """The rows of earlier runs (what a crash left), oldest first."""
        return self._read("WHERE run_id != ? ORDER BY opened_at", (self.run_id,))

    def entries(self) -> list[JournalEntry]:
        """Every row, this run's included, oldest first."""
        return self._read("ORDER BY opened_at", ())

    def folders(self) -> set[Path]:
        """The folder of every row, for pruning: none of them may be removed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT folder FROM attempts WHERE folder IS NOT NULL"
            ).fetchall()
        return {Path(folder) for (folder,) in rows}

    @property
    def writable(self) -> bool:
        """False while a write the host failed is owed (``retry`` makes it)."""
        return not self._owed

    def retry(self, now: float | None = None) -> bool:
        """Make the owed writes again, at most every ``RETRY_EVERY_S``; True when
        none is owed any more. The housekeeping calls it."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._owed and now - self._last_try >= RETRY_EVERY_S:
                self._pay()
            return not self._owed

    def close(self) -> None:
        """Close the connection (a clean stop; SQLite checkpoints the WAL). Later
        calls raise ``sqlite3.ProgrammingError``."""
        with self._lock:
            self._db.close()

    # -- machinery ------------------------------------------------------------------

    def _new_row(self, task_id: str, attempt_id: str, **values: str) -> dict[str, Any]:
        return {
            "task_id": task_id,
            "attempt_id": attempt_id,
            "boot_id": self.boot_id,
            "run_id": self.run_id,
            "opened_at": time.time(),
            "runner_pid": self.runner_pid,
            "runner_start": self.runner_start,
            **values,
        }

    def _write(self, sql: str, args: tuple[Any, ...] | dict[str, Any]) -> int:
        """One statement, committed on return (after the owed ones); the number of
        rows it changed. A statement the host fails is owed: 0."""
        with self._lock:
            self._owed.append((sql, args))
            return self._pay()

    def _pay(self) -> int:
        """Make the owed writes in order, under the lock; what the last one
        changed, or 0 when one failed (it and the rest stay owed)."""
        self._last_try = time.monotonic()
        changed = 0
        while self._owed:
            sql, args = self._owed[0]
            try:
                changed = self._db.execute(sql, args).rowcount
            except sqlite3.Error as exc:
                if not host_fault(exc):
                    self._owed.pop(0)
                    raise
                self._said("journal_write_failed", owed=len(self._owed), error=str(exc))
                return 0
            self._owed.pop(0)
            if not self._owed and self._last_failed:
                self._said("journal_write_resumed")
        return changed

    def _said(self, event: str, **fields: Any) -> None:
        """One line about the journal's health, at error level while it fails."""
        self._last_failed = event == "journal_write_failed"
        if self._log is not None:
            level = self._log.error if self._last_failed else self._log.info
            level(event, path=str(self.path), **fields)

    def _read(self, where: str, args: tuple[Any, ...]) -> list[JournalEntry]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {COLUMNS} FROM attempts {where}",  # noqa: S608 - constants
                args,
            ).fetchall()
        return [entry_of(row) for row in rows]
