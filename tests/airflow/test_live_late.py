"""``lateAfterTimeout`` + ``onLateAction`` in a real Airflow (``make
test-airflow``; marked ``airflow``).

On Airflow 3.1+ the export makes them a DeadlineAlert on the DAG run: a run still
going ``lateAfterTimeout`` after its logical date (the slot's start) is late, and
the triggerer publishes the onLateAction SnsAlarm through boto3. The test runs
the DAG with ``airflow dags test`` for a slot long past, so the deadline is
already missed when the run is made, and holds the activity on a gate file while
Airflow's own scheduler (which finds missed deadlines) and triggerer (which runs
the callback) run beside it; moto's SNS delivers to an SQS queue the test reads.
Then the gate opens and the run finishes.

On Airflow 2.x, which has no deadline alerts, the same DAG runs without one and
nothing is published: what the export reported as not carried there.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.airflowcompare import task_rows
from tests.support.airflowlive import AIRFLOW, airflow_env, export
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(900)]
SLOT = "2026-06-01T00:00:00+00:00"  # + lateAfterTimeout 1 hour: long past


def airflow_major() -> int:
    done = subprocess.run(
        [str(AIRFLOW), "version"], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip().split(".")[0])


class Queue:
    """An SNS topic in moto, delivered to an SQS queue that the test reads."""

    def __init__(self, endpoint: str) -> None:
        topics: Any = boto3.client(
            "sns", region_name="us-east-1", endpoint_url=endpoint
        )
        self.sqs: Any = boto3.client(
            "sqs", region_name="us-east-1", endpoint_url=endpoint
        )
        self.topic = topics.create_topic(Name="late-alarms")["TopicArn"]
        self.url = self.sqs.create_queue(QueueName="late-alarms")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(
            QueueUrl=self.url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        topics.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=arn)
        self.received: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(QueueUrl=self.url, WaitTimeSeconds=1)
        for message in answer.get("Messages", []):
            self.received.append(json.loads(message["Body"]))
        return self.received


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """What the test starts: each terminated (then killed) and reaped at the end."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in reversed(started):
        if process.poll() is None:
            process.terminate()
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def deadlines(home: Path, dag_id: str) -> list[tuple[Any, ...]]:
    """The DAG's rows in Airflow's ``deadline`` table: (deadline_time, missed)."""
    with sqlite3.connect(home / "airflow.db") as db:
        return db.execute(
            "SELECT deadline_time, missed FROM deadline JOIN dag_run"
            " ON dag_run.id = deadline.dagrun_id WHERE dag_run.dag_id = ?",
            (dag_id,),
        ).fetchall()


def test_a_late_run_publishes_the_on_late_action(
    tmp_path: Path,
    airflow_home: Path,
    s3_env: dict[str, str],
    processes: list[subprocess.Popen[str]],
) -> None:
    endpoint = s3_env["AWS_ENDPOINT_URL_S3"]
    queue = Queue(endpoint)
    gate = tmp_path / "gate"
    dag_file = export(
        tmp_path,
        "late",
        "late",
        "--parameter-values",
        f"myGate={gate}",
        f"myTopic={queue.topic}",
    )
    env = airflow_env(airflow_home, dag_file.parent, AWS_ENDPOINT_URL_SNS=endpoint)
    env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "True"  # no run of its own

    def start(*argv: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [str(AIRFLOW), *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        processes.append(process)
        return process

    run = start("dags", "test", "late", SLOT)
    if airflow_major() < 3:
        _no_deadline_on_2x(run, gate, queue)
        return
    wait_for(
        lambda: deadlines(airflow_home, "late") or run.poll() is not None,
        300,
        "the run's deadline",
    )
    ((when, missed),) = deadlines(airflow_home, "late")
    assert when.startswith("2026-06-01 01:00:00"), when  # slot + 1 hour
    assert not missed
    start("scheduler")
    start("triggerer")
    wait_for(lambda: queue.read() or run.poll() is not None, 300, "the late alarm")
    assert run.poll() is None, "the run ended before its alarm"
    (alarm,) = queue.received
    assert alarm["Subject"] == "Slow is late"
    assert alarm["Message"] == "Slow has not finished an hour after its scheduled start"
    assert deadlines(airflow_home, "late") == [(when, 1)]  # missed, and handled
    gate.touch()
    output, _ = run.communicate(timeout=300)
    # The activity finished. (``airflow dags test`` 3.3.2 then errors as it marks
    # a run with a deadline a success: it looks the alerts up by an id that only
    # a DAG stored by the DAG processor has; docs/airflow.md says so.)
    assert task_rows(airflow_home, "late")["Slow"].state == "success", output[-4000:]
    assert "'dict' object has no attribute 'hex'" in output or run.returncode == 0


def _no_deadline_on_2x(run: subprocess.Popen[str], gate: Path, queue: Queue) -> None:
    """Airflow 2.x: the DAG loads and runs without a deadline; nothing is
    published (the export listed the late alarm as not carried on 2.x)."""
    gate.touch()
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 0, output[-4000:]
    assert queue.read() == []
