"""End to end, RedshiftCopyActivity, as far as this machine allows (issue 30).

No Redshift cluster runs here. AWS's own LoadTsvFilesInS3ToRedshift and
RedshiftToRDS definitions (``tests/redshift_samples/``, copied unchanged from
``/work/shared/samples/`` with the values their READMEs ask for) are put to the
local service and run by the real runner, pointed at the test PostgreSQL, with the
target table created first and no ``queue``. Each reaches the database (BEGIN, the
``staging`` table) and fails only at its COPY or UNLOAD, which PostgreSQL does not
speak: FAILED ``SqlError:42601`` naming the step and the position. RedshiftToRDS's
RedshiftDatabase names its cluster by ``clusterId``; moto's clusters have no
endpoint that reaches a database, so the test gives that object a
``connectionString`` to the test PostgreSQL instead (the only change).

And the runner's own secret key, in its environment, appears in no output when
the COPY that carries it fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.localservice import LocalService
from runner.pipelinefile import definition_from_json
from tests.support.dbservers import DbServer
from tests.support.pipelines import default_object, instances, statuses_sent, submit
from tests.support.runners import RunnerProcess
from tests.support.sqltasks import STOP_GRACE, everything_written, running_sleeps
from tests.support.waiting import wait_for

Spawn = Callable[..., RunnerProcess]
SAMPLES = Path(__file__).parent / "redshift_samples"
SECRET_KEY = "rsSecretKey-" + "a1b2c3d4e5f6"  # a value to look for
SESSION_TOKEN = "rsToken-" + "f6e5d4c3b2a1"


def put_sample(
    dp: Any, name: str, values: dict[str, str], change: Callable[[dict[str, Any]], None]
) -> str:
    doc = json.loads((SAMPLES / f"{name}.json").read_text())
    given = json.loads(
        (SAMPLES / f"{name.split('__', maxsplit=1)[0]}.values.json").read_text()
    )
    for obj in doc["objects"]:
        change(obj)
    doc["values"] = {**given["values"], **values}
    defn = definition_from_json(doc)
    pipeline_id = str(dp.create_pipeline(name=name, uniqueId=name)["pipelineId"])
    answer = dp.put_pipeline_definition(
        pipelineId=pipeline_id,
        pipelineObjects=defn.pipeline_objects,
        parameterObjects=defn.parameter_objects,
        parameterValues=defn.parameter_values,
    )
    assert not answer["errored"], answer
    dp.activate_pipeline(pipelineId=pipeline_id)
    return pipeline_id


def jdbc(db: DbServer) -> str:
    return f"jdbc:postgresql://{db.host}:{db.port}/{db.database}?tcpKeepAlive=true"


def failed_status(service: LocalService) -> dict[str, Any]:
    """The FAILED status sent (the samples keep the default retries: each
    attempt fails the same way)."""
    sent = [s for s in statuses_sent(service) if s["taskStatus"] == "FAILED"]
    assert sent
    assert all(s["errorId"] == sent[0]["errorId"] for s in sent), sent
    return sent[0]


def wait_failed(dp: Any, pipeline_id: str, activity: str) -> None:
    """Until the activity's instance is FAILED, its retries spent."""

    def ended() -> bool:
        return any(
            key.startswith(f"@{activity}_") and fields.get("@status") == "FAILED"
            for key, fields in instances(dp, pipeline_id).items()
        )

    wait_for(ended, 90, f"{activity} FAILED")


@pytest.fixture
def load_tsv(
    dp: Any, pg_db: DbServer, s3_admin: Any, s3_bucket: str
) -> tuple[str, DbServer]:
    pg_db.query("CREATE SCHEMA schemanameinredshift AUTHORIZATION dp")
    pg_db.query(
        "CREATE TABLE schemanameinredshift.destredshifttablename"
        " (id INT PRIMARY KEY, v TEXT)"
    )
    pg_db.query("ALTER TABLE schemanameinredshift.destredshifttablename OWNER TO dp")
    s3_admin.put_object(Bucket=s3_bucket, Key="tsv/part-0", Body=b"1\tone\n")
    values = {
        "myRedshiftJdbcConnectStr": jdbc(pg_db),
        "myRedshiftDbName": pg_db.database,
        "myRedshiftUsername": pg_db.user,
        "myRedshiftPassword": pg_db.password,
        "*myRedshiftPassword": pg_db.password,
        "myInputTsvFilesS3Loc": f"s3://{s3_bucket}/tsv/part-0",
    }
    name = "LoadTsvFilesInS3ToRedshift__LoadTsvFilesInS3ToRedshift"
    return put_sample(dp, name, values, lambda obj: None), pg_db


# AWS's default retries (3 attempts, 10 min apart) in 1.2 s; the leases hold at 1x
@pytest.mark.leases_hold
@pytest.mark.time_scale(0.001)
def test_load_tsv_sample_reaches_the_database_and_fails_only_at_copy(
    service: LocalService, spawn_runner: Spawn, dp: Any, load_tsv: tuple[str, DbServer]
) -> None:
    pipeline_id, db = load_tsv
    runner = spawn_runner(worker_group="local")
    wait_failed(dp, pipeline_id, "RedshiftLoadActivity")
    sent = failed_status(service)
    assert sent["errorId"] == "SqlError:42601"
    assert "(COPY, statement 3)" in sent["errorMessage"]
    assert "at character" in sent["errorMessage"]
    steps = [e.get("step") for e in output_events(runner, "redshift_statement")]
    assert steps[:2] == ["BEGIN", "staging"]  # reached the database; COPY was next
    assert set(steps) == {"BEGIN", "staging"}  # and never past it, on any attempt
    assert db.query(
        "SELECT count(*) FROM schemanameinredshift.destredshifttablename"
    ) == [(0,)]
    assert db.password not in everything_written(runner)


# AWS's default retries (3 attempts, 10 min apart) in 1.2 s; the leases hold at 1x
@pytest.mark.leases_hold
@pytest.mark.time_scale(0.001)
def test_a_secret_key_in_the_runners_environment_appears_in_no_output(
    service: LocalService,
    spawn_runner: Spawn,
    dp: Any,
    load_tsv: tuple[str, DbServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline_id, _ = load_tsv
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    runner = spawn_runner(worker_group="local")
    wait_failed(dp, pipeline_id, "RedshiftLoadActivity")
    assert failed_status(service)["errorId"] == "SqlError:42601"
    failures = output_events(runner, "job_failed")
    assert failures
    assert all("(COPY, statement 3)" in e["message"] for e in failures)
    shown = [e["sql"] for e in output_events(runner, "redshift_statement")]
    assert shown, "no statement was shown"
    made = [e["made"] for e in output_events(runner, "redshift_copy_prepared")]
    assert made, "the COPY was never prepared"
    assert all("SECRET_ACCESS_KEY '***' SESSION_TOKEN '***'" in m for m in made)
    everything = everything_written(runner) + repr(statuses_sent(service))
    everything += repr([c.request for c in service.calls("ReportTaskProgress")])
    for secret in (SECRET_KEY, SESSION_TOKEN):
        assert secret not in everything
        assert secret not in json.dumps(failures + shown)


# AWS's default retries (3 attempts, 10 min apart) in 1.2 s; the leases hold at 1x
@pytest.mark.leases_hold
@pytest.mark.time_scale(0.001)
def test_redshift_to_rds_sample_fails_only_at_unload(
    service: LocalService,
    spawn_runner: Spawn,
    dp: Any,
    pg_db: DbServer,
    s3_bucket: str,
) -> None:
    pg_db.query("CREATE TABLE src (a INT, b TEXT)")
    pg_db.query("ALTER TABLE src OWNER TO dp")

    def to_test_postgres(obj: dict[str, Any]) -> None:
        if obj["id"] == "RedshiftCluster":
            del obj["clusterId"]
            obj["connectionString"] = jdbc(pg_db)

    values = {
        "myRedshiftDatabaseName": pg_db.database,
        "myRedshiftUsername": pg_db.user,
        "*myRedshiftPassword": pg_db.password,
        "myOutputS3Path": f"s3://{s3_bucket}/tmp",
        "myS3LogsPath": f"s3://{s3_bucket}/logs",
    }
    name = "RedshiftToRDS__RedshiftToRDS_WithoutRDSCreate"
    pipeline_id = put_sample(dp, name, values, to_test_postgres)
    runner = spawn_runner(worker_group="local")
    wait_failed(dp, pipeline_id, "RedshiftToS3")
    sent = failed_status(service)
    assert sent["errorId"] == "SqlError:42601"
    assert "(UNLOAD, statement 1)" in sent["errorMessage"]
    assert "at character 1" in sent["errorMessage"]
    assert pg_db.password not in everything_written(runner)


def output_events(runner: RunnerProcess, event: str) -> list[dict[str, Any]]:
    """The child's JSON lines (its StdOutput) with ``event``."""
    found = []
    for path in runner.work_dir.rglob("StdOutput"):
        for line in path.read_text().splitlines():
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            if parsed.get("event") == event:
                found.append(parsed)
    return found


def test_attempt_timeout_cancels_the_running_statement_on_the_server(
    service: LocalService,
    spawn_runner: Spawn,
    dp: Any,
    pg_db: DbServer,
    s3_bucket: str,
) -> None:
    """createTableSql runs when the table is missing: a pg_sleep there stands for
    any long statement of the load."""
    objects = [
        default_object(),
        {
            "id": "Db",
            "name": "Db",
            "type": "RedshiftDatabase",
            "connectionString": jdbc(pg_db),
            "username": pg_db.user,
            "*password": pg_db.password,
        },
        {
            "id": "In",
            "name": "In",
            "type": "S3DataNode",
            "filePath": f"s3://{s3_bucket}/x",
        },
        {
            "id": "Out",
            "name": "Out",
            "type": "RedshiftDataNode",
            "database": {"ref": "Db"},
            "tableName": "never_made",
            "createTableSql": "SELECT pg_sleep(60)",
        },
        {
            "id": "Load",
            "name": "Load",
            "type": "RedshiftCopyActivity",
            "input": {"ref": "In"},
            "output": {"ref": "Out"},
            "insertMode": "APPEND",
            "attemptTimeout": "3 seconds",
            "maximumRetries": "0",
        },
    ]
    pipeline_id = submit(dp, objects)
    runner = spawn_runner(*STOP_GRACE)
    wait_for(lambda: running_sleeps(pg_db), 15, "the sleep on the server")
    runner.wait_event("task_finished", timeout=20, outcome="failed")
    wait_for(lambda: not running_sleeps(pg_db), 5, "the sleep to be gone")
    wait_failed(dp, pipeline_id, "Load")
    assert failed_status(service)["errorId"] == "AttemptTimeout"
