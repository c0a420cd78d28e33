"""The journal's file: its schema, its creation and upgrade, and its row.

It owns what ``journal.db`` is on disk: the ``attempts`` table and its schema
version, the file made mode 0600 without following a symlink, the columns added
in place to an older table (``add_columns``), a row read back as a
``JournalEntry``, the final status stored as SetTaskStatus's JSON, and which
SQLite errors are the host's fault (a full disk, I/O, no memory) rather than the
file's. ``journal.py`` keeps the writes, their order and the owed writes.

It must not hold a connection or a lock, or log: ``Journal`` does.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import ConfigError, HostFaultError, RunnerError
from runner.taskmodel import FinalStatus, TaskStatus, digest

#: Bumped when the table changes; a journal of a newer schema is refused.
SCHEMA_VERSION = 1
FILE_MODE = 0o600
COLUMNS = (
    "task_id, attempt_id, folder, marker, pid, pgid, proc_start,"
    " boot_id, run_id, opened_at, status, cgroup, runner_pid, runner_start"
)
#: Columns added to the table of schema 1 in place: the attempt's cgroup, and the
#: runner that wrote the row.
_ADDEDCOLUMNS = {"cgroup": "TEXT", "runner_pid": "INTEGER", "runner_start": "REAL"}
SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    task_id    TEXT PRIMARY KEY,
    attempt_id TEXT NOT NULL,
    folder     TEXT,
    marker     TEXT,
    pid        INTEGER,
    pgid       INTEGER,
    proc_start REAL,
    boot_id    TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    opened_at  REAL NOT NULL,
    status     TEXT,
    cgroup     TEXT
)
"""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One row. ``folder`` and ``marker`` are None for a status journaled without
    an opened attempt; ``pid``, ``pgid`` and ``proc_start`` until the process
    started; ``status`` until one is due. Times are epoch seconds (``proc_start``
    is psutil's create time). ``task_id`` is left out of the repr: log ``digest``.
    """

    task_id: str = field(repr=False)
    attempt_id: str
    folder: Path | None
    marker: str | None
    pid: int | None
    pgid: int | None
    proc_start: float | None
    boot_id: str
    run_id: str
    opened_at: float
    status: FinalStatus | None
    #: The attempt's cgroup (a path), where the runner had cgroups.
    cgroup: str | None = None
    #: The runner that wrote the row (None in a row of an older runner).
    runner_pid: int | None = None
    runner_start: float | None = None

    @property
    def digest(self) -> str:
        return digest(self.task_id)


#: SQLite's primary result codes of a host at fault for now (not of the file).
HOST_FAULTS = frozenset(
    {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_NOMEM}
)


def host_fault(exc: Exception) -> bool:
    """Whether SQLite failed for the host (a full disk, I/O, no memory)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in HOST_FAULTS


def refused(message: str, exc: Exception) -> RunnerError:
    """``HostFaultError`` for a full disk, an I/O error or no memory; else
    ``ConfigError``."""
    return HostFaultError(message) if host_fault(exc) else ConfigError(message)


def create_private(path: Path) -> None:
    """Create ``path`` mode 0600 if absent, never through a symlink; make an
    existing one 0600. Raises ``OSError``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def prepare(db: sqlite3.Connection) -> None:
    """WAL, NORMAL sync, the table; refuses a journal of a newer schema."""
    (mode,) = db.execute("PRAGMA journal_mode = WAL").fetchone()
    if str(mode).lower() != "wal":
        raise ConfigError(f"WAL mode is not available (journal_mode={mode})")
    db.execute("PRAGMA synchronous = NORMAL")
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise ConfigError(f"schema {version} is newer than this runner's")
    db.execute(SCHEMA)
    add_columns(db)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def add_columns(db: sqlite3.Connection) -> None:
    """``cgroup``, ``runner_pid`` and ``runner_start``, added to a table of an
    older runner that lacks them."""
    present = {row[1] for row in db.execute("PRAGMA table_info(attempts)")}
    for name, kind in _ADDEDCOLUMNS.items():
        if name not in present:
            db.execute(f"ALTER TABLE attempts ADD COLUMN {name} {kind}")


def entry_of(row: tuple[Any, ...]) -> JournalEntry:
    task_id, attempt_id, folder, marker, pid, pgid, proc_start, boot, run_id = row[:9]
    opened_at, status, cgroup, runner_pid, runner_start = row[9:]
    return JournalEntry(
        task_id=task_id,
        attempt_id=attempt_id,
        folder=None if folder is None else Path(folder),
        marker=marker,
        pid=pid,
        pgid=pgid,
        proc_start=proc_start,
        boot_id=boot,
        run_id=run_id,
        opened_at=opened_at,
        status=None if status is None else status_from_json(status),
        cgroup=cgroup,
        runner_pid=runner_pid,
        runner_start=runner_start,
    )


def status_to_json(status: FinalStatus) -> str:
    """The SetTaskStatus arguments as JSON: the wire names are a stable format."""
    return json.dumps(status.to_api(), sort_keys=True)


def status_from_json(text: str) -> FinalStatus:
    args = json.loads(text)
    return FinalStatus(
        status=TaskStatus(args["taskStatus"]),
        error_id=args.get("errorId"),
        error_message=args.get("errorMessage"),
        error_stack_trace=args.get("errorStackTrace"),
    )
