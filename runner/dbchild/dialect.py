"""The Data Pipeline CSV/TSV dialect, and its translation to and from PostgreSQL's.

Owns: how a record is written and read in the dialect CopyActivity uses (DG:
dp-object-copyactivity, "the Unix/Linux variant of CSV"), and the two byte-level
translators the PostgreSQL fast path needs (COPY ... FROM STDIN / TO STDOUT in its
text format).

The dialect: fields separated by a comma (TSV: a tab), never quoted; a backslash
escapes the next character, so a backslash, the separator and a line feed inside a
value are written ``\\\\``, ``\\,`` and ``\\`` + LF; a record ends with LF; NULL is the
field ``\\N``. A backslash before any other character stands for that character. A
carriage return is plain data.

Must not: do I/O. Callers feed bytes in and take bytes out, chunk by chunk, so
memory stays flat whatever the size of the data.

Why this way: PostgreSQL's text format is nearly the same dialect (a backslash
escapes the delimiter and itself, ``\\N`` is NULL), so a load is a byte stream with a
few rare sequences rewritten by one compiled regex, never a Python loop per record:
that is what keeps a 1 GB load near ``psql \\copy``. MySQL and Redshift take batched
INSERTs, so their side decodes records (``RecordReader``) and encodes rows
(``encode_record``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

NULL = b"\\N"
_BACKSLASH = b"\\"


@dataclass(frozen=True, slots=True)
class Dialect:
    """CSV (comma) or TSV (tab); everything else is the same."""

    name: str
    separator: bytes

    @property
    def extension(self) -> str:
        return "." + self.name.lower()


CSV = Dialect("CSV", b",")
TSV = Dialect("TSV", b"\t")
DIALECTS = {"CSV": CSV, "TSV": TSV}


def encode_field(value: bytes | None, dialect: Dialect) -> bytes:
    """One field: ``\\N`` for None, else the value with its specials escaped."""
    if value is None:
        return NULL
    if _BACKSLASH in value:
        value = value.replace(_BACKSLASH, b"\\\\")
    if dialect.separator in value:
        value = value.replace(dialect.separator, _BACKSLASH + dialect.separator)
    if b"\n" in value:
        value = value.replace(b"\n", b"\\\n")
    return value


def encode_record(values: Sequence[bytes | None], dialect: Dialect) -> bytes:
    """One record, LF included."""
    return dialect.separator.join(encode_field(v, dialect) for v in values) + b"\n"


# A record: runs of plain bytes or escape pairs, up to an unescaped LF.
_RECORD = re.compile(rb"((?:[^\\\n]++|\\.)*+)\n", re.DOTALL)


class RecordReader:
    """Splits a stream of dialect bytes into records (lists of ``bytes | None``).
    ``feed`` returns the records completed by a chunk; ``finish`` the last one,
    when the data did not end with LF. Holds at most one partial record."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._token = re.compile(rb"\\.|" + re.escape(dialect.separator), re.DOTALL)
        self._rest = b""

    def feed(self, chunk: bytes) -> list[list[bytes | None]]:
        data = self._rest + chunk if self._rest else chunk
        records: list[list[bytes | None]] = []
        end = 0
        if _BACKSLASH not in data:
            end = data.rfind(b"\n") + 1
            lines = data[: end - 1].split(b"\n") if end else []
            sep = self._dialect.separator
            records = [list(line.split(sep)) for line in lines]
        else:
            # anchored at each record's start: a search could begin after a backslash
            match = _RECORD.match(data)
            while match is not None:
                records.append(self.decode(match.group(1)))
                end = match.end()
                match = _RECORD.match(data, end)
        self._rest = data[end:]
        return records

    def finish(self) -> list[list[bytes | None]]:
        rest, self._rest = self._rest, b""
        if not rest:
            return []
        if rest.endswith(_BACKSLASH) and _odd_tail(rest):
            raise ValueError("the data ends inside an escape sequence")
        return [self.decode(rest)]

    def decode(self, line: bytes) -> list[bytes | None]:
        """One record's fields, without its LF."""
        if _BACKSLASH not in line:
            return list(line.split(self._dialect.separator))
        sep = self._dialect.separator
        fields: list[bytes | None] = []
        start = 0
        for match in self._token.finditer(line):
            if match.group() == sep:
                fields.append(_value(line[start : match.start()]))
                start = match.end()
        fields.append(_value(line[start:]))
        return fields


_ESCAPED = re.compile(rb"\\(.)", re.DOTALL)


def _value(raw: bytes) -> bytes | None:
    if raw == NULL:
        return None
    return _ESCAPED.sub(rb"\1", raw) if _BACKSLASH in raw else raw


def _odd_tail(data: bytes) -> bool:
    """Whether ``data`` ends with an odd number of backslashes (an open escape)."""
    return (len(data) - len(data.rstrip(_BACKSLASH))) % 2 == 1


class _Carry:
    """Feeds a byte translator whole escape pairs: a chunk that ends with an open
    escape keeps its last byte for the next one."""

    def __init__(self) -> None:
        self._rest = b""

    def take(self, chunk: bytes) -> bytes:
        data = self._rest + chunk if self._rest else chunk
        if data.endswith(_BACKSLASH) and _odd_tail(data):
            self._rest, data = data[-1:], data[:-1]
        else:
            self._rest = b""
        return data

    def leftover(self) -> bytes:
        rest, self._rest = self._rest, b""
        return rest


# Dialect -> PostgreSQL text: escapes PostgreSQL reads differently (a letter or
# digit after a backslash, ``\.``), an escaped LF/CR (kept as ``\n``/``\r``, the
# spelling PostgreSQL promises to keep accepting), and a bare CR (PostgreSQL would
# take it for the end of the line).
# An escaped backslash is matched as a pair (kept as it is), so the scan stays
# aligned on pairs; ``\,`` and ``\N`` mean the same to both and are not matched.
_TO_PG = re.compile(rb"\\([\\\n\rbfnrtvx0-7.])")
_TO_PG_MAP = {b"\n": b"\\n", b"\r": b"\\r"}
_TO_PG_BARE = frozenset(b"bfnrtvx01234567.")


def _to_pg(match: re.Match[bytes]) -> bytes:
    escaped = match.group(1)
    if escaped == _BACKSLASH:
        return match.group()
    if escaped[0] in _TO_PG_BARE:
        return escaped
    return _TO_PG_MAP[escaped]


def dialect_to_pg(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Dialect bytes -> PostgreSQL text-format bytes (same delimiter), chunk by
    chunk; a chunk without a backslash or a CR passes through untouched."""
    carry = _Carry()
    for chunk in chunks:
        data = carry.take(chunk)
        # two passes, each a plain scan (one regex with both would test every
        # byte against both): escapes first, then the CRs left are bare ones
        if _BACKSLASH in data:
            data = _TO_PG.sub(_to_pg, data)
        if b"\r" in data:
            data = data.replace(b"\r", b"\\r")
        if data:
            yield data
    rest = carry.leftover()
    if rest:
        raise ValueError("the data ends inside an escape sequence")


# As above: ``\\`` is matched (and kept) so that ``\\n`` is never read as ``\n``.
_FROM_PG = re.compile(rb"\\([\\nrtbfv])")


def pg_to_dialect(dialect: Dialect) -> _PgToDialect:
    """A translator of PostgreSQL text-format bytes (COPY TO STDOUT with the
    dialect's delimiter) into dialect bytes."""
    return _PgToDialect(dialect)


class _PgToDialect:
    def __init__(self, dialect: Dialect) -> None:
        tab = b"\\\t" if dialect.separator == b"\t" else b"\t"
        self._map = {
            b"n": b"\\\n",
            b"r": b"\r",
            b"t": tab,
            b"b": b"\b",
            b"f": b"\f",
            b"v": b"\v",
            b"\\": b"\\\\",
        }
        self._carry = _Carry()

    def _sub(self, match: re.Match[bytes]) -> bytes:
        return self._map.get(match.group(1), match.group())

    def __call__(self, chunk: bytes) -> bytes:
        data = self._carry.take(chunk)
        if _BACKSLASH in data:
            data = _FROM_PG.sub(self._sub, data)
        return data

    def leftover(self) -> bytes:
        return self._carry.leftover()


# Dialect -> MySQL's LOAD DATA (FIELDS ESCAPED BY '\\'): MySQL reads the same
# escapes as the dialect (a backslash before the separator, itself or LF keeps it;
# the field ``\N`` is NULL; ``\N`` inside a value is "N") except six letters it
# turns into control bytes: those lose their backslash. ``\\`` is matched (and
# kept) so the scan stays aligned on pairs.
_TO_MYSQL = re.compile(rb"\\([\\0bnrtZ])")


def _to_mysql(match: re.Match[bytes]) -> bytes:
    escaped = match.group(1)
    return match.group() if escaped == _BACKSLASH else escaped


def dialect_to_mysql(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Dialect bytes -> bytes for MySQL's ``LOAD DATA`` with the same separator
    and ``ESCAPED BY '\\\\'``, chunk by chunk."""
    carry = _Carry()
    for chunk in chunks:
        data = carry.take(chunk)
        if _BACKSLASH in data:
            data = _TO_MYSQL.sub(_to_mysql, data)
        if data:
            yield data
    if carry.leftover():
        raise ValueError("the data ends inside an escape sequence")
