"""End to end, CopyActivity: the real runner, the local service, moto's S3 server
and real PostgreSQL and MariaDB servers.

The data is written here by hand in the DG's dialect (comma, no quotes, backslash
escapes, ``\\N`` for NULL), so the runner's own encoder is checked against the
dialect, not against itself: commas, backslashes, newlines, tabs, a carriage
return, an empty string, NULL and the text ``\\N`` go through S3 -> database ->
S3 and come back the same, gzip and a folder of many files included.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from typing import Any

from runner.localservice import LocalService
from tests.support.copytasks import copy, s3_node
from tests.support.dbservers import DbServer
from tests.support.pipelines import (
    default_object,
    statuses_sent,
    submit,
    wait_instances,
)
from tests.support.runners import RunnerProcess
from tests.support.sqltasks import (
    STOP_GRACE,
    activity_instance,
    assert_no_password,
    database_object,
    wait_activity,
)
from tests.support.waiting import wait_for

Spawn = Callable[..., RunnerProcess]

ROWS: list[tuple[int, str | None, str | None]] = [
    (1, "plain", "x"),
    (2, "comma, inside", "back\\slash"),
    (3, "new\nline", None),
    (4, "\\N", ""),
    (5, "tab\there", "cr\rhere"),
    (6, "ünïcödé, ok", "end\\"),
]


def encode(value: str | None, separator: str = ",") -> str:
    """The DG dialect, written out independently of runner/dbchild/dialect.py."""
    if value is None:
        return "\\N"
    specials = ("\\", separator, "\n")
    return "".join("\\" + c if c in specials else c for c in value)


def lines(rows: list[tuple[int, str | None, str | None]], separator: str = ",") -> str:
    return "".join(
        separator.join([str(r[0]), *(encode(v, separator) for v in r[1:])]) + "\n"
        for r in rows
    )


def decode(text: str, separator: str = ",") -> list[tuple[str | None, ...]]:
    """The DG dialect read back, also independently: ``raw`` is a field as
    written (``\\N`` is NULL only as a whole field), ``value`` unescaped."""
    records: list[tuple[str | None, ...]] = []
    fields: list[str | None] = []
    raw, value, escaped = "", "", False
    for char in text:
        if escaped:
            raw, value, escaped = raw + char, value + char, False
        elif char == "\\":
            raw, escaped = raw + char, True
        elif char in (separator, "\n"):
            fields.append(None if raw == "\\N" else value)
            raw, value = "", ""
            if char == "\n":
                records.append(tuple(fields))
                fields = []
        else:
            raw, value = raw + char, value + char
    return records


def table_node(**fields: Any) -> dict[str, Any]:
    return {
        "id": "Items",
        "name": "Items",
        "type": "SqlDataNode",
        "database": {"ref": "Db"},
        "table": "items",
        "createTableSql": "CREATE TABLE items (id INT, a TEXT, b TEXT)",
        "selectQuery": "SELECT id, a, b FROM items ORDER BY id",
        **fields,
    }


def expected() -> list[tuple[str | None, ...]]:
    return [(str(r[0]), r[1], r[2]) for r in ROWS]


def test_copy_round_trips_through_the_database(
    service: LocalService,
    dp: Any,
    spawn_runner: Spawn,
    s3_admin: Any,
    s3_bucket: str,
    any_db: DbServer,
) -> None:
    for index in range(0, len(ROWS), 2):  # a folder of gzipped files, 2 rows each
        body = gzip.compress(lines(ROWS[index : index + 2]).encode())
        s3_admin.put_object(Bucket=s3_bucket, Key=f"in/part-{index:03}.gz", Body=body)
    for index in range(20):  # and many empty ones
        s3_admin.put_object(
            Bucket=s3_bucket, Key=f"in/zz-{index:03}.gz", Body=gzip.compress(b"")
        )
    objects = [
        default_object(),
        database_object(any_db),
        {"id": "Csv", "name": "Csv", "type": "CSV"},
        {"id": "Tsv", "name": "Tsv", "type": "TSV"},
        s3_node(
            "In",
            directoryPath=f"s3://{s3_bucket}/in",
            compression="gzip",
            dataFormat={"ref": "Csv"},
        ),
        table_node(),
        s3_node("OutCsv", filePath=f"s3://{s3_bucket}/out/items.csv"),
        s3_node(
            "OutTsv",
            directoryPath=f"s3://{s3_bucket}/tsv/",
            compression="gzip",
            dataFormat={"ref": "Tsv"},
        ),
        copy("Load", "In", "Items"),
        copy("Export", "Items", "OutCsv", dependsOn={"ref": "Load"}),
        {  # a bare table: read whole (PostgreSQL: COPY items TO STDOUT)
            "id": "Whole",
            "name": "Whole",
            "type": "MySqlDataNode",
            "connectionString": any_db.url,
            "username": any_db.user,
            "*password": any_db.password,
            "table": "items",
        },
        copy("ExportTsv", "Whole", "OutTsv", dependsOn={"ref": "Load"}),
    ]
    pipeline_id = submit(dp, objects)
    runner = spawn_runner()
    wait_instances(dp, pipeline_id, {"FINISHED"}, timeout=60)
    stored = any_db.query("SELECT id, a, b FROM items ORDER BY id")
    assert [tuple(r) for r in stored] == ROWS
    got = s3_admin.get_object(Bucket=s3_bucket, Key="out/items.csv")["Body"].read()
    assert got.decode() == lines(ROWS)
    assert decode(got.decode()) == expected()
    tsv_key = "tsv/part-00000.tsv.gz"
    tsv = gzip.decompress(
        s3_admin.get_object(Bucket=s3_bucket, Key=tsv_key)["Body"].read()
    )
    assert sorted(tsv.decode().splitlines(keepends=True)) == sorted(
        lines(ROWS, "\t").splitlines(keepends=True)
    )
    finished = runner.events("task_finished")
    assert [e.get("rows") for e in finished] == [len(ROWS)] * 3
    assert_no_password(any_db, runner, service)


def test_s3_to_s3_copies_a_folder_into_one_file_in_another_format(
    service: LocalService,
    dp: Any,
    spawn_runner: Spawn,
    s3_admin: Any,
    s3_bucket: str,
) -> None:
    for index in range(3):
        s3_admin.put_object(
            Bucket=s3_bucket,
            Key=f"src/{index}.csv",
            Body=lines(ROWS[index * 2 : index * 2 + 2]).encode(),
        )
    objects = [
        default_object(),
        {"id": "Tsv", "name": "Tsv", "type": "TSV"},
        s3_node("In", directoryPath=f"s3://{s3_bucket}/src/"),
        s3_node("Out", filePath=f"s3://{s3_bucket}/all.tsv", dataFormat={"ref": "Tsv"}),
        copy("Join", "In", "Out"),
    ]
    pipeline_id = submit(dp, objects)
    spawn_runner()
    wait_instances(dp, pipeline_id, {"FINISHED"}, timeout=30)
    got = s3_admin.get_object(Bucket=s3_bucket, Key="all.tsv")["Body"].read().decode()
    assert got == lines(ROWS, "\t")


def test_custom_format_on_s3_input_is_refused_before_any_connection(
    service: LocalService,
    dp: Any,
    spawn_runner: Spawn,
    s3_bucket: str,
    pg_db: DbServer,
) -> None:
    objects = [
        default_object(),
        database_object(pg_db),
        {"id": "Mine", "name": "Mine", "type": "Custom", "columnSeparator": "|"},
        s3_node("In", filePath=f"s3://{s3_bucket}/x", dataFormat={"ref": "Mine"}),
        table_node(),
        copy("Load", "In", "Items"),
    ]
    pipeline_id = submit(dp, objects)
    spawn_runner()
    wait_activity(dp, pipeline_id, "Load", "FAILED")
    (sent,) = statuses_sent(service)
    assert sent["errorId"] == "UnsupportedDataFormat"
    assert "dp-object-s3datanode" in sent["errorMessage"]


def exports_running(db: DbServer) -> list[Any]:
    if db.engine == "postgresql":
        return db.query(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE 'COPY (SELECT pg_sl%%'"
        )
    # The export's statement holds the query, whole or wrapped (mysqlformat.py);
    # this one names the processlist, which the export's never does.
    return db.query(
        "SELECT id FROM information_schema.processlist"
        " WHERE info LIKE '%%SLEEP(60)%%' AND info NOT LIKE '%%processlist%%'"
    )


def test_cancel_mid_export_ends_the_query_and_leaves_no_object(
    service: LocalService,
    dp: Any,
    spawn_runner: Spawn,
    s3_admin: Any,
    s3_bucket: str,
    any_db: DbServer,
) -> None:
    slow = (
        "SELECT pg_sleep(60)" if any_db.engine == "postgresql" else "SELECT SLEEP(60)"
    )
    objects = [
        default_object(),
        database_object(any_db),
        table_node(selectQuery=slow),
        s3_node("Out", filePath=f"s3://{s3_bucket}/out/never.csv"),
        copy("Export", "Items", "Out"),
    ]
    pipeline_id = submit(dp, objects)
    runner = spawn_runner(*STOP_GRACE)
    wait_for(lambda: exports_running(any_db), 15, "the export on the server")
    instance_id = activity_instance(dp, pipeline_id, "Export")
    dp.set_status(pipelineId=pipeline_id, objectIds=[instance_id], status="TRY_CANCEL")
    runner.wait_event("task_finished", outcome="canceled")
    wait_for(lambda: not exports_running(any_db), 5, "the export to be gone")
    assert statuses_sent(service) == []
    listing = s3_admin.list_objects_v2(Bucket=s3_bucket)
    assert listing.get("KeyCount", 0) == 0
