"""End to end, names and queries that try to become more SQL (issue 25): the real
runner, the local service, private PostgreSQL and MariaDB servers and moto.

A ``table`` that holds statements ends FAILED ``InvalidField`` before any connection,
and the victim table survives. A ``selectQuery`` that holds more than one statement
ends FAILED, and no process of the task is left: the export never spins on a second
COPY's result (it did: 98 % CPU, forever, with heartbeats keeping the lease).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psutil
import pytest

from runner.localservice import LocalService
from tests.support.copytasks import copy, s3_node
from tests.support.dbservers import DbServer
from tests.support.pipelines import default_object, statuses_sent, submit
from tests.support.runners import RunnerProcess
from tests.support.sqltasks import database_object, wait_activity
from tests.support.waiting import wait_for

Spawn = Callable[..., RunnerProcess]
INJECTED = "(SELECT 1) TO STDOUT; DROP TABLE victim; COPY (SELECT 1)"


def export_pipeline(bucket: str, db: DbServer, **source: Any) -> list[dict[str, Any]]:
    return [
        default_object(),
        database_object(db),
        {
            "id": "Src",
            "name": "Src",
            "type": "SqlDataNode",
            "database": {"ref": "Db"},
            **source,
        },
        s3_node("Out", filePath=f"s3://{bucket}/out/x.csv"),
        copy("Export", "Src", "Out"),
    ]


def no_task_left(runner: RunnerProcess) -> bool:
    return not psutil.Process(runner.process.pid).children(recursive=True)


def test_a_table_that_holds_statements_is_refused_and_the_victim_survives(
    service: LocalService,
    dp: Any,
    spawn_runner: Spawn,
    s3_bucket: str,
    any_db: DbServer,
) -> None:
    any_db.query("CREATE TABLE victim (x INT)")
    if any_db.engine == "postgresql":  # the task's user could drop it
        any_db.query("ALTER TABLE victim OWNER TO dp")
    objects = export_pipeline(s3_bucket, any_db, table=INJECTED)
    pipeline_id = submit(dp, objects)
    spawn_runner()
    wait_activity(dp, pipeline_id, "Export", "FAILED")
    (sent,) = statuses_sent(service)
    assert sent["errorId"] == "InvalidField"
    assert "table" in sent["errorMessage"]
    assert "'Src'" in sent["errorMessage"]
    assert any_db.query("SELECT count(*) FROM victim") == [(0,)]


def test_a_bad_schema_name_is_refused_naming_the_field(
    service: LocalService,
    dp: Any,
    spawn_runner: Spawn,
    s3_bucket: str,
    pg_db: DbServer,
) -> None:
    objects = export_pipeline(s3_bucket, pg_db, table="t", schemaName="public;--")
    pipeline_id = submit(dp, objects)
    spawn_runner()
    wait_activity(dp, pipeline_id, "Export", "FAILED")
    (sent,) = statuses_sent(service)
    assert sent["errorId"] == "InvalidField"
    assert "schemaName" in sent["errorMessage"]


def test_quoted_and_dotted_names_are_used_as_written(
    service: LocalService,
    dp: Any,
    spawn_runner: Spawn,
    s3_admin: Any,
    s3_bucket: str,
    pg_db: DbServer,
) -> None:
    pg_db.query('CREATE TABLE public."Odd ""Name""" (x INT)')
    pg_db.query('INSERT INTO public."Odd ""Name""" VALUES (7)')
    pg_db.query('ALTER TABLE public."Odd ""Name""" OWNER TO dp')
    objects = export_pipeline(s3_bucket, pg_db, table='public."Odd ""Name"""')
    pipeline_id = submit(dp, objects)
    spawn_runner()
    wait_activity(dp, pipeline_id, "Export", "FINISHED")
    got = s3_admin.get_object(Bucket=s3_bucket, Key="out/x.csv")["Body"].read()
    assert got == b"7\n"


@pytest.mark.parametrize(
    "query",
    [
        "COPY (SELECT 1) TO STDOUT; SELECT 1",
        # the shape that used to spin: a second COPY after the first one's end
        "SELECT 1) TO STDOUT; COPY (SELECT 1",
    ],
)
def test_a_select_query_of_several_statements_fails_and_leaves_no_child(
    service: LocalService,
    dp: Any,
    spawn_runner: Spawn,
    s3_bucket: str,
    any_db: DbServer,
    query: str,
) -> None:
    objects = export_pipeline(s3_bucket, any_db, table="t", selectQuery=query)
    pipeline_id = submit(dp, objects)
    runner = spawn_runner()
    wait_activity(dp, pipeline_id, "Export", "FAILED")
    (sent,) = statuses_sent(service)
    assert sent["errorId"].startswith("SqlError:")
    wait_for(lambda: no_task_left(runner), 10, "no process of the task left")
