"""A MySQL or MariaDB result read straight off the socket into dialect bytes.

Owns: ``export``, which runs a query through PyMySQL (connecting, the query, the
column descriptions: the driver's work) and then reads the rows itself: the text
protocol's row packets, parsed a socket read (up to ``READ_BYTES``) at a time and
written as dialect records. When the server can write the records itself
(``mysqlformat.py``), each row is one field, the record, passed on as it is.

Must not: be imported by the runner (the child's ``dbsession`` uses it), or leave
the connection mid-result: every path either reads to the end of the rows (the
EOF packet, or the server's error) or, left half-read (a stop, a failed upload),
closes the connection (the rest of the rows are on their way); then the
driver's own state says the result is finished.

Why this way: PyMySQL turns every row into a tuple of Python values (a packet
object, a decoder call per field), and the copy then turned each value back into
bytes: about 40 us a row, nine times ``mariadb --batch``. The text protocol
already carries each value as the server's text, which is what a CSV holds, so a
row here costs one slice per field and a join; a field is escaped only when its
row holds a backslash, the separator or LF (one scan of the packet). The values
are the server's own text (a DATETIME(6) keeps its six digits, a TIME reads
``01:00:00``), as ``mariadb --batch`` writes them. A record the server wrote
costs one slice: the loop for it (``_RowReader._lines``) is kept apart from the
general one, as tight as it can be.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql  # type: ignore[import-untyped]  # PyMySQL ships no stubs

from runner.dbchild import mysqlformat
from runner.dbchild.dialect import NULL, Dialect, encode_field

#: One socket read: a few thousand rows, well under the child's memory bound.
READ_BYTES = 1024 * 1024
_HEADER = 4
_LONG_PACKET = 0xFFFFFF
_NULL_FIELD, _EOF, _ERROR = 0xFB, 0xFE, 0xFF


def export(conn: Any, query: str, dialect: Dialect, rows: list[int]) -> Iterator[bytes]:
    """Run ``query`` and yield its rows as dialect bytes, one socket read at a
    time; the row count is appended to ``rows`` at the end. Raises PyMySQL's
    errors (the server's error packet, a lost connection)."""
    formatted = mysqlformat.formatted_query(conn, query, dialect)
    with conn.cursor(pymysql.cursors.SSCursor) as cur:
        cur.execute(formatted or query)
        result = conn._result
        if result is None or not result.unbuffered_active:  # no rows: not a SELECT
            rows.append(0)
            return
        reader = _RowReader(int(result.field_count), dialect, formatted is not None)
        try:
            while not reader.done:
                data = _read(conn)
                yield reader.feed(data)
        finally:
            _finish(conn, result, reader)
        rows.append(reader.count)


def _finish(conn: Any, result: Any, reader: _RowReader) -> None:
    """Hand the connection back to PyMySQL: after the EOF packet or the server's
    error, in step for the next statement; left half-read, closed."""
    result.unbuffered_active = False
    result.connection = None
    if reader.done:
        result.has_next = reader.more_results
        conn._next_seq_id = (reader.last_seq + 1) % 256
    else:
        conn._force_close()


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
    """Row packets in, dialect records out; holds at most one partial packet.
    ``formatted``: each row is one field, a record the server wrote."""

    def __init__(self, columns: int, dialect: Dialect, formatted: bool) -> None:
        self.columns = columns
        self.dialect = dialect
        self.formatted = formatted
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
        pos = self._lines(data, out) if self.formatted else self._records(data, out)
        self._rest = data[pos:]
        return b"\n".join(out) + b"\n" if out else b""

    def _lines(self, data: bytes, out: list[bytes]) -> int:
        """Rows of one field (a record): each a slice, a packet that is not one
        short field (NULL, a long field, the end) through ``_packet``. Returns
        where the first packet not yet whole starts."""
        append = out.append
        pos, end, count, long_row = 0, len(data), 0, bool(self._long)
        while pos + _HEADER < end:
            stop = (
                pos + _HEADER + (data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16)
            )
            if stop > end:
                break
            if data[pos + _HEADER] < _NULL_FIELD and not long_row:
                append(data[pos + _HEADER + 1 : stop])
                count += 1
            else:
                self.last_seq = data[pos + 3]
                count += self._packet(data[pos + _HEADER : stop], stop - pos, out)
                long_row = bool(self._long)
                if self.done:
                    pos = stop
                    break
            pos = stop
        self.count += count
        return pos

    def _records(self, data: bytes, out: list[bytes]) -> int:
        """Rows of the query's own columns, each made a record here."""
        pos, end = 0, len(data)
        while pos + _HEADER <= end and not self.done:
            stop = (
                pos + _HEADER + (data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16)
            )
            if stop > end:
                break
            self.last_seq = data[pos + 3]
            self.count += self._packet(data[pos + _HEADER : stop], stop - pos, out)
            pos = stop
        return pos

    def _packet(self, payload: bytes, size: int, out: list[bytes]) -> int:
        """One packet (``size`` with its header): a row's record added to
        ``out``, a piece of a long row kept, or the end. The records added."""
        if size - _HEADER == _LONG_PACKET or self._long:
            self._long.append(payload)
            if size - _HEADER == _LONG_PACKET:
                return 0
            payload, self._long = b"".join(self._long), []
        if payload[0] >= _EOF and (payload[0] == _ERROR or size - _HEADER < 9):
            self._end(payload)
            return 0
        fields = _fields(payload, self.columns)
        if not self.formatted:
            out.append(self._record(fields, payload))
            return 1
        if fields[0] is None:  # CONCAT past max_allowed_packet: ruled out ahead
            raise pymysql.err.DataError(2000, "a row the server could not format")
        out.append(fields[0])
        return 1

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
