"""SqlActivity and CopyActivity as plans, in-process: what they refuse, what their
job carries and where, the RDS and Redshift lookups against moto's server (up to
the lookup: nothing connects to a moto endpoint), the job handed to a real child
on stdin, and what the runner itself never imports."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import structlog
from structlog.testing import capture_logs

from runner.activities import ActivityContext, Plan, Process, database, plan
from runner.attempt import AttemptPaths
from runner.aws.s3 import S3
from runner.errors import ActivityError
from runner.supervisor import Supervisor
from runner.taskmodel import Task
from tests.support.runners import REPO
from tests.support.tasks import make_task

PASSWORD = "pw-" + "9f3c1b7a"  # a value to look for, not a real secret


def context(tmp_path: Path) -> ActivityContext:
    paths = AttemptPaths(tmp_path / "attempt")
    paths.workdir.mkdir(parents=True)
    s3 = S3(region=None, log=structlog.get_logger())  # never called by planning
    return ActivityContext(paths=paths, s3=s3, region="us-east-1")


def sql_task(database: list[tuple[str, ...]], *fields: tuple[str, ...]) -> Task:
    return make_task(
        [
            ("type", "SqlActivity"),
            ("database", "ref", "Db"),
            *(fields or [("script", "SELECT ?"), ("scriptArgument", "1")]),
        ],
        extra={"Db": [("*password", PASSWORD), *database]},
    )


JDBC = [
    ("type", "JdbcDatabase"),
    ("connectionString", "jdbc:postgresql://db.internal:6432/sales?sslmode=require"),
    ("jdbcDriverClass", "org.postgresql.Driver"),
    ("username", "etl"),
    ("jdbcProperties", "connectTimeout=4"),
]


def main(made: Plan) -> Process:
    assert isinstance(made.main, Process)
    return made.main


def job_of(made: Plan) -> dict[str, Any]:
    stdin = main(made).stdin
    assert stdin is not None
    return dict(json.loads(stdin()))


def test_sql_job_goes_on_stdin_and_never_in_argv_or_env(tmp_path: Path) -> None:
    made = plan(sql_task(JDBC), context(tmp_path))
    process = main(made)
    assert PASSWORD not in repr(list(process.argv())) + repr(dict(process.env))
    job = job_of(made)
    assert job["connection"] == {
        "engine": "postgresql",
        "host": "db.internal",
        "port": 6432,
        "database": "sales",
        "user": "etl",
        "password": PASSWORD,
        "options": {"ssl": "require", "connect_timeout_s": "4.0"},
    }
    assert (job["script"], job["arguments"], job["queue"]) == ("SELECT ?", ["1"], None)
    assert list(process.argv())[1:] == ["-m", "runner.dbchild"]


@pytest.mark.parametrize(
    ("database", "fields", "error_id", "words"),
    [
        (JDBC, [("script", "x"), ("scriptUri", "s3://b/k")], "InvalidField", "one of"),
        (JDBC, [("queue", "q")], "MissingField", "one of 'script'"),
        (
            [("type", "MongoDatabase")],
            [("script", "x")],
            "UnsupportedDatabase",
            "Mongo",
        ),
        ([("type", "RdsDatabase")], [("script", "x")], "MissingField", "rdsInstanceId"),
        (
            [("type", "JdbcDatabase"), ("connectionString", "jdbc:db2://h/x")],
            [("script", "x")],
            "InvalidField",
            "jdbc:postgresql://",
        ),
    ],
)
def test_bad_sql_definitions_fail_with_a_named_error(
    tmp_path: Path,
    database: list[tuple[str, ...]],
    fields: list[tuple[str, ...]],
    error_id: str,
    words: str,
) -> None:
    with pytest.raises(ActivityError) as caught:
        plan(sql_task(database, *fields), context(tmp_path))
    assert caught.value.error_id == error_id
    assert words in caught.value.message


REDSHIFT_DB = [
    ("type", "RedshiftDatabase"),
    ("connectionString", "jdbc:redshift://cluster.internal:5439/dev"),
    ("username", "etl"),
    ("*password", PASSWORD),
]
REDSHIFT_NODE = [
    ("type", "RedshiftDataNode"),
    ("database", "ref", "Db"),
    ("schemaName", "sales"),
    ("tableName", "orders"),
    ("primaryKeys", "id"),
    ("primaryKeys", "region"),
]
TSV_IN = [
    ("type", "S3DataNode"),
    ("filePath", "s3://b/in.tsv"),
    ("dataFormat", "ref", "Tsv"),
]


def redshift_task(
    source: list[tuple[str, ...]],
    target: list[tuple[str, ...]],
    *fields: tuple[str, ...],
) -> Task:
    return make_task(
        [
            ("type", "RedshiftCopyActivity"),
            ("input", "ref", "In"),
            ("output", "ref", "Out"),
            *(fields or [("insertMode", "KEEP_EXISTING")]),
        ],
        extra={
            "In": source,
            "Out": target,
            "Db": REDSHIFT_DB,
            "Tsv": [("type", "TSV")],
        },
    )


def test_redshift_copy_plans_a_load_with_its_fields(tmp_path: Path) -> None:
    task = redshift_task(
        TSV_IN,
        REDSHIFT_NODE,
        ("insertMode", "overwrite_existing"),
        ("transformSql", "SELECT * FROM staging"),
        ("commandOptions", "IGNOREHEADER 1"),
        ("queue", "etl"),
    )
    job = job_of(plan(task, context(tmp_path)))
    assert job["kind"] == "redshift_copy"
    assert job["direction"] == "load"
    assert job["insert_mode"] == "OVERWRITE_EXISTING"
    assert job["table"] == "sales.orders"
    assert job["primary_keys"] == ["id", "region"]
    assert job["source"] == {
        "kind": "s3",
        "uri": "s3://b/in.tsv",
        "gzip": False,
        "format": "TSV",
    }
    assert job["command_options"] == ["IGNOREHEADER 1"]
    assert job["queue"] == "etl"
    assert job["connection"]["engine"] == "redshift"


def test_redshift_copy_plans_an_unload(tmp_path: Path) -> None:
    out = [("type", "S3DataNode"), ("directoryPath", "s3://b/out/")]
    job = job_of(plan(redshift_task(REDSHIFT_NODE, out), context(tmp_path)))
    assert job["direction"] == "unload"
    assert job["target"]["uri"] == "s3://b/out/"


@pytest.mark.parametrize(
    ("source", "target", "fields", "error_id", "words"),
    [
        (
            TSV_IN,
            REDSHIFT_NODE,
            [("insertMode", "MERGE")],
            "InvalidField",
            "insertMode",
        ),
        (TSV_IN, REDSHIFT_NODE, [("queue", "q")], "MissingField", "insertMode"),
        (TSV_IN, TSV_IN, [], "UnsupportedCopy", "S3DataNode to S3DataNode"),
        (
            TSV_IN,
            [*REDSHIFT_NODE[:3], ("tableName", "t; DROP TABLE x")],
            [],
            "InvalidField",
            "tableName",
        ),
        (
            TSV_IN,
            [*REDSHIFT_NODE, ("primaryKeys", "a b")],
            [],
            "InvalidField",
            "primaryKeys",
        ),
    ],
)
def test_redshift_copy_refuses_what_the_dg_does_not_allow(
    tmp_path: Path,
    source: list[tuple[str, ...]],
    target: list[tuple[str, ...]],
    fields: list[tuple[str, ...]],
    error_id: str,
    words: str,
) -> None:
    with pytest.raises(ActivityError) as caught:
        plan(redshift_task(source, target, *fields), context(tmp_path))
    assert caught.value.error_id == error_id
    assert words in caught.value.message


def copy_task(source: list[tuple[str, ...]], target: list[tuple[str, ...]]) -> Task:
    return make_task(
        [("type", "CopyActivity"), ("input", "ref", "In"), ("output", "ref", "Out")],
        extra={"In": source, "Out": target, "Db": [*JDBC, ("*password", PASSWORD)]},
    )


S3_IN = [("type", "S3DataNode"), ("filePath", "s3://b/in.csv")]
TABLE = [("type", "SqlDataNode"), ("table", "t"), ("database", "ref", "Db")]


@pytest.mark.parametrize(
    ("source", "target", "error_id"),
    [
        (TABLE, TABLE, "UnsupportedCopy"),
        ([*S3_IN, ("compression", "snappy")], TABLE, "UnsupportedCompression"),
        ([("type", "DynamoDBDataNode")], TABLE, "UnsupportedCopy"),
        ([("type", "S3DataNode")], TABLE, "InvalidField"),
        (S3_IN, [("type", "SqlDataNode"), ("database", "ref", "Db")], "MissingField"),
    ],
)
def test_copies_outside_the_dgs_limits_are_refused(
    tmp_path: Path,
    source: list[tuple[str, ...]],
    target: list[tuple[str, ...]],
    error_id: str,
) -> None:
    with pytest.raises(ActivityError) as caught:
        plan(copy_task(source, target), context(tmp_path))
    assert caught.value.error_id == error_id


def test_copy_job_names_both_nodes(tmp_path: Path) -> None:
    source = [*S3_IN, ("compression", "gzip"), ("s3EncryptionType", "NONE")]
    job = job_of(
        plan(copy_task(source, [*TABLE, ("schemaName", "s")]), context(tmp_path))
    )
    assert job["input"] == {
        "kind": "s3",
        "uri": "s3://b/in.csv",
        "gzip": True,
        "format": "CSV",
        "sse": False,
    }
    assert job["output"]["table"] == "s.t"
    assert job["output"]["connection"]["password"] == PASSWORD


# --- lookups against moto's server ----------------------------------------------


@pytest.fixture
def aws_lookups(moto_server: str, s3_env: dict[str, str], monkeypatch: Any) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL_RDS", moto_server)
    monkeypatch.setenv("AWS_ENDPOINT_URL_REDSHIFT", moto_server)
    return moto_server


def run_before(made: Plan) -> None:
    for step in made.before:
        step.run()


def test_rds_database_is_resolved_to_its_endpoint(
    tmp_path: Path, aws_lookups: str
) -> None:
    rds = boto3.client("rds", endpoint_url=aws_lookups)
    rds.create_db_instance(
        DBInstanceIdentifier="orders-db",
        Engine="mysql",
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        MasterUsername="admin",
        MasterUserPassword="irrelevant-123",
        DBName="orders",
    )
    database = [("type", "RdsDatabase"), ("rdsInstanceId", "orders-db")]
    made = plan(sql_task([*database, ("username", "etl")]), context(tmp_path))
    with capture_logs() as logs:
        run_before(made)
    (resolved,) = [e for e in logs if e["event"] == "database_resolved"]
    assert resolved["engine"] == "mysql"
    assert resolved["port"] == 3306
    assert "orders-db" in resolved["host"]
    connection = job_of(made)["connection"]
    assert (connection["host"], connection["engine"]) == (resolved["host"], "mysql")
    assert connection["database"] == "orders"


def test_redshift_cluster_is_resolved_and_its_queue_kept(
    tmp_path: Path, aws_lookups: str
) -> None:
    redshift = boto3.client("redshift", endpoint_url=aws_lookups)
    redshift.create_cluster(
        ClusterIdentifier="warehouse",
        NodeType="dc2.large",
        ClusterType="single-node",
        MasterUsername="admin",
        MasterUserPassword="Irrelevant123",
        DBName="dev",
    )
    database = [("type", "RedshiftDatabase"), ("clusterId", "warehouse")]
    made = plan(
        sql_task(database, ("script", "SELECT 1"), ("queue", "etl")), context(tmp_path)
    )
    with capture_logs() as logs:
        run_before(made)
    (resolved,) = [e for e in logs if e["event"] == "database_resolved"]
    assert (resolved["engine"], resolved["port"]) == ("redshift", 5439)
    job = job_of(made)
    assert job["connection"]["engine"] == "redshift"
    assert job["queue"] == "etl"


def test_unknown_rds_instance_fails_the_lookup(
    tmp_path: Path, aws_lookups: str
) -> None:
    database = [("type", "RdsDatabase"), ("rdsInstanceId", "nope")]
    made = plan(sql_task(database), context(tmp_path))
    with pytest.raises(ActivityError) as caught:
        run_before(made)
    assert caught.value.error_id == "DatabaseLookupFailed"
    assert "'nope'" in caught.value.message


# --- the child's stdin, and what the runner imports -------------------------------


HANDSHAKE_COUNTER = (
    "from runner.dbchild import handshake; handshake.make_undumpable();"
    " print(len(handshake.receive_job()))"
)


def test_a_large_job_reaches_the_child_whole_after_its_handshake(
    tmp_path: Path,
) -> None:
    job = b"x" * (3 * 1024 * 1024)  # far past a socket's buffer
    counter = HANDSHAKE_COUNTER
    child = Supervisor.spawn(
        [sys.executable, "-c", counter],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        stdout=tmp_path / "out",
        stderr=tmp_path / "err",
        marker="test-stdin",
        log=structlog.get_logger(),
        stdin=job,
    )
    outcome = child.wait_exit(30)
    assert outcome is not None
    assert outcome.returncode == 0, (tmp_path / "err").read_text()
    assert (tmp_path / "out").read_text() == f"{len(job)}\n"


def test_a_child_that_never_says_ready_gets_nothing_and_ends(tmp_path: Path) -> None:
    """fd 0 is a socket that holds nothing until the handshake: read without it,
    the child waits, and a stop ends the child and the hand-off's thread."""
    peek = (
        "import socket, select; s = socket.socket(fileno=0);"
        " print(select.select([s], [], [], 0.5)[0] == [])"
    )
    child = Supervisor.spawn(
        [sys.executable, "-c", peek],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        stdout=tmp_path / "out",
        stderr=tmp_path / "err",
        marker="test-nohandshake",
        log=structlog.get_logger(),
        stdin=b"secret job",
    )
    outcome = child.wait_exit(30)
    assert outcome is not None
    assert outcome.returncode == 0, (tmp_path / "err").read_text()
    assert (tmp_path / "out").read_text() == "True\n"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        t.name == f"handoff-{child.pid}" for t in threading.enumerate()
    ):
        threading.Event().wait(0.02)
    assert not [t for t in threading.enumerate() if t.name == f"handoff-{child.pid}"]


def imported_after(statement: str) -> list[str]:
    probe = (
        f"import json, sys\n{statement}\n"
        "print(json.dumps([m for m in ('psycopg', 'pymysql') if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return list(json.loads(done.stdout))


def test_the_runner_never_imports_a_driver() -> None:
    assert imported_after("import runner.cli, runner.activities, runner.worker") == []
    # the child: a driver once its job names the engine, and only that one
    assert imported_after("import runner.dbchild.dbjob") == []
    assert imported_after("import runner.dbchild.pgsession") == ["psycopg"]
    assert imported_after("import runner.dbchild.mysqlsession") == ["pymysql"]


def test_script_uri_is_fetched_first_and_run_as_fetched(
    tmp_path: Path, s3_admin: Any, s3_bucket: str
) -> None:
    script = "INSERT INTO t VALUES ('#{not.evaluated}', ?);\n"
    s3_admin.put_object(Bucket=s3_bucket, Key="sql/load.sql", Body=script.encode())
    task = sql_task(
        JDBC,
        ("scriptUri", f"s3://{s3_bucket}/sql/load.sql"),
        ("scriptArgument", "x"),
    )
    ctx = context(tmp_path)
    made = plan(task, ActivityContext(paths=ctx.paths, s3=S3(region=None, log=ctx.log)))
    assert [step.name for step in made.before] == ["fetch_script"]
    run_before(made)
    job = job_of(made)
    assert (job["script"], job["arguments"]) == (script, ["x"])


def test_java_driver_fields_are_noted_once(tmp_path: Path) -> None:
    database._noted_java_fields.clear()
    with capture_logs() as logs:
        plan(sql_task(JDBC), context(tmp_path / "first"))
        plan(sql_task(JDBC), context(tmp_path / "second"))
    notes = [e for e in logs if e["event"] == "jdbc_driver_fields_ignored"]
    assert [n["fields"] for n in notes] == [["jdbcDriverClass"]]
