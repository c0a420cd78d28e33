"""``COPY ... TO STDOUT`` read straight from libpq, in batches of rows.

Owns: ``copy_out``, the read loop of a PostgreSQL export, on the connection's
``pgconn`` (psycopg's documented libpq wrapper: "to send low level commands to
PostgreSQL"), and ``CopyFailed`` for what the server answers instead of data.

Must not: be imported by the runner (the child's ``dbsession`` uses it), or leave
the connection with a result unread: every path drains the results, so psycopg
finds the connection idle afterwards.

Why this way: the COPY protocol hands one row per message, and psycopg's
``Copy.read()`` goes through a generator and a wait per row; on an export of
millions of rows that is the bottleneck (about a third of the time, measured
against this loop). Here a row costs one call of ``PQgetCopyData`` in non-blocking
mode. Waits are ``select`` on the socket with a timeout, which releases the GIL, so
the child's stop thread can always send its cancel request; a cancelled COPY ends
with the server's error (57014), raised as ``CopyFailed``.
"""

from __future__ import annotations

import select
from collections.abc import Iterator

from psycopg import pq

WAIT_S = 0.5
_COPY_STATES = (pq.ExecStatus.COPY_OUT, pq.ExecStatus.COPY_IN, pq.ExecStatus.COPY_BOTH)


class CopyFailed(Exception):  # noqa: N818 - the server's answer, not our error
    """The server answered an error (its SQLSTATE and message)."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message


def copy_out(pgconn: pq.abc.PGconn, sql: str) -> Iterator[list[memoryview]]:
    """Run ``sql`` (a ``COPY ... TO STDOUT``) and yield its rows in batches (each
    row as libpq gave it, LF included): what libpq's input buffer held, so a batch
    is at most one socket read, a few hundred KB. Raises
    ``CopyFailed``, or psycopg's ``OperationalError`` when the connection breaks.
    Closing the generator early leaves the rest unread: close the connection."""
    pgconn.send_query(sql.encode())
    while pgconn.flush():
        select.select([], [pgconn.socket], [], WAIT_S)
    started = _next_result(pgconn)
    if started is None or started.status != pq.ExecStatus.COPY_OUT:
        _drain(pgconn)
        raise _failure(started, pgconn)
    get = pgconn.get_copy_data
    batch: list[memoryview] = []
    append = batch.append
    while True:
        nbytes, data = get(1)
        if nbytes > 0:  # the per-row path: kept to one call and one append
            append(data)
        elif nbytes == 0:  # libpq's buffer is spent: hand over what it held
            if batch:
                yield batch
                batch = []
                append = batch.append
            _wait(pgconn)
        else:  # -1: the COPY is over (or failed: its result says)
            break
    if batch:
        yield batch
    final = _next_result(pgconn)
    _drain(pgconn)
    if final is None or final.status != pq.ExecStatus.COMMAND_OK:
        raise _failure(final, pgconn)


def _wait(pgconn: pq.abc.PGconn) -> None:
    select.select([pgconn.socket], [], [], WAIT_S)
    pgconn.consume_input()


def _next_result(pgconn: pq.abc.PGconn) -> pq.abc.PGresult | None:
    while pgconn.is_busy():
        _wait(pgconn)
    return pgconn.get_result()


def _drain(pgconn: pq.abc.PGconn) -> None:
    """Read the results left. A COPY among them (the text held more than one
    statement) ends the copy with an error: libpq would hand out its result again
    and again, and this loop would spin."""
    while (result := _next_result(pgconn)) is not None:
        if result.status in _COPY_STATES:
            raise CopyFailed(
                "0A000",
                "the COPY ran more than one statement (a second COPY came back); "
                "a selectQuery is one query",
            )


def _failure(result: pq.abc.PGresult | None, pgconn: pq.abc.PGconn) -> CopyFailed:
    if result is None:
        return CopyFailed("08006", pgconn.error_message.decode(errors="replace"))
    state = result.error_field(pq.DiagnosticField.SQLSTATE) or b"XX000"
    message = result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b""
    text = message.decode(errors="replace") or result.error_message.decode(
        errors="replace"
    )
    return CopyFailed(state.decode(), text.strip())
