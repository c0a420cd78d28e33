"""``dp-runner export airflow`` as a translation: the DAG file it writes, read back
with ``ast`` (tests/airflow/dagfile.py), for each rule of the export: schedule,
order, retries and time, preconditions, alarms, queues, secrets, and what has no
mapping. The files run in a real Airflow in tests_airflow/ (``make test-airflow``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runner.airflow.export import export
from runner.airflow.plan import Options
from runner.definitionquery import secret_values
from runner.errors import EX_CONFIG
from runner.pipelinefile import definition_from_json
from tests.support.dagfile import exported, read_dag, scheduled, shell, write
from tests.support.runners import REPO

SAMPLES = REPO / "tests" / "localservice" / "samples"
#: Refused by AWS itself (samples/README.md): no instants to translate.
REFUSED = {"kinesis__kinesis-to-s3.json", "json-to-dynamodb__definition.json"}


def test_retry_and_depend_becomes_tasks_edges_and_a_sensor(tmp_path: Path) -> None:
    out = tmp_path / "dag.py"
    export(REPO / "examples" / "retry-and-depend.json", out)
    dag = read_dag(out)
    assert dag.dag_args["schedule"] == "None"  # ondemand: triggered by hand
    assert {k: v[0] for k, v in dag.tasks.items()} == {
        "Extract": "DpRunnerExecOperator",
        "Transform": "DpRunnerExecOperator",
        "Load": "DpRunnerExecOperator",
        "Transform__NumbersReady": "DpRunnerPreconditionSensor",
    }
    assert dag.edges == {
        ("Extract", "Transform"),
        ("Transform", "Load"),
        ("Transform__NumbersReady", "Transform"),
    }
    _, transform = dag.tasks["Transform"]
    assert transform["retries"] == "2"
    assert transform["retry_delay"] == "dt.timedelta(seconds=120.0)"  # Default's
    assert "queue" not in transform
    _, sensor = dag.tasks["Transform__NumbersReady"]
    assert sensor["timeout"] == "3600.0"  # preconditionTimeout 1 hour
    assert sensor["object_id"] == "'NumbersReady'"
    source = json.loads((REPO / "examples" / "retry-and-depend.json").read_text())
    assert (
        dag.literals["DEFINITION"]["objects"][1]["command"]
        == (source["objects"][1]["command"])
    )


def test_input_node_writer_runs_first_and_node_precondition_is_sensed(
    tmp_path: Path,
) -> None:
    doc = scheduled(
        "cron",
        {"period": "1 day", "startDateTime": "2026-06-01T00:00:00"},
        shell("Write", output={"ref": "Node"}),
        shell("Read", input={"ref": "Node"}, precondition={"ref": "Ready"}),
        {"id": "Node", "type": "S3DataNode", "precondition": {"ref": "There"}},
        {"id": "Ready", "type": "ShellCommandPrecondition", "command": "true"},
        {"id": "There", "type": "Exists"},
    )
    dag, _ = exported(tmp_path, doc)
    assert dag.edges == {
        ("Write", "Read"),
        ("Read__Ready", "Read"),
        ("Node__There", "Read"),
    }


def test_retries_timeouts_alarms_and_short_delays(tmp_path: Path) -> None:
    alarm = {
        "id": "Page",
        "type": "SnsAlarm",
        "topicArn": "arn:aws:sns:eu-west-1:123456789012:ops",
        "subject": "failed",
        "message": "A failed",
    }
    activity = shell(
        "A",
        maximumRetries="5",
        retryDelay="15 minutes",
        attemptTimeout="1 hour",
        onFail={"ref": "Page"},
        onSuccess={"ref": "Page"},
        maxActiveInstances="2",
    )
    doc = scheduled(
        "cron",
        {"period": "1 day", "startDateTime": "2026-06-01T00:00:00"},
        activity,
        alarm,
    )
    dag, _ = exported(tmp_path, doc)
    _, task = dag.tasks["A"]
    assert task["retries"] == "5"
    assert task["retry_delay"] == "dt.timedelta(seconds=900.0)"
    assert task["execution_timeout"] == "dt.timedelta(seconds=3660.0)"
    assert task["max_active_tis_per_dag"] == "2"
    call = (
        "SnsAlarm('arn:aws:sns:eu-west-1:123456789012:ops', subject='failed', "
        "message='A failed')"
    )
    assert task["on_failure_callback"] == call
    assert task["on_success_callback"] == call
    dag, _ = exported(tmp_path, doc, options=Options(short_delays=True))
    assert dag.tasks["A"][1]["retry_delay"] == "dt.timedelta(seconds=1.0)"


def test_late_after_timeout_becomes_a_deadline_alert(tmp_path: Path) -> None:
    """lateAfterTimeout + onLateAction: a LateAlarm in the DAG's deadline
    alerts (Airflow 3.1+), reported as not carried on 2.x; ondemand, or no
    onLateAction, carries nothing and says why."""
    alarm = {
        "id": "Late",
        "type": "SnsAlarm",
        "topicArn": "arn:aws:sns:eu-west-1:123456789012:ops",
        "subject": "A is late",
        "message": "late",
    }
    late = shell("A", lateAfterTimeout="2 hours", onLateAction={"ref": "Late"})
    schedule = {"period": "1 day", "startDateTime": "2026-06-01T00:00:00"}
    dag, report = exported(tmp_path, scheduled("cron", schedule, late, alarm))
    deadline = dag.dag_args["None"]  # the **deadline_alerts(...) of DAG(...)
    assert deadline == (
        "deadline_alerts(\n        LateAlarm('A', 7200.0, "
        "'arn:aws:sns:eu-west-1:123456789012:ops', subject='A is late', "
        "message='late'),  # onLateAction Late\n    )"
    )
    assert report.not_carried == [
        "A: lateAfterTimeout 2 hours + onLateAction: a deadline alert on the DAG "
        "run (Airflow 3.1+); not carried on Airflow 2.x (no deadline alerts)"
    ]
    ondemand = {"objects": [{"id": "Default", "scheduleType": "ondemand"}, late, alarm]}
    dag, report = exported(tmp_path, ondemand)
    assert "None" not in dag.dag_args
    assert report.not_carried == ["A: lateAfterTimeout (ondemand: no scheduled start)"]
    alone = shell("A", lateAfterTimeout="2 hours")
    dag, report = exported(tmp_path, scheduled("cron", schedule, alone))
    assert "None" not in dag.dag_args
    assert report.not_carried == [
        "A: lateAfterTimeout without an onLateAction SnsAlarm"
    ]


def test_queues_only_with_the_flag(tmp_path: Path) -> None:
    doc = {"objects": [{"id": "Default", "scheduleType": "ondemand"}]}
    doc["objects"].append(shell("A", workerGroup="etl-hosts"))
    dag, report = exported(tmp_path, doc)
    assert "queue" not in dag.tasks["A"][1]
    assert "A: workerGroup etl-hosts (no --queues)" in report.not_carried
    dag, report = exported(tmp_path, doc, options=Options(queues=True))
    assert dag.tasks["A"][1]["queue"] == "'etl-hosts'"
    assert not report.not_carried


def test_secrets_never_reach_the_dag_file(tmp_path: Path) -> None:
    doc = {
        "objects": [
            {"id": "Default", "scheduleType": "ondemand"},
            {
                "id": "Db",
                "type": "JdbcDatabase",
                "connectionString": "jdbc:postgresql://db/app",
                "username": "app",
                "*password": "#{myPlainPassword}",
            },
            {"id": "Other", "type": "JdbcDatabase", "*password": "literal-Pw-42"},
            shell("A", command="run --token #{*myToken} --db #{myPlainPassword}"),
        ],
        "parameters": [
            {"id": "*myToken", "type": "String", "default": "default-Tok-7"},
            {"id": "myPlainPassword", "type": "String"},
        ],
        "values": {"*myToken": "given-Tok-9", "myPlainPassword": "plain-Pw-8"},
    }
    secrets = secret_values(definition_from_json(doc))
    assert secrets == {"default-Tok-7", "given-Tok-9", "plain-Pw-8", "literal-Pw-42"}
    dag, report = exported(tmp_path, doc, dag_id="etl")
    for secret in secrets:
        assert secret not in dag.text
    assert (
        dag.literals["SECRETS"]
        == report.variables
        == {
            "*myDpSecret_Other_password": "etl.myDpSecret_Other_password",
            "*myPlainPassword": "etl.myPlainPassword",
            "*myToken": "etl.myToken",
        }
    )
    objects = {o["id"]: o for o in dag.literals["DEFINITION"]["objects"]}
    assert objects["Db"]["*password"] == "#{*myPlainPassword}"
    assert objects["A"]["command"] == "run --token #{*myToken} --db #{*myPlainPassword}"


def test_untranslated_objects_fail_with_the_reason_and_are_listed(
    tmp_path: Path,
) -> None:
    path = SAMPLES / "definitions" / "SimplePigActivity__pig_activity_sample.json"
    values = SAMPLES / "values" / path.name
    out = tmp_path / "dag.py"
    report = export(path, out, values_uri=f"file://{values}")
    dag = read_dag(out)
    pig = [t for t, (op, _) in dag.tasks.items() if op == "NotTranslatedOperator"]
    assert len(pig) == 1
    assert dag.tasks[pig[0]][1]["reason"] == "'not translated: PigActivity'"
    assert any("PigActivity" in item for item in report.not_carried)
    assert any("EmrCluster" in item for item in report.not_carried)


@pytest.mark.parametrize(
    "name",
    sorted(
        p.name
        for p in (SAMPLES / "definitions").glob("*.json")
        if p.name not in REFUSED
    ),
)
def test_every_sample_aws_accepts_exports(tmp_path: Path, name: str) -> None:
    path = SAMPLES / "definitions" / name
    values = SAMPLES / "values" / name
    out = tmp_path / "dag.py"
    defn_secrets = secret_values(definition_from_json(json.loads(path.read_text())))
    export(path, out, values_uri=f"file://{values}")
    dag = read_dag(out)
    activities = [
        o["id"]
        for o in json.loads(path.read_text())["objects"]
        if str(o.get("type", "")).endswith("Activity")
    ]
    assert set(activities) <= set(dag.tasks)
    for secret in defn_secrets:
        assert secret not in dag.text


def test_the_command_prints_variables_and_refuses_a_masked_value(
    tmp_path: Path,
) -> None:
    doc = {
        "objects": [{"id": "Default", "scheduleType": "ondemand"}, shell("A")],
        "parameters": [{"id": "*myToken", "type": "String"}],
    }
    path = write(tmp_path, doc)
    out = tmp_path / "dag.py"
    command = [sys.executable, "-m", "runner", "export", "airflow", str(path)]
    done = subprocess.run(
        [*command, "-o", str(out), "--dag-id", "etl"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "etl.myToken  for *myToken" in done.stdout
    refused = subprocess.run(
        [
            *command,
            "-o",
            str(tmp_path / "no.py"),
            "--parameter-values",
            "*myToken=s3cr3t",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == EX_CONFIG
    assert "s3cr3t" not in refused.stdout + refused.stderr
    assert not (tmp_path / "no.py").exists()


def test_the_export_loads_neither_airflow_nor_boto3() -> None:
    """The export runs where Airflow is not installed, and talks to no AWS."""
    code = (
        "import sys, runner.airflow.export\n"
        "print(sorted(m for m in ('airflow', 'boto3', 'botocore') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_run_types_are_the_registry_activities() -> None:
    """plan.RUN_TYPES is a copy of what the runner runs (it cannot import it)."""
    from runner.activities import REGISTRY  # noqa: PLC0415
    from runner.airflow.plan import RUN_TYPES  # noqa: PLC0415

    assert {name for name in REGISTRY if name.endswith("Activity")} == RUN_TYPES


def test_ids_that_differ_only_in_punctuation_stay_two_tasks(tmp_path: Path) -> None:
    doc = {"objects": [{"id": "Default", "scheduleType": "ondemand"}]}
    doc["objects"] += [shell("load-a"), shell("load_a", dependsOn={"ref": "load-a"})]
    dag, _ = exported(tmp_path, doc)
    assert {k: v[1]["object_id"] for k, v in dag.tasks.items()} == {
        "load_a": "'load-a'",
        "load_a_2": "'load_a'",
    }
    assert dag.edges == {("load_a", "load_a_2")}
