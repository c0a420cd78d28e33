"""The PostgreSQL and Redshift session of the child program, through psycopg 3.

Owns: ``PgSession`` (``dbsession.Session`` on psycopg) and the translation of
psycopg's errors into ``SqlError`` (``SqlError:<SQLSTATE>``).

Must not: be imported by the runner, or by a child whose job is MySQL's
(``dbsession.connect`` imports it for PostgreSQL and Redshift only).

Why this way: PostgreSQL loads use COPY FROM STDIN and exports COPY TO STDOUT in
the text format, through ``dialect``'s byte translators (exports read from libpq
by ``pgcopy``); Redshift has no COPY FROM STDIN, so it gets multi-row INSERTs
(``redshiftsql.py``), and exports through a server-side cursor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import psycopg

from runner.dbchild import pgcopy, redshiftsql, redshifttext
from runner.dbchild.dbrows import BATCH_ROWS, Param, encode_batches, insert_batches
from runner.dbchild.dbsession import Session, SqlError
from runner.dbchild.dialect import Dialect, dialect_to_pg, pg_to_dialect


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
