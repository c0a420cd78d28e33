"""The MySQL and MariaDB session of the child program, through PyMySQL.

Owns: ``MySqlSession`` (``dbsession.Session`` on PyMySQL), its connection
options, and the translation of PyMySQL's errors into ``SqlError`` (``SqlError:``
and the server's error number).

Must not: be imported by the runner, or by a child whose job is PostgreSQL's
(``dbsession.connect`` imports it for MySQL only).

Why this way: loads are one ``LOAD DATA LOCAL INFILE`` fed from the stream
(``mysqlload.py``), or with an ``insertQuery``, PyMySQL's batched INSERTs;
exports read the result's rows off the socket (``mysqlrows.py``). The cancel is
``KILL QUERY <thread id>`` from a second connection.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pymysql  # type: ignore[import-untyped]  # PyMySQL ships no stubs

from runner.dbchild import mysqlload, mysqlrows
from runner.dbchild.dbrows import Param, insert_batches
from runner.dbchild.dbsession import Session, SqlError
from runner.dbchild.dialect import Dialect


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
