"""SQLite persistence for the local service: one file, WAL, one writer.

Owns: the schema and its version (`PRAGMA user_version`), opening the file (a
file that cannot be opened or written, is not SQLite, holds another program's
tables or a schema version this one does not know raises `StartupError`),
loading every record at start and writing changed records back in one
transaction per request.

Must not: decide anything. The engine keeps the working set in memory under its
lock and hands the store the records it changed; the store only writes them.

Why: the engine already serializes every mutation under one lock, so a single
connection (used only under that lock) is both safe and fast. WAL with
synchronous=NORMAL keeps a commit cheap while a crash of the process still
loses nothing that was committed; a temp file serves when no state path is given.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterable
from pathlib import Path

from runner.localservice.model import Pipeline, Run
from runner.localservice.startup import StartupError

# Version 1: the three tables below. A file of version 0 with no tables (new) or
# only these tables (written before the version was kept) is taken as version 1.
SCHEMA_VERSION = 1
_TABLES = frozenset({"pipelines", "runs", "heartbeats"})
_SCHEMA = """
CREATE TABLE IF NOT EXISTS pipelines (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    pipeline_id TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (pipeline_id, id));
CREATE TABLE IF NOT EXISTS heartbeats (runner_id TEXT PRIMARY KEY, body TEXT NOT NULL);
"""


class Store:
    """The SQLite file. Not thread-safe by itself: callers hold the engine lock."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self._temp_dir: tempfile.TemporaryDirectory[str] | None = None
        if path is None:
            self._temp_dir = tempfile.TemporaryDirectory(prefix="dp-local-")
            path = Path(self._temp_dir.name) / "state.sqlite3"
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None
            )
            self._prepare()
        except sqlite3.Error as exc:
            self._abandon()
            raise StartupError(
                f"cannot use {self.path} as the state file: {exc}"
            ) from exc
        except StartupError:
            self._abandon()
            raise

    def _prepare(self) -> None:
        """Check the file is ours and writable; create or adopt the schema."""
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        (version,) = db.execute("PRAGMA user_version").fetchone()
        listed = db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        tables = {name for (name,) in listed}
        if version == 0 and tables - _TABLES:
            raise StartupError(
                f"{self.path} is an SQLite file of another program (tables: "
                f"{', '.join(sorted(tables))}), not a dp-runner local state file"
            )
        if version not in {0, SCHEMA_VERSION}:
            raise StartupError(
                f"{self.path} holds state of schema version {version}; this "
                f"dp-runner reads version {SCHEMA_VERSION}"
            )
        db.execute("BEGIN IMMEDIATE")  # fails here, not later, if read-only
        db.execute("COMMIT")
        db.executescript(f"{_SCHEMA}\nPRAGMA user_version = {SCHEMA_VERSION};")

    def _abandon(self) -> None:
        with contextlib.suppress(sqlite3.Error, AttributeError):
            self._db.close()
        if self._temp_dir is not None:
            self._temp_dir.cleanup()

    def load(self) -> tuple[list[Pipeline], list[Run]]:
        """Every record. Raises StartupError for records this version cannot read."""
        try:
            pipelines = [
                Pipeline.from_json(body)
                for (body,) in self._db.execute("SELECT body FROM pipelines")
            ]
            runs = [
                Run.from_json(body)
                for (body,) in self._db.execute("SELECT body FROM runs")
            ]
        except (sqlite3.Error, ValueError, TypeError) as exc:
            raise StartupError(
                f"{self.path} holds records this dp-runner cannot read: {exc}"
            ) from exc
        runs.sort(key=lambda run: run.seq)
        return pipelines, runs

    def save(
        self,
        pipelines: Iterable[Pipeline],
        runs: Iterable[Run],
        deleted_runs: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Write the given records in one transaction."""
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO pipelines (id, body) VALUES (?, ?)",
                [(p.id, p.to_json()) for p in pipelines],
            )
            db.executemany(
                "INSERT OR REPLACE INTO runs (pipeline_id, id, body) VALUES (?, ?, ?)",
                [(r.pipeline_id, r.id, r.to_json()) for r in runs],
            )
            db.executemany(
                "DELETE FROM runs WHERE pipeline_id = ? AND id = ?", list(deleted_runs)
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def save_heartbeat(self, runner_id: str, body: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO heartbeats (runner_id, body) VALUES (?, ?)",
            (runner_id, body),
        )

    def heartbeats(self) -> dict[str, str]:
        rows = self._db.execute("SELECT runner_id, body FROM heartbeats")
        return dict(rows.fetchall())

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        if self._temp_dir is not None:
            self._temp_dir.cleanup()
