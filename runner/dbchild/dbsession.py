"""Database sessions of the child program: psycopg 3 for PostgreSQL and Redshift,
PyMySQL for MySQL and MariaDB, behind one small interface.

Owns: connecting (driver options from ``database.driver_options``), running one
statement, cancelling the running one from another thread, rolling back what a
failure or a stop left open, the bulk paths (``load``, ``export``) and the
translation of every driver error into ``SqlError`` (``SqlError:<SQLSTATE>``;
MySQL: its error number).

Must not: be imported by the runner: only ``dbjob.py``, in the child, imports it
(and with it the drivers), so the runner's memory never holds a driver.

Why this way: the cancel is the driver's own (psycopg: the PostgreSQL cancel
request, ``cancel_safe``; MySQL: ``KILL QUERY <thread id>`` from a second
connection), so a stop ends the statement on the server, not only in the client.
Sessions run in autocommit, as JDBC does by default: a script that wants
atomicity writes BEGIN/COMMIT. Bulk loads run in one transaction. PostgreSQL
loads use COPY FROM STDIN and exports COPY TO STDOUT in the text format, through
``dialect``'s byte translators; Redshift has no COPY FROM STDIN, so it gets
multi-row INSERTs (``redshiftsql.py``); MySQL loads are one ``LOAD DATA LOCAL
INFILE`` fed from the stream (``mysqlload.py``), or with an ``insertQuery``,
PyMySQL's batched INSERTs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from runner.dbchild.dbrows import Param
from runner.dbchild.dialect import Dialect


class SqlError(Exception):
    """A statement or a connection failed: ``error_id`` is ``SqlError:<code>``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.error_id = f"SqlError:{code}"
        self.message = message


def connect(job: Mapping[str, Any], queue: str | None = None) -> Session:
    """A session for the connection ``job`` (``Connection.to_job``). Raises
    ``SqlError`` (``SqlError:08001`` when the server cannot be reached)."""
    # the driver of this engine only: imported here, once the job is known
    if job["engine"] == "mysql":
        from runner.dbchild.mysqlsession import MySqlSession  # noqa: PLC0415

        return MySqlSession(job)
    from runner.dbchild.pgsession import PgSession  # noqa: PLC0415

    return PgSession(job, queue=queue)


class Session:
    """One connection. ``execute``, ``load`` and ``export`` run on the child's
    main thread; ``cancel`` may be called from its stop thread at any time."""

    engine = ""

    def execute(self, sql: str, params: Sequence[Param] | None) -> int:
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def table_exists(self, table: str) -> bool:
        raise NotImplementedError

    def column(self, sql: str, params: Sequence[Param]) -> list[str]:
        """The first column of ``sql``'s rows, as text (PostgreSQL, Redshift)."""
        raise NotImplementedError

    def load(
        self, table: str, insert: str | None, chunks: Iterable[bytes], dialect: Dialect
    ) -> int:
        raise NotImplementedError

    def export(
        self, query: str, dialect: Dialect, rows: list[int], table: str | None = None
    ) -> Iterator[bytes]:
        """``query``'s rows as dialect bytes; ``rows`` gets their count at the end.
        ``table``: the query reads that table whole (PostgreSQL copies it as such)."""
        raise NotImplementedError
