"""CopyActivity's work, in the database child: S3 to SQL, SQL to S3, S3 to S3.

Owns: moving records between the data nodes a job names (``copy.py`` builds the
job in the runner), chunk by chunk, with the row count as the result.

    S3 -> SQL   every file of the node in key order (gunzipped), into the table
                (PostgreSQL: COPY FROM STDIN; MySQL, Redshift: INSERT batches),
                ``createTableSql`` first when the table does not exist
    SQL -> S3   ``selectQuery`` (or the whole ``table``) streamed from the server
                (PostgreSQL: COPY TO STDOUT; others: a server-side cursor) into one
                multipart upload: the ``filePath``, or ``part-00000.csv`` (``.tsv``,
                ``.gz``) under the ``directoryPath``
    S3 -> S3    file to file, folder to folder (names kept), folder to file (joined);
                bytes pass through when both formats agree, else records are
                re-encoded

Must not: be imported by the runner (it imports the drivers, through
``dbsession``).

Why this way: a load reads S3 a few chunks ahead in a thread of its own
(``readahead``), so the S3 side and the database side overlap. The stop thread
(``dbjob.StopWatch``) cancels the statement on the server, and every chunk
checks the stop, so a stop ends a copy within one chunk; the load's transaction
is then rolled back and the upload aborted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from runner.aws.s3stream import S3Streams
from runner.dbchild import dbsession, sqlscript
from runner.dbchild.dialect import DIALECTS, Dialect, RecordReader, encode_record
from runner.dbchild.readahead import read_ahead

Check = Callable[[], None]
Log = Callable[..., None]


def run_copy(
    job: Mapping[str, Any],
    streams: S3Streams,
    check: Check,
    on_session: Callable[[dbsession.Session], None],
    log: Log,
) -> int:
    """Copy ``job["input"]`` to ``job["output"]``; the number of records. Raises
    ``SqlError``, ``StagingError`` or the stop's exception (``check``)."""
    source, target = job["input"], job["output"]
    if source["kind"] == "s3" and target["kind"] == "sql":
        session = dbsession.connect(target["connection"])
        on_session(session)
        return _s3_to_sql(
            source=source,
            target=target,
            session=session,
            streams=streams,
            check=check,
            log=log,
        )
    if source["kind"] == "sql" and target["kind"] == "s3":
        session = dbsession.connect(source["connection"])
        on_session(session)
        return _sql_to_s3(source, target, session, streams, check)
    return _s3_to_s3(source, target, streams, check)


def _dialect(node: Mapping[str, Any]) -> Dialect:
    return DIALECTS[str(node.get("format") or "CSV")]


def _s3_to_sql(
    *,
    source: Mapping[str, Any],
    target: Mapping[str, Any],
    session: dbsession.Session,
    streams: S3Streams,
    check: Check,
    log: Log,
) -> int:
    table = target.get("table") or ""
    create = target.get("create")
    if create and not session.table_exists(table):
        session.execute(create, None)
        log("copy_table_created", table=table)
    insert = target.get("insert")
    if insert:
        statement = sqlscript.split(insert, mysql=session.engine == "mysql")[0]
        insert = statement.bound_text()
    # closed whatever happens, so the read-ahead thread ends with the load
    with contextlib.closing(read_ahead(_node_chunks(source, streams, check))) as chunks:
        return session.load(table, insert, chunks, _dialect(source))


def _node_chunks(
    node: Mapping[str, Any], streams: S3Streams, check: Check
) -> Iterator[bytes]:
    """Every file of an S3 node, in key order, each ending in LF."""
    for uri in streams.keys(node["uri"]):
        yield from _file_chunks(uri, node, streams, check)


def _file_chunks(
    uri: str, node: Mapping[str, Any], streams: S3Streams, check: Check
) -> Iterator[bytes]:
    last = b"\n"
    for chunk in streams.read(uri, gzip=bool(node.get("gzip"))):
        check()
        if chunk:
            last = chunk[-1:]
            yield chunk
    if last != b"\n":
        yield b"\n"


def _sql_to_s3(
    source: Mapping[str, Any],
    target: Mapping[str, Any],
    session: dbsession.Session,
    streams: S3Streams,
    check: Check,
) -> int:
    # the pipeline's own SQL, as the Java runner runs it; a bare table is read whole
    select = (source.get("select") or "").strip().rstrip(";").strip()
    query = select or f"SELECT * FROM {source.get('table')}"  # noqa: S608
    dialect = _dialect(target)
    writer = streams.writer(
        _target_uri(target, dialect, "part-00000"),
        gzip=bool(target.get("gzip")),
        sse=bool(target.get("sse", True)),
    )
    rows: list[int] = []
    try:
        whole = None if select else source.get("table")
        for data in session.export(query, dialect, rows, table=whole):
            check()
            writer.write(data)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return rows[0] if rows else 0


def _target_uri(node: Mapping[str, Any], dialect: Dialect, name: str) -> str:
    uri = str(node["uri"])
    if not uri.endswith("/"):
        return uri
    return uri + name + dialect.extension + (".gz" if node.get("gzip") else "")


def _s3_to_s3(
    source: Mapping[str, Any],
    target: Mapping[str, Any],
    streams: S3Streams,
    check: Check,
) -> int:
    """File or folder to file (joined), or to a folder (names kept)."""
    keys = streams.keys(source["uri"])
    base = str(source["uri"])
    if not str(target["uri"]).endswith("/"):
        return _copy_files(
            keys,
            dest=str(target["uri"]),
            source=source,
            target=target,
            streams=streams,
            check=check,
        )
    count = 0
    for uri in keys:
        name = uri[len(base) :] if base.endswith("/") else uri.rsplit("/", 1)[-1]
        count += _copy_files(
            [uri],
            dest=str(target["uri"]) + name,
            source=source,
            target=target,
            streams=streams,
            check=check,
        )
    return count


def _copy_files(
    keys: list[str],
    *,
    dest: str,
    source: Mapping[str, Any],
    target: Mapping[str, Any],
    streams: S3Streams,
    check: Check,
) -> int:
    """``keys`` into one object ``dest``; the records counted on the way."""
    reader = RecordReader(_dialect(source))
    same = _dialect(source) == _dialect(target)
    writer = streams.writer(
        dest, gzip=bool(target.get("gzip")), sse=bool(target.get("sse", True))
    )
    count = 0
    try:
        for uri in keys:
            for chunk in _file_chunks(uri, source, streams, check):
                records = reader.feed(chunk)
                count += len(records)
                writer.write(chunk if same else _encode(records, _dialect(target)))
        last = reader.finish()
        count += len(last)
        if not same and last:
            writer.write(_encode(last, _dialect(target)))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return count


def _encode(records: list[list[bytes | None]], dialect: Dialect) -> bytes:
    return b"".join(encode_record(record, dialect) for record in records)
