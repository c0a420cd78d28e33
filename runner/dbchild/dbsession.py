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

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import psycopg
import pymysql  # type: ignore[import-untyped]  # PyMySQL ships no stubs

from runner.dbchild import mysqlload, mysqlrows, pgcopy, redshiftsql, redshifttext
from runner.dbchild.dbrows import BATCH_ROWS, Param, encode_batches, insert_batches
from runner.dbchild.dialect import Dialect, dialect_to_pg, pg_to_dialect


class SqlError(Exception):
    """A statement or a connection failed: ``error_id`` is ``SqlError:<code>``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.error_id = f"SqlError:{code}"
        self.message = message


def connect(job: Mapping[str, Any], queue: str | None = None) -> Session:
    """A session for the connection ``job`` (``Connection.to_job``). Raises
    ``SqlError`` (``SqlError:08001`` when the server cannot be reached)."""
    if job["engine"] == "mysql":
        return MySqlSession(job)
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


# ------------------------------------------------------------------ PostgreSQL


def _pg_failure(exc: psycopg.Error) -> SqlError:
    state = exc.sqlstate or "08001"  # no SQLSTATE: the server was never reached
    message = exc.diag.message_primary or str(exc).strip()
    if exc.diag.statement_position:  # where in the statement, as the server says
        message = f"{message} (at character {exc.diag.statement_position})"
    return SqlError(state, message)


class PgSession(Session):
    """PostgreSQL, and Redshift (``engine == "redshift"``: ``query_group`` from
    the activity's ``queue``; INSERT batches instead of COPY)."""

    def __init__(self, job: Mapping[str, Any], *, queue: str | None) -> None:
        self.engine = str(job["engine"])
        options = job.get("options") or {}
        kwargs: dict[str, Any] = {
            "host": job.get("host"),
            "port": job.get("port"),
            "dbname": job.get("database"),
            "user": job.get("user"),
            "password": job.get("password"),
            "application_name": options.get("application_name", "dp-runner"),
            "connect_timeout": max(
                2, round(float(options.get("connect_timeout_s", 30)))
            ),
        }
        if "ssl" in options:
            kwargs["sslmode"] = options["ssl"]
        if "ssl_ca" in options:
            kwargs["sslrootcert"] = options["ssl_ca"]
        try:
            self.conn = psycopg.connect(
                autocommit=True, **{k: v for k, v in kwargs.items() if v is not None}
            )
            if self.engine == "redshift":
                for statement in redshiftsql.session_setup(queue):
                    self.conn.execute(statement)
        except psycopg.Error as exc:
            raise _pg_failure(exc) from exc

    def execute(self, sql: str, params: Sequence[Param] | None) -> int:
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, params, prepare=False)
                return cur.rowcount
        except psycopg.Error as exc:
            raise _pg_failure(exc) from exc

    def cancel(self) -> None:
        # the statement may have ended meanwhile; the stop goes on all the same
        with contextlib.suppress(psycopg.Error):
            self.conn.cancel_safe(timeout=3.0)

    def rollback(self) -> None:
        try:
            if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                self.conn.execute("ROLLBACK")
        except psycopg.Error:
            pass  # a broken connection: closing it rolls back on the server

    def close(self) -> None:
        self.conn.close()

    def column(self, sql: str, params: Sequence[Param]) -> list[str]:
        try:
            return [str(row[0]) for row in self.conn.execute(sql, params).fetchall()]
        except psycopg.Error as exc:
            raise _pg_failure(exc) from exc

    def table_exists(self, table: str) -> bool:
        if self.engine == "redshift":  # no to_regclass there
            schema, name = redshifttext.catalog_parts(table)
            found = self.conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = %s"
                " AND table_schema = COALESCE(NULLIF(%s, ''), current_schema())",
                [name, schema],
            )
        else:  # the search_path decides, as it will for the load
            found = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        row = found.fetchone()
        return bool(row and row[0])

    def load(
        self, table: str, insert: str | None, chunks: Iterable[bytes], dialect: Dialect
    ) -> int:
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                if insert is not None or self.engine == "redshift":
                    return insert_batches(
                        lambda sql, rows: self._insert(cur, sql, rows),
                        table,
                        insert,
                        chunks,
                        dialect,
                    )
                copy_sql = f"COPY {table} FROM STDIN ({_pg_format(dialect)})"
                with cur.copy(copy_sql) as copy:
                    for data in dialect_to_pg(chunks):
                        copy.write(data)
                return cur.rowcount
        except psycopg.Error as exc:
            raise _pg_failure(exc) from exc

    def _insert(self, cur: Any, sql: str, rows: list[list[Param]]) -> None:
        batched = (
            redshiftsql.insert_batch(sql, rows) if self.engine == "redshift" else None
        )
        if batched is not None:
            cur.execute(batched[0], batched[1], prepare=False)
        else:
            cur.executemany(sql, rows)

    def export(
        self, query: str, dialect: Dialect, rows: list[int], table: str | None = None
    ) -> Iterator[bytes]:
        try:
            if self.engine == "redshift":
                yield from self._export_cursor(query, dialect, rows)
                return
            translate = pg_to_dialect(dialect)
            source = table or f"({query})"
            copy_sql = f"COPY {source} TO STDOUT ({_pg_format(dialect)})"
            count = 0
            for batch in pgcopy.copy_out(self.conn.pgconn, copy_sql):
                count += len(batch)
                yield translate(b"".join(batch))
            yield translate.leftover()
            rows.append(count)
        except pgcopy.CopyFailed as exc:
            raise SqlError(exc.sqlstate, exc.message) from exc
        except psycopg.Error as exc:
            raise _pg_failure(exc) from exc

    def _export_cursor(
        self, query: str, dialect: Dialect, rows: list[int]
    ) -> Iterator[bytes]:
        """Redshift has no COPY TO STDOUT: a server-side cursor, in a transaction."""
        with self.conn.transaction(), self.conn.cursor(name="dp_runner_export") as cur:
            cur.itersize = BATCH_ROWS
            cur.execute(query)
            yield from encode_batches(cur, dialect, rows)


def _pg_format(dialect: Dialect) -> str:
    delimiter = "E'\\t'" if dialect.separator == b"\t" else "','"
    return f"FORMAT text, DELIMITER {delimiter}"


# ------------------------------------------------------------------ MySQL


def _mysql_failure(exc: pymysql.err.MySQLError) -> SqlError:
    if len(exc.args) >= 2 and isinstance(exc.args[0], int):
        return SqlError(str(exc.args[0]), str(exc.args[1]))
    return SqlError("2000", str(exc) or type(exc).__name__)


def _mysql_kwargs(job: Mapping[str, Any]) -> dict[str, Any]:
    options = job.get("options") or {}
    kwargs: dict[str, Any] = {
        "host": job.get("host"),
        "port": int(job.get("port") or 3306),
        "user": job.get("user"),
        "password": job.get("password") or "",
        "database": job.get("database"),
        "charset": options.get("charset", "utf8mb4"),
        "connect_timeout": float(options.get("connect_timeout_s", 10)),
        "program_name": options.get("application_name", "dp-runner"),
    }
    if "read_timeout_s" in options:
        kwargs["read_timeout"] = float(options["read_timeout_s"])
    ssl = options.get("ssl")
    if ssl in ("require", "verify-ca", "verify-full"):
        kwargs["ssl"] = {"fake_flag_to_enable_tls": True}  # PyMySQL's documented way
        kwargs["ssl_verify_cert"] = ssl != "require"
        kwargs["ssl_verify_identity"] = ssl == "verify-full"
    if "ssl_ca" in options:
        kwargs["ssl_ca"] = options["ssl_ca"]
    return kwargs


class MySqlSession(Session):
    """MySQL and MariaDB through PyMySQL."""

    engine = "mysql"

    def __init__(self, job: Mapping[str, Any]) -> None:
        self._kwargs = _mysql_kwargs(job)
        try:
            self.conn = mysqlload.StreamingConnection(autocommit=True, **self._kwargs)
        except pymysql.err.MySQLError as exc:
            raise _mysql_failure(exc) from exc
        self._thread_id = self.conn.thread_id()
        self._lock = threading.Lock()

    def execute(self, sql: str, params: Sequence[Param] | None) -> int:
        try:
            with self.conn.cursor() as cur:
                return int(cur.execute(sql, params))
        except pymysql.err.MySQLError as exc:
            raise _mysql_failure(exc) from exc

    def cancel(self) -> None:
        """``KILL QUERY`` from a second connection (same user: it may)."""
        # the statement may have ended meanwhile; the stop goes on all the same
        with self._lock, contextlib.suppress(pymysql.err.MySQLError):
            killer = pymysql.connect(**{**self._kwargs, "connect_timeout": 3})
            try:
                with killer.cursor() as cur:
                    cur.execute(f"KILL QUERY {int(self._thread_id)}")
            finally:
                killer.close()

    def rollback(self) -> None:
        # a broken connection: closing it rolls back on the server
        with contextlib.suppress(pymysql.err.MySQLError):
            self.conn.rollback()

    def close(self) -> None:
        with contextlib.suppress(pymysql.err.Error):  # already closed by the server
            self.conn.close()

    def table_exists(self, table: str) -> bool:
        name = table.rsplit(".", maxsplit=1)[-1].strip("`")
        with self.conn.cursor() as cur:
            cur.execute("SHOW TABLES LIKE %s", [name.replace("_", "\\_")])
            return cur.fetchone() is not None

    def load(
        self, table: str, insert: str | None, chunks: Iterable[bytes], dialect: Dialect
    ) -> int:
        try:
            self.conn.begin()
            if insert is None:
                count = mysqlload.load_data(self.conn, table, chunks, dialect)
            else:
                with self.conn.cursor() as cur:
                    run = cur.executemany
                    count = insert_batches(run, table, insert, chunks, dialect)
            self.conn.commit()
        except pymysql.err.MySQLError as exc:
            raise _mysql_failure(exc) from exc
        return count

    def export(
        self, query: str, dialect: Dialect, rows: list[int], table: str | None = None
    ) -> Iterator[bytes]:
        try:
            yield from mysqlrows.export(self.conn, query, dialect, rows)
        except pymysql.err.MySQLError as exc:
            raise _mysql_failure(exc) from exc
