"""AWS's own shell, SQL and copy definitions as exported DAGs in a real Airflow
(``make test-airflow``; marked ``airflow``, so ``make test`` deselects them).

The definitions are the copies in ``tests/localservice/samples/`` (AWS's
``data-pipeline-samples``, unchanged); the values are their own, with the
placeholder bucket made in moto, the placeholder database replaced by the test
MariaDB, and a log and output prefix of each test's own. Each is exported, run
with ``airflow dags test`` for the DAG's first instant, and run with ``run
--local``; then (tests/support/airflowcompare.py) the same activities ran, every
edge of the DAG held, and the same objects and rows came out.

A sample's ``startAt`` FIRST_ACTIVATION_DATE_TIME becomes the time of the export
(the export says so): the Airflow run's slot is that instant, ``run --local``'s
its activation. Where a sample writes under its slot's time, the objects are
compared under each run's own slot.

What a sample would fetch from the internet or run as root is stubbed on the
task's PATH (``wget``, ``sudo``), as tests/test_localrun_samples.py does.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflowcompare import run_both
from tests.support.dbservers import DbServer
from tests.support.samplehosts import (
    BUCKET,
    SAMPLES,
    hosts_namespace,
    rds_instance_for,
    stub,
)

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(900)]


def values_of(name: str, **changes: str) -> dict[str, str]:
    given: dict[str, str] = json.loads((SAMPLES / "values" / name).read_text())[
        "values"
    ]
    return given | changes


def objects_under(s3: Any, prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix``: key (without it) -> body."""
    answer = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return {
        item["Key"].removeprefix(prefix): s3.get_object(Bucket=BUCKET, Key=item["Key"])[
            "Body"
        ].read()
        for item in answer.get("Contents", [])
    }


def std_outputs(s3: Any, logs: str) -> dict[str, bytes]:
    """The attempts' StdOutput under ``pipelineLogUri``, one pipeline id each:
    ``<pipelineId>/<component>/<instance>/<attempt>/StdOutput`` -> body."""
    found = objects_under(s3, logs)
    return {key: data for key, data in found.items() if key.endswith("/StdOutput")}


def by_component(outputs: dict[str, bytes]) -> list[tuple[str, bytes]]:
    """(component, StdOutput) of each attempt, in order."""
    return sorted((key.split("/")[1], data) for key, data in outputs.items())


def test_helloworld(tmp_path: Path, airflow_home: Path, samples_bucket: Any) -> None:
    """The DAG's run and ``run --local`` each ran ShellCommandActivity_HelloWorld
    once, and each uploaded its StdOutput, "Hello World!", to the sample's
    pipelineLogUri under a pipeline id of its own."""
    logs = f"{uuid.uuid4().hex}/logs"
    name = "helloworld__helloworld.json"
    both = run_both(
        tmp_path,
        airflow_home,
        SAMPLES / "definitions" / name,
        "helloworld",
        values_of(name, myS3LogsPath=f"s3://{BUCKET}/{logs}"),
    )
    both.check_same_activities()
    assert set(both.tasks) == {"ShellCommandActivity_HelloWorld"}
    assert both.check_edges_held() == set()
    outputs = std_outputs(samples_bucket, f"{logs}/HelloWorld/")
    assert len({key.split("/")[0] for key in outputs}) == 2, outputs  # two runs
    assert by_component(outputs) == 2 * [
        ("ShellCommandActivity_HelloWorld", b"Hello World!\n")
    ]


def test_shell_command_with_s3_staging_directory(
    tmp_path: Path, airflow_home: Path, samples_bucket: Any
) -> None:
    """The script staged in from the sample's S3DataNode ran under each, with
    "hello world" as $1 (unquoted by the sample's command), and the StdOutput
    each uploaded says so."""
    staging = f"{uuid.uuid4().hex}/staging"
    samples_bucket.put_object(
        Bucket=BUCKET,
        Key=f"{staging}/bashscript.sh",
        Body=b'echo "argument: $1"\necho "staged: $(basename "$0")"\n',
    )
    logs = f"{uuid.uuid4().hex}/logs"
    name = "ShellCommandWithS3StagingDirectory__shellcommandwiths3stagingdir.json"
    both = run_both(
        tmp_path,
        airflow_home,
        SAMPLES / "definitions" / name,
        "staging_dir",
        values_of(
            name,
            myS3LogsPath=f"s3://{BUCKET}/{logs}",
            myS3StagingPath=f"s3://{BUCKET}/{staging}",
        ),
    )
    both.check_same_activities()
    assert set(both.tasks) == {"Shell_Command_Staging_Activity"}
    assert both.check_edges_held() == set()
    outputs = std_outputs(samples_bucket, f"{logs}/")
    assert by_component(outputs) == 2 * [
        ("Shell_Command_Staging_Activity", b"argument: hello\nstaged: bashscript.sh\n")
    ]


def efs_stubs(folder: Path) -> tuple[dict[str, str], Path]:
    """``wget`` writes the backup script (which mounts with sudo and says what it
    backs up); ``sudo`` writes down what it was asked. The environment that puts
    them first on PATH, and the file ``sudo`` writes to."""
    folder.mkdir()
    asked = folder / "sudo.log"
    stub(folder, "sudo", f'#!/bin/sh\necho "$*" >> {asked}\n')
    backup = (
        "#!/bin/sh\n"
        'sudo mount -t nfs "$1" /mnt/efs-source\n'
        'sudo mount -t nfs "$2" /mnt/efs-backup\n'
        'sudo echo "backup $5: $3, keep $4"\n'
    )
    stub(
        folder, "wget", f'#!/bin/sh\ncat > "$(basename "$1")" <<\'EOF\'\n{backup}EOF\n'
    )
    return {"PATH": f"{folder}:{os.environ['PATH']}"}, asked


def test_efs_backup_one_node(
    tmp_path: Path, airflow_home: Path, samples_bucket: Any
) -> None:
    """The sample's command (its myShellCmd default) fetches the backup script
    and runs it with the five scriptArguments: under each, the stubbed ``sudo``
    was asked the same mounts and the same backup."""
    airflow_path, by_airflow = efs_stubs(tmp_path / "airflow-bin")
    local_path, by_local = efs_stubs(tmp_path / "local-bin")
    name = "EFSBackup__1-Node-EFSBackupPipeline.json"
    both = run_both(
        tmp_path,
        airflow_home,
        SAMPLES / "definitions" / name,
        "efs_backup",
        values_of(name),
        airflow_env=airflow_path,
        local_env={**os.environ, **local_path},
    )
    both.check_same_activities()
    assert set(both.tasks) == {"ShellCommandActivityObj"}
    assert both.check_edges_held() == set()
    assert by_airflow.read_text() == by_local.read_text()
    assert by_airflow.read_text().splitlines() == [
        "mount -t nfs 10.0.1.32:/ /mnt/efs-source",
        "mount -t nfs 10.0.1.75:/ /mnt/efs-backup",
        "echo backup backup-fs-12345678: daily, keep 7",
    ]


def test_rds_to_s3(
    tmp_path: Path, airflow_home: Path, samples_bucket: Any, mysql_db: DbServer
) -> None:
    """The CopyActivity copies the songs table of the test MariaDB to S3 as CSV,
    under the slot's time: the same CSV under each run's slot. The password is
    an Airflow Variable, in neither the DAG file nor anything Airflow wrote."""
    mysql_db.query("CREATE TABLE songs (id INT PRIMARY KEY, title VARCHAR(40))")
    mysql_db.query("INSERT INTO songs VALUES (1, 'Blue'), (2, 'Green, again')")
    out = f"{uuid.uuid4().hex}/out"
    name = "RDStoS3__RDStoS3Pipeline.json"
    values = values_of(
        name,
        myRDSConnectStr=mysql_db.url,
        myRDSUsername=mysql_db.user,
        myOutputS3Path=f"s3://{BUCKET}/{out}/airflow",
    )
    values["*myRDSPassword"] = mysql_db.password
    both = run_both(
        tmp_path,
        airflow_home,
        SAMPLES / "definitions" / name,
        "rds_to_s3",
        values,
        local_values=values | {"myOutputS3Path": f"s3://{BUCKET}/{out}/local"},
        airflow_env={"AIRFLOW_VAR_RDS_TO_S3.MYRDSPASSWORD": mysql_db.password},
    )
    both.check_same_activities()
    assert set(both.tasks) == {"RDStoS3CopyActivity"}
    assert both.check_edges_held() == set()
    by_airflow = objects_under(samples_bucket, f"{out}/airflow/")
    by_local = objects_under(samples_bucket, f"{out}/local/")
    airflow_slot = both.logical_date[:19].replace("T", "-").replace(":", "-")
    assert {key.split("/")[0] for key in by_airflow} == {airflow_slot}, by_airflow
    assert sorted(by_airflow.values()) == sorted(by_local.values())
    body = b"".join(by_airflow.values()).decode()
    assert body.splitlines() == ["1,Blue", "2,Green\\, again"], body
    assert mysql_db.password not in both.dag_file.read_text()
    assert mysql_db.password not in both.airflow.stdout + both.airflow.stderr
    for path in airflow_home.rglob("*"):
        if path.is_file():
            assert mysql_db.password.encode() not in path.read_bytes(), path


SQL_SCRIPT = """
CREATE TABLE IF NOT EXISTS timeout_check (started DATETIME(3), finished DATETIME(3));
INSERT INTO timeout_check (started) VALUES (NOW(3));
DO SLEEP(1);
UPDATE timeout_check SET finished = NOW(3) WHERE finished IS NULL;
"""


def test_sql_activity_with_timeout(
    tmp_path: Path,
    airflow_home: Path,
    samples_bucket: Any,
    moto_server: str,
    mysql_db: DbServer,
) -> None:
    """The SqlActivity on the sample's RdsDatabase (rdsInstanceId "rds1", which
    moto describes with the test MariaDB's port and a host that resolves to
    127.0.0.1 in the runs' mount namespace) runs the script at the sample's
    scriptUri: each run added its row and finished it, one run after the other."""
    with contextlib.suppress(samples_bucket.exceptions.BucketAlreadyOwnedByYou):
        samples_bucket.create_bucket(Bucket="data-pipeline-samples")
    samples_bucket.put_object(
        Bucket="data-pipeline-samples",
        Key="sqlactivity/script.sql",
        Body=SQL_SCRIPT.encode(),
    )
    name = "SQLActivityWithTimeout__pipeline.json"
    values = values_of(
        name,
        myRDSUsername=mysql_db.user,
        myRDSPassword=mysql_db.password,
        myS3LogsPath=f"s3://{BUCKET}/{uuid.uuid4().hex}/logs",
    )
    host, rds_env = rds_instance_for(moto_server, values["myRDSId"], mysql_db)
    both = run_both(
        tmp_path,
        airflow_home,
        SAMPLES / "definitions" / name,
        "sql_timeout",
        values,
        airflow_env={
            **rds_env,
            "AIRFLOW_VAR_SQL_TIMEOUT.MYRDSPASSWORD": mysql_db.password,
        },
        local_env={**os.environ, **rds_env},
        prefix=hosts_namespace(tmp_path, host),
    )
    both.check_same_activities()
    assert set(both.tasks) == {"ActivityId_wRpKi"}
    assert both.check_edges_held() == set()
    rows = mysql_db.query("SELECT started, finished FROM timeout_check ORDER BY 1")
    assert len(rows) == 2, rows  # one row of each run, each finished
    (by_airflow, by_local) = rows
    assert by_airflow[0] < by_airflow[1] <= by_local[0] < by_local[1], rows
    assert mysql_db.password not in both.dag_file.read_text()
