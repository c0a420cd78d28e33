"""MySQL and MariaDB loads as one streamed ``LOAD DATA LOCAL INFILE``.

Owns: ``StreamingConnection`` (PyMySQL's connection, answering the server's
request for a local file from a byte stream the caller hands it, never from a
file) and ``load_data``, the statement and its stream.

Must not: be imported by the runner (the child's ``dbsession`` uses it), or open
any file: the server names the file it wants, and a server may name any file;
this connection answers only the one name of the load it was asked to run, and
refuses every other request without reading anything.

Why this way: PyMySQL's batched INSERTs decode every record in Python and have
the server parse every row as SQL, several times slower than ``mariadb -e "LOAD
DATA LOCAL INFILE ..."``. Here the records go to the server as the file's bytes,
in packets of ``PACKET_BYTES``, the dialect's six differing escapes rewritten
by one regex (``dialect.dialect_to_mysql``); the server splits the fields. A stop
(``KILL QUERY``) or a failed stream ends the statement with the server's error,
and the load's transaction is rolled back. A LOCAL load reports bad values as
warnings and goes on: the first warning fails the load, as an INSERT would.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

import pymysql  # type: ignore[import-untyped]  # PyMySQL ships no stubs
from pymysql.connections import (  # type: ignore[import-untyped]
    LoadLocalPacketWrapper,
    MySQLResult,
)

from runner.dbchild.dialect import Dialect, dialect_to_mysql

#: Under PyMySQL's and the server's 16 MB packet; large enough that the per-packet
#: cost vanishes (PyMySQL's own file loader sends 16 KB packets).
PACKET_BYTES = 1024 * 1024


class _StreamedResult(MySQLResult):  # type: ignore[misc]
    """A result whose local-file request is answered from the pending stream."""

    def _read_load_local_packet(self, first_packet: Any) -> None:
        conn: StreamingConnection = self.connection
        name = LoadLocalPacketWrapper(first_packet).filename
        pending, conn.pending = conn.pending, None
        try:
            if pending is None or name != pending[0].encode():
                raise pymysql.err.OperationalError(
                    2000, "the server asked for a local file this load did not name"
                )
            for data in pending[1]:
                for start in range(0, len(data), PACKET_BYTES):
                    conn.write_packet(data[start : start + PACKET_BYTES])
        finally:
            conn.write_packet(b"")  # the end of the file, whatever happened
            ok_packet = conn._read_packet()
            if not ok_packet.is_ok_packet():
                raise pymysql.err.OperationalError(2014, "Commands Out of Sync")
            self._read_ok_packet(ok_packet)


class StreamingConnection(pymysql.connections.Connection):  # type: ignore[misc]
    """PyMySQL's connection, with ``LOAD DATA LOCAL`` fed from ``pending``."""

    def __init__(self, **kwargs: Any) -> None:
        self.pending: tuple[str, Iterable[bytes]] | None = None
        super().__init__(local_infile=True, **kwargs)

    def _read_query_result(self, unbuffered: bool = False) -> int:
        self._result = None
        result = _StreamedResult(self)
        if unbuffered:
            result.init_unbuffered_query()
        else:
            result.read()
        self._result = result
        if result.server_status is not None:
            self.server_status = result.server_status
        return int(result.affected_rows)


def load_data(
    conn: StreamingConnection, table: str, chunks: Iterable[bytes], dialect: Dialect
) -> int:
    """``chunks`` (dialect bytes) into ``table`` by one ``LOAD DATA LOCAL``; the
    number of rows the server loaded."""
    name = "dp-runner-stream-" + secrets.token_hex(8)
    separator = "\\t" if dialect.separator == b"\t" else ","
    sql = (
        f"LOAD DATA LOCAL INFILE '{name}' INTO TABLE {table}"
        " CHARACTER SET utf8mb4"
        f" FIELDS TERMINATED BY '{separator}' ESCAPED BY '\\\\'"
        " LINES TERMINATED BY '\\n'"
    )
    conn.pending = (name, dialect_to_mysql(chunks))
    try:
        with conn.cursor() as cur:
            count = int(cur.execute(sql))
    finally:
        conn.pending = None
    _raise_first_warning(conn)
    return count


def _raise_first_warning(conn: StreamingConnection) -> None:
    """A LOCAL load turns the errors an INSERT would raise (a value its column
    cannot hold, a record with too few fields) into warnings, and goes on: the
    first one fails the load here, as the INSERT would have, and the caller rolls
    the load back."""
    for level, code, message in conn.show_warnings() or ():
        if level != "Note":
            raise pymysql.err.DataError(int(code), str(message))
