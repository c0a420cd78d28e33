"""Exported DAGs in a real Airflow: ``make test-airflow`` (marked ``airflow``, so
``make test`` deselects them).

Airflow runs from ``.venv-airflow`` (installed from constraints-airflow.txt), as
its own CLI: ``airflow dags test DAG DATE`` for one logical date, with
AIRFLOW_HOME in a temp dir and sqlite. Each test exports a definition of
tests/airflow/defs/ with ``dp-runner export airflow`` and checks what really
happened: the files the activities wrote, their start and end times against every
edge, the attempts Airflow made, the pokes of a sensor, the processes a SIGTERM
left, and every byte Airflow wrote, for the secret.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest

from tests.airflow.dagfile import read_dag
from tests.conftest import REPO, run_local, wait_for
from tests.dbservers import DbServer

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(900)]
#: The Airflow under test: .venv-airflow (3.x) unless DP_AIRFLOW_VENV names another
#: (make test-airflow runs the module once per venv: .venv-airflow2 holds 2.11).
AIRFLOW = REPO / os.environ.get("DP_AIRFLOW_VENV", ".venv-airflow") / "bin" / "airflow"
DEFS = Path(__file__).parent / "defs"
EXAMPLES = REPO / "examples"
STAGED = {"a.txt": b"hello\nworld\n", "b.txt": b"data pipeline\n"}
SCRIPTS = REPO / "tests" / "scripts"
ORDER_EDGES = {("Extract", "Count"), ("Extract", "Sum"), ("Sum", "Report")}
ORDER_EDGES |= {("Count", "Report")}


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Airflow home (sqlite) for the module, its database migrated."""
    assert AIRFLOW.exists(), "make test-airflow installs .venv-airflow first"
    home = tmp_path_factory.mktemp("airflow-home")
    done = subprocess.run(
        [str(AIRFLOW), "db", "migrate"],
        env=airflow_env(home, home / "dags"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return home


def airflow_env(home: Path, dags: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        **extra,
    )
    return env


def export(tmp_path: Path, name: str, dag_id: str, *args: str) -> Path:
    """``dp-runner export airflow defs/NAME.json`` into a DAGs folder of its own."""
    return export_file(tmp_path, DEFS / f"{name}.json", dag_id, *args)


def export_file(tmp_path: Path, definition: Path, dag_id: str, *args: str) -> Path:
    dags = tmp_path / "dags"
    dags.mkdir()
    out = dags / f"{dag_id}.py"
    command = [sys.executable, "-m", "runner", "export", "airflow"]
    done = subprocess.run(
        [
            *command,
            str(definition),
            "-o",
            str(out),
            "--dag-id",
            dag_id,
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    return out


def dags_test(
    home: Path, dag_file: Path, dag_id: str, date: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AIRFLOW), "dags", "test", dag_id, date],
        env=airflow_env(home, dag_file.parent, **extra),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def stamps(out: Path, name: str) -> tuple[int, int]:
    start = int((out / f"{name}.start").read_text())
    return start, int((out / f"{name}.end").read_text())


def test_order_dag_runs_what_run_local_runs(tmp_path: Path, airflow_home: Path) -> None:
    """The same activities ran, every edge held (the upstream ended before the
    downstream started), and the same files came out as under ``run --local``."""
    by_airflow, by_local = tmp_path / "airflow-out", tmp_path / "local-out"
    by_airflow.mkdir()
    by_local.mkdir()
    dag_file = export(
        tmp_path, "order", "order", "--parameter-values", f"myOut={by_airflow}"
    )
    assert read_dag(dag_file).edges == ORDER_EDGES
    done = dags_test(airflow_home, dag_file, "order", "2026-06-01T00:00:00+00:00")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    local = run_local(
        DEFS / "order.json", tmp_path, "--parameter-values", f"myOut={by_local}"
    )
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
    names = {"Extract", "Sum", "Count", "Report"}
    for out in (by_airflow, by_local):
        ran = {p.stem for p in out.glob("*.end")}
        assert ran == names
        for upstream, downstream in ORDER_EDGES:
            assert stamps(out, upstream)[1] <= stamps(out, downstream)[0]
    for produced in ("numbers", "sum", "count", "report"):
        assert (by_airflow / produced).read_text() == (by_local / produced).read_text()
    assert (by_airflow / "report").read_text() == "sum 15 of 5\n"


def test_retries_precondition_schedule_and_secret(
    tmp_path: Path, airflow_home: Path
) -> None:
    """Flaky fails twice and succeeds on its third attempt (maximumRetries 2, the
    delays shortened); Ready is FALSE at its first check, then true; the run's
    data interval is the slot (@scheduledStartTime is its start: timeseries, the
    run at the end of the slot); the masked token reaches the activity from an
    Airflow Variable and appears in neither the DAG file nor anything Airflow
    wrote."""
    out = tmp_path / "out"
    out.mkdir()
    token = "tok-" + os.urandom(8).hex()
    dag_file = export(
        tmp_path,
        "behave",
        "behave",
        "--short-delays",
        "--parameter-values",
        f"myOut={out}",
    )
    assert token not in dag_file.read_text()
    done = dags_test(
        airflow_home,
        dag_file,
        "behave",
        "2026-06-02T00:00:00+00:00",
        **{"AIRFLOW_VAR_BEHAVE.MYTOKEN": token},
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert (out / "flaky.attempts").read_text().count("x") == 3
    # timeseries: the run at 2026-06-02 is that of the slot that ends then
    assert (out / "flaky.slot").read_text().strip() == "2026-06-01T00:00:00"
    assert (out / "ready.checks").read_text().count("x") == 2
    assert (out / "token").read_text() == token  # the activity had it
    assert token not in done.stdout + done.stderr
    for path in airflow_home.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_sigterm_to_the_task_process_kills_the_tree(
    tmp_path: Path, airflow_home: Path
) -> None:
    """A SIGTERM to the Airflow task process (the parent of ``exec``): Airflow
    calls ``on_kill``, exec stops the tree that ignores SIGTERM, and every
    process of it is gone within kill_grace (10 s, the operator's) + 5 s."""
    pid_file = tmp_path / "pids.json"
    dag_file = export(
        tmp_path,
        "tree",
        "tree",
        "--parameter-values",
        f"myPython={sys.executable}",
        f"myTreeScript={SCRIPTS / 'task_tree.py'}",
        f"myPidFile={pid_file}",
    )
    env = airflow_env(airflow_home, dag_file.parent)
    process = subprocess.Popen(
        [str(AIRFLOW), "dags", "test", "tree", "2026-06-01T00:00:00+00:00"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(
            lambda: pid_file.exists() or process.poll() is not None,
            300,
            "the task tree",
        )
        assert pid_file.exists(), (process.stdout.read() if process.stdout else "")[
            -4000:
        ]
        pids: dict[str, int] = json.loads(pid_file.read_text())
        task_process = _exec_process(process.pid).parent()
        assert task_process is not None
        task_process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        wait_for(lambda: all(_gone(p) for p in pids.values()), 15, "the tree to die")
        assert time.monotonic() - signalled <= 15
    finally:
        for child in psutil.Process(process.pid).children(recursive=True):
            child.kill()
        process.kill()
        process.communicate()


def _exec_process(root: int) -> psutil.Process:
    for child in psutil.Process(root).children(recursive=True):
        if "exec" in child.cmdline() and "runner" in child.cmdline():
            return child
    raise AssertionError("no dp-runner exec under airflow dags test")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


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


def test_on_fail_and_on_success_publish_to_sns(
    tmp_path: Path, airflow_home: Path, s3_env: dict[str, str]
) -> None:
    """The SnsAlarm callbacks publish through boto3 (moto's SNS, an SQS queue
    subscribed to the topic): Breaks's onFail and Works's onSuccess."""
    endpoint = s3_env["AWS_ENDPOINT_URL_S3"]
    topics: Any = boto3.client("sns", region_name="us-east-1", endpoint_url=endpoint)
    queues: Any = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint)
    topic = topics.create_topic(Name="dag-alarms")["TopicArn"]
    queue_url = queues.create_queue(QueueName="dag-alarms")["QueueUrl"]
    queue_arn = queues.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    topics.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    dag_file = export(
        tmp_path, "alarm", "alarm", "--parameter-values", f"myTopic={topic}"
    )
    done = dags_test(
        airflow_home,
        dag_file,
        "alarm",
        "2026-06-01T00:00:00+00:00",
        AWS_ENDPOINT_URL_SNS=endpoint,
    )
    assert "Breaks" in done.stdout + done.stderr
    subjects: set[str] = set()

    def both_arrived() -> bool:
        answer = queues.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)
        for message in answer.get("Messages", []):
            subjects.add(json.loads(message["Body"])["Subject"])
        return subjects >= {"Works finished", "Breaks failed"}

    wait_for(both_arrived, 30, "both alarms")
