"""Exported DAGs in a real Airflow: ``make test-airflow`` (marked ``airflow``, so
``make test`` deselects them).

Airflow runs as its own CLI (tests/airflow/live.py): ``airflow dags test DAG
DATE`` for one logical date, with AIRFLOW_HOME in a temp dir and sqlite. Each test
exports a definition of tests/airflow/defs/ with ``dp-runner export airflow`` and
checks what really happened: the files the activities wrote, their start and end
times against every edge, the attempts Airflow made, the pokes of a sensor, the
processes a SIGTERM left, every byte Airflow wrote (for the secret), the alarms
that reached SNS. The service-backed examples are in test_live_examples.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest

from tests.support.airflowlive import (
    AIRFLOW,
    DEFS,
    SCRIPTS,
    airflow_env,
    dags_test,
    export,
)
from tests.support.dagfile import read_dag
from tests.support.runners import run_local
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(900)]
ORDER_EDGES = {("Extract", "Count"), ("Extract", "Sum"), ("Sum", "Report")}
ORDER_EDGES |= {("Count", "Report")}


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


def test_each_run_has_a_pipeline_id_of_its_own(
    tmp_path: Path, airflow_home: Path
) -> None:
    """Both tasks of one DAG run see the same DP_PIPELINE_ID and @pipelineId:
    the run's, "df-" and the first 21 base32 characters of the SHA-256 of the
    DAG id and the run id; the next run sees another."""
    out = tmp_path / "out"
    out.mkdir()
    dag_file = export(tmp_path, "ids", "ids", "--parameter-values", f"myOut={out}")
    for date in ("2026-06-01T00:00:00+00:00", "2026-06-02T00:00:00+00:00"):
        done = dags_test(airflow_home, dag_file, "ids", date)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        runs = db.execute(
            "SELECT substr(data_interval_start, 1, 10), run_id FROM dag_run"
            " WHERE dag_id = 'ids'"
        ).fetchall()
    seen = set()
    for day, run_id in runs:
        digest = hashlib.sha256(f"ids\0{run_id}".encode()).digest()
        expected = "df-" + base64.b32encode(digest).decode()[:21]
        for task in ("First", "Second"):
            # DP_PIPELINE_ID, then #{@pipelineId}
            assert (out / f"{task}-{day}").read_text().split() == 2 * [expected]
        seen.add(expected)
    assert len(seen) == 2, runs
