"""The project's service-backed examples as exported DAGs in a real Airflow
(``make test-airflow``; marked ``airflow``, so ``make test`` deselects them):
each runs with ``airflow dags test`` and with ``run --local``, against the test
databases and moto's S3, and both must produce the same objects and rows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflowcompare import (
    check_order,
    component_of,
    instances,
    task_rows,
)
from tests.support.airflowlive import EXAMPLES, dags_test, export_file
from tests.support.dagfile import read_dag
from tests.support.dbservers import DbServer
from tests.support.runners import run_local

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(900)]
STAGED = {"a.txt": b"hello\nworld\n", "b.txt": b"data pipeline\n"}


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_sql_example_exports_the_same_rows_as_run_local(
    tmp_path: Path,
    airflow_home: Path,
    s3_admin: Any,
    s3_bucket: str,
    engine: str,
    request: pytest.FixtureRequest,
) -> None:
    """examples/sql.json against the test database and moto's S3: the DAG's run
    fills the table and exports the same CSV as ``run --local``; the password, an
    Airflow Variable, is in neither the DAG file nor anything Airflow wrote."""
    db: DbServer = request.getfixturevalue(
        "pg_db" if engine == "postgresql" else "mysql_db"
    )
    values = [
        f"myConnectionString={db.url}",
        f"myUsername={db.user}",
        "myGreeting=hi",
    ]
    dag_file = export_file(
        tmp_path,
        EXAMPLES / "sql.json",
        "sql",
        "--parameter-values",
        *values,
        f"myOutputUri=s3://{s3_bucket}/airflow/greetings.csv",
    )
    assert db.password not in dag_file.read_text()
    done = dags_test(
        airflow_home,
        dag_file,
        "sql",
        "2026-06-01T00:00:00+00:00",
        **{"AIRFLOW_VAR_SQL.MYPASSWORD": db.password},
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    local = run_local(
        EXAMPLES / "sql.json",
        tmp_path,
        "--parameter-values",
        *values,
        f"*myPassword={db.password}",
        f"myOutputUri=s3://{s3_bucket}/local/greetings.csv",
    )
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
    by_airflow = s3_admin.get_object(Bucket=s3_bucket, Key="airflow/greetings.csv")
    by_local = s3_admin.get_object(Bucket=s3_bucket, Key="local/greetings.csv")
    assert by_airflow["Body"].read() == by_local["Body"].read()
    assert db.password not in done.stdout + done.stderr
    for path in airflow_home.rglob("*"):
        if path.is_file():
            assert db.password.encode() not in path.read_bytes(), path


def test_staging_example_writes_what_run_local_writes(
    tmp_path: Path, airflow_home: Path, s3_admin: Any, s3_bucket: str
) -> None:
    """examples/staging.json against moto's S3: the sensor of the input node's
    S3KeyExists holds, the activity stages in and out, and the DAG's outputs are
    those of ``run --local`` (each under its own prefix)."""
    for prefix in ("airflow", "local"):
        for name, data in STAGED.items():
            s3_admin.put_object(
                Bucket=s3_bucket, Key=f"{prefix}/input/{name}", Body=data
            )
        s3_admin.put_object(Bucket=s3_bucket, Key=f"{prefix}/input/_SUCCESS", Body=b"")
    dag_file = export_file(
        tmp_path,
        EXAMPLES / "staging.json",
        "staging",
        "--parameter-values",
        f"myBucket={s3_bucket}",
        "myPrefix=airflow",
    )
    assert ("RawLines__RawLinesReady", "Uppercase") in read_dag(dag_file).edges
    done = dags_test(airflow_home, dag_file, "staging", "2026-06-01T00:00:00+00:00")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    local = run_local(
        EXAMPLES / "staging.json",
        tmp_path,
        "--parameter-values",
        f"myBucket={s3_bucket}",
        "myPrefix=local",
    )
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
    for name, data in STAGED.items():
        by_airflow = s3_admin.get_object(Bucket=s3_bucket, Key=f"airflow/output/{name}")
        by_local = s3_admin.get_object(Bucket=s3_bucket, Key=f"local/output/{name}")
        assert by_airflow["Body"].read() == by_local["Body"].read() == data.upper()


def test_retry_and_depend_shares_its_folder_through_the_run_pipeline_id(
    tmp_path: Path, airflow_home: Path
) -> None:
    """examples/retry-and-depend.json keeps its files in a folder named by
    DP_PIPELINE_ID, which every task of one DAG run shares: under Airflow as
    under ``run --local``, Extract, the NumbersReady sensor (FALSE, then true),
    Transform (failed once, then done) and Load ran in the order of the edges,
    and Load found the sum and removed the folder."""
    dag_file = export_file(
        tmp_path, EXAMPLES / "retry-and-depend.json", "retry", "--short-delays"
    )
    env = {"TMPDIR": str(tmp_path)}
    done = dags_test(
        airflow_home, dag_file, "retry", "2026-06-01T00:00:00+00:00", **env
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    tasks = task_rows(airflow_home, "retry")
    assert {task: row.state for task, row in tasks.items()} == {
        "Extract": "success",
        "Transform__NumbersReady": "success",
        "Transform": "success",
        "Load": "success",
    }
    assert tasks["Transform"].tries == 2  # the transient failure, then done
    check_order(tasks, read_dag(dag_file).edges)
    (tmp_path / "local").mkdir()
    local = run_local(
        EXAMPLES / "retry-and-depend.json",
        tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path / "local")},
    )
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
    ran = {component_of(i): s for i, s in instances(local.stdout).items()}
    assert {ran[task] for task in ("Extract", "Transform", "Load")} == {"FINISHED"}
    # each Load removed its run's folder: nothing of either run is left
    assert not list(tmp_path.glob("dp-runner-demo-*"))
    assert not list((tmp_path / "local").glob("dp-runner-demo-*"))
