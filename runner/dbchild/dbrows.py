"""Rows between the dialect and a driver: decoded records inserted in batches,
fetched rows encoded, for the engines that take no COPY (MySQL, Redshift) and for
``insertQuery`` loads.

Owns: ``insert_batches``, ``encode_batches`` and ``field_bytes`` (how a fetched
value is written). Must not: talk to a driver itself: the caller passes the
function that runs a batch, or the cursor to fetch from.

Why: both engines' sessions (``dbsession.py``) share the same record loop; the
batch is bounded in rows and in bytes (Redshift takes at most 16 MB a statement,
MySQL a ``max_allowed_packet``), so memory stays flat.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from runner.dbchild import redshiftsql
from runner.dbchild.dialect import Dialect, RecordReader, encode_record

Param = str | None
BATCH_ROWS = 1000
BATCH_BYTES = 4 * 1024 * 1024  # under Redshift's 16 MB statement, MySQL's packet


def _text(value: bytes | None) -> Param:
    return None if value is None else value.decode("utf-8")


def field_bytes(value: object) -> bytes | None:
    """A fetched value as dialect bytes (None stays None; booleans as t/f, as
    PostgreSQL's COPY writes them; times in ISO form with a space)."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ").encode()
    return str(value).encode()


def insert_batches(
    run: Callable[[str, list[list[Param]]], object],
    table: str,
    insert: str | None,
    chunks: Iterable[bytes],
    dialect: Dialect,
) -> int:
    """Decode records and insert them a batch at a time (``BATCH_ROWS`` rows or
    ``BATCH_BYTES``, whichever comes first); the row count."""
    reader = RecordReader(dialect)
    sql: str | None = insert
    batch: list[list[Param]] = []
    count = size = 0
    for records in _records(reader, chunks):
        for record in records:
            if sql is None:
                sql = redshiftsql.insert_for_table(table, len(record))
            batch.append([_text(v) for v in record])
            size += sum(len(v) for v in record if v is not None)
            if len(batch) >= BATCH_ROWS or size >= BATCH_BYTES:
                run(sql, batch)
                count, batch, size = count + len(batch), [], 0
    if batch and sql is not None:
        run(sql, batch)
        count += len(batch)
    return count


def _records(
    reader: RecordReader, chunks: Iterable[bytes]
) -> Iterator[list[list[bytes | None]]]:
    for chunk in chunks:
        yield reader.feed(chunk)
    yield reader.finish()


def encode_batches(cur: Any, dialect: Dialect, rows: list[int]) -> Iterator[bytes]:
    count = 0
    while True:
        batch = cur.fetchmany(BATCH_ROWS)
        if not batch:
            break
        count += len(batch)
        yield b"".join(
            encode_record([field_bytes(v) for v in row], dialect) for row in batch
        )
    rows.append(count)
