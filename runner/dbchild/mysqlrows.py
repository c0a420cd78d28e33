"""A MySQL or MariaDB result read straight off the socket into dialect bytes.

Owns: ``export``, which runs a query through PyMySQL (connecting, the query, the
column descriptions: the driver's work) and then reads the rows itself: the text
protocol's row packets, parsed a socket read (up to ``READ_BYTES``) at a time and
written as dialect records.

Must not: be imported by the runner (the child's ``dbsession`` uses it), or leave
the connection mid-result: every path either reads to the end of the rows (the
EOF packet, or the server's error) or lets PyMySQL close the cursor, which drains
them; then the driver's own state says the result is finished.

Why this way: PyMySQL turns every row into a tuple of Python values (a packet
object, a decoder call per field), and the copy then turned each value back into
bytes: about 40 us a row, nine times ``mariadb --batch``. The text protocol
already carries each value as the server's text, which is what a CSV holds, so a
row here costs one slice per field and a join; a field is escaped only when its
row holds a backslash, the separator or LF (one scan of the packet). The values
are the server's own text (a DATETIME(6) keeps its six digits, a TIME reads
``01:00:00``), as ``mariadb --batch`` writes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql  # type: ignore[import-untyped]  # PyMySQL ships no stubs

from runner.dbchild.dialect import NULL, Dialect, encode_field

#: One socket read: a few hundred rows, well under the child's memory bound.
READ_BYTES = 1024 * 1024
_HEADER = 4
_LONG_PACKET = 0xFFFFFF
_NULL_FIELD, _EOF, _ERROR = 0xFB, 0xFE, 0xFF


def export(conn: Any, query: str, dialect: Dialect, rows: list[int]) -> Iterator[bytes]:
    """Run ``query`` and yield its rows as dialect bytes, one socket read at a
    time; the row count is appended to ``rows`` at the end. Raises PyMySQL's
    errors (the server's error packet, a lost connection)."""
    with conn.cursor(pymysql.cursors.SSCursor) as cur:
        cur.execute(query)
        result = conn._result
        if result is None or not result.unbuffered_active:  # no rows: not a SELECT
            rows.append(0)
            return
        reader = _RowReader(int(result.field_count), dialect)
        while not reader.done:
            data = _read(conn)
            yield reader.feed(data)
        result.unbuffered_active = False
        result.has_next = reader.more_results
        result.connection = None
        conn._next_seq_id = (reader.last_seq + 1) % 256
        rows.append(reader.count)


def _read(conn: Any) -> bytes:
    try:
        data: bytes = conn._rfile.read1(READ_BYTES)
    except OSError as exc:
        conn._force_close()
        raise pymysql.err.OperationalError(
            2013, f"Lost connection to MySQL server during query ({exc})"
        ) from exc
    if not data:
        conn._force_close()
        raise pymysql.err.OperationalError(
            2013, "Lost connection to MySQL server during query"
        )
    return data


class _RowReader:
    """Row packets in, dialect records out; holds at most one partial packet."""

    def __init__(self, columns: int, dialect: Dialect) -> None:
        self.columns = columns
        self.dialect = dialect
        self.count = 0
        self.done = False
        self.more_results = False
        self.last_seq = 0
        self._rest = b""
        self._long: list[bytes] = []  # the pieces of a row longer than a packet

    def feed(self, chunk: bytes) -> bytes:
        """The records completed by ``chunk`` (the rest of a packet is kept)."""
        data = self._rest + chunk if self._rest else chunk
        out: list[bytes] = []
        pos, end, columns, count = 0, len(data), self.columns, self.count
        while pos + _HEADER <= end:
            length = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
            stop = pos + _HEADER + length
            if stop > end:
                break
            self.last_seq = data[pos + 3]
            payload = data[pos + _HEADER : stop]
            pos = stop
            if length == _LONG_PACKET or self._long:
                self._long.append(payload)
                if length == _LONG_PACKET:
                    continue
                payload, self._long = b"".join(self._long), []
            if payload[0] >= _EOF and (payload[0] == _ERROR or length < 9):
                self._end(payload)
                break
            out.append(self._record(_fields(payload, columns), payload))
            count += 1
        self.count = count
        self._rest = data[pos:]
        return b"\n".join(out) + b"\n" if out else b""

    def _end(self, payload: bytes) -> None:
        """The EOF packet (its status says whether more results follow), or the
        server's error, raised."""
        self.done = True
        if payload[0] == _ERROR:
            pymysql.err.raise_mysql_exception(payload)
        status = int.from_bytes(payload[3:5], "little")
        self.more_results = bool(status & 8)  # SERVER_MORE_RESULTS_EXISTS

    def _record(self, fields: list[bytes | None], payload: bytes) -> bytes:
        """One row, its LF left out: its fields joined by the separator, escaped
        when the row holds a special byte (a length byte may look like one: the
        fields are then escaped for nothing, never wrongly)."""
        sep = self.dialect.separator
        if b"\\" in payload or sep in payload or b"\n" in payload:
            return sep.join([encode_field(v, self.dialect) for v in fields])
        if None in fields:
            return sep.join([NULL if v is None else v for v in fields])
        return sep.join(fields)  # type: ignore[arg-type]  # no None: checked


def _fields(payload: bytes, columns: int) -> list[bytes | None]:
    """A text-protocol row's values (length-encoded strings; 0xFB is NULL)."""
    fields: list[bytes | None] = []
    append = fields.append
    i = 0
    for _ in range(columns):
        size = payload[i]
        if size < _NULL_FIELD:
            append(payload[i + 1 : i + 1 + size])
            i += 1 + size
            continue
        if size == _NULL_FIELD:
            append(None)
            i += 1
            continue
        width = {0xFC: 2, 0xFD: 3, 0xFE: 8}[size]
        size = int.from_bytes(payload[i + 1 : i + 1 + width], "little")
        start = i + 1 + width
        append(payload[start : start + size])
        i = start + size
    return fields
