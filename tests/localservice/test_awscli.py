"""The AWS CLI, unchanged, against the local service (as a new user would try it)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner.localservice import LocalService
from runner.pipelinefile import definition_from_json
from tests.support.localservice import make_client, wait_for

pytest.importorskip("awscli")
AWS = Path(sys.executable).parent / "aws"

DEFINITION = {
    "objects": [
        {
            "id": "Default",
            "name": "Default",
            "scheduleType": "ondemand",
            "workerGroup": "cli",
        },
        {
            "id": "Hello",
            "name": "Hello",
            "type": "ShellCommandActivity",
            "command": "echo #{myWho}",
            "scriptArgument": ["a", "b"],
        },
        {
            "id": "After",
            "name": "After",
            "type": "ShellCommandActivity",
            "command": "true",
            "dependsOn": {"ref": "Hello"},
        },
    ],
    "parameters": [{"id": "myWho", "type": "String", "default": "world"}],
    "values": {"myWho": "local"},
}


def aws(service: LocalService, *args: str) -> str:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    result = subprocess.run(
        [str(AWS), "datapipeline", *args, "--endpoint-url", service.endpoint_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(not AWS.exists(), reason="the aws command is not installed here")
def test_aws_cli_create_put_activate_list_runs_describe(
    service: LocalService, tmp_path: Path
) -> None:
    definition = tmp_path / "pipeline.json"
    definition.write_text(json.dumps(DEFINITION))
    created = json.loads(
        aws(service, "create-pipeline", "--name", "cli", "--unique-id", "cli")
    )
    pipeline_id = created["pipelineId"]
    put = json.loads(
        aws(
            service,
            "put-pipeline-definition",
            "--pipeline-id",
            pipeline_id,
            "--pipeline-definition",
            f"file://{definition}",
        )
    )
    assert put["errored"] is False
    aws(service, "activate-pipeline", "--pipeline-id", pipeline_id)
    dp = make_client(service.endpoint_url)
    task = wait_for(lambda: dp.poll_for_task(workerGroup="cli").get("taskObject"))
    attempt = task["objects"][task["attemptId"]]
    values = [
        f.get("stringValue") for f in attempt["fields"] if f["key"] == "scriptArgument"
    ]
    assert values == ["a", "b"]
    assert {"key": "command", "stringValue": "echo local"} in attempt["fields"]
    dp.report_task_progress(taskId=task["taskId"])
    dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    runs = aws(service, "list-runs", "--pipeline-id", pipeline_id)
    lines = runs.splitlines()
    assert any("Hello" in line and "FINISHED" in line for line in lines), runs
    assert "After" not in runs  # list-runs shows started instances (@actualStartTime)
    assert (
        aws(
            service,
            "list-runs",
            "--pipeline-id",
            pipeline_id,
            "--status",
            "waiting_for_runner",
            "--schedule-interval",
            "2000-01-01T00:00:00,2999-01-01T00:00:00",
        ).count("@After_")
        == 1
    )
    instance = task["attemptId"].rsplit("_Attempt", 1)[0]
    described = json.loads(
        aws(
            service,
            "describe-objects",
            "--pipeline-id",
            pipeline_id,
            "--object-ids",
            instance,
        )
    )
    [obj] = described["pipelineObjects"]
    assert {"key": "@status", "stringValue": "FINISHED"} in obj["fields"]
    listed = json.loads(aws(service, "list-pipelines"))
    assert listed["pipelineIdList"] == [{"id": pipeline_id, "name": "cli"}]


@pytest.mark.skipif(not AWS.exists(), reason="the aws command is not installed here")
def test_list_runs_lists_more_than_100_instances(service: LocalService) -> None:
    """list-runs asks DescribeObjects for 100 ids at a time; the service must
    answer that (the API reference says 25, AWS takes 100)."""
    dp = make_client(service.endpoint_url)
    pipeline_id = dp.create_pipeline(name="many", uniqueId="many")["pipelineId"]
    # 120 on-demand runs, one per activation, at quarter-hour starts in 2020
    # (a schedule that old is refused at activation, as on AWS)
    objects = definition_from_json(
        {
            "objects": [
                {"id": "Default", "scheduleType": "ondemand", "workerGroup": "nobody"},
                {"id": "Work", "type": "ShellCommandActivity", "command": "true"},
            ]
        }
    ).pipeline_objects
    put = dp.put_pipeline_definition(pipelineId=pipeline_id, pipelineObjects=objects)
    assert put["errored"] is False, put
    first = dt.datetime(2020, 1, 1, tzinfo=dt.UTC).timestamp()
    for slot in range(120):
        dp.activate_pipeline(pipelineId=pipeline_id, startTimestamp=first + 900 * slot)
    paginator = dp.get_paginator("query_objects")

    def instance_count() -> int:
        pages = paginator.paginate(pipelineId=pipeline_id, sphere="INSTANCE")
        return sum(len(page["ids"]) for page in pages)

    wait_for(lambda: instance_count() == 120)
    runs = aws(
        service,
        *("list-runs", "--pipeline-id", pipeline_id),
        *("--schedule-interval", "2019-12-31T00:00:00,2020-01-03T00:00:00"),
    )
    # each run is two lines: "N.  Work  <scheduled start>  <status>", "@Work_..."
    listed = [line.split() for line in runs.splitlines() if " Work " in line]
    assert [row[0] for row in listed] == [f"{n}." for n in range(1, 121)], runs[-500:]
    assert {row[3] for row in listed} == {"WAITING_FOR_RUNNER"}
    assert listed[-1][2] == "2020-01-02T05:45:00"


@pytest.mark.skipif(not AWS.exists(), reason="the aws command is not installed here")
def test_list_runs_shows_data_nodes_and_resources(
    service: LocalService, tmp_path: Path
) -> None:
    """As on AWS, list-runs shows the data node an activity read and the
    Ec2Resource it ran on, next to the activity itself."""
    definition = tmp_path / "pipeline.json"
    definition.write_text(
        json.dumps(
            {
                "objects": [
                    {
                        "id": "Default",
                        "scheduleType": "ondemand",
                        "role": "DataPipelineDefaultRole",
                        "resourceRole": "DataPipelineDefaultResourceRole",
                    },
                    {"id": "In", "type": "S3DataNode", "directoryPath": "s3://b/in/"},
                    {"id": "Box", "type": "Ec2Resource", "terminateAfter": "1 Hour"},
                    {
                        "id": "Work",
                        "type": "ShellCommandActivity",
                        "command": "true",
                        "input": {"ref": "In"},
                        "runsOn": {"ref": "Box"},
                    },
                ]
            }
        )
    )
    pipeline_id = json.loads(
        aws(service, "create-pipeline", "--name", "runs", "--unique-id", "runs")
    )["pipelineId"]
    aws(
        service,
        *("put-pipeline-definition", "--pipeline-id", pipeline_id),
        *("--pipeline-definition", f"file://{definition}"),
    )
    aws(service, "activate-pipeline", "--pipeline-id", pipeline_id)
    dp = make_client(service.endpoint_url)
    task = wait_for(lambda: dp.poll_for_task(workerGroup="local").get("taskObject"))
    dp.report_task_progress(taskId=task["taskId"])
    running = aws(service, "list-runs", "--pipeline-id", pipeline_id)
    assert _status_of(running) == {
        "In": "FINISHED",
        "Box": "RUNNING",
        "Work": "RUNNING",
    }
    dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    done = aws(service, "list-runs", "--pipeline-id", pipeline_id)
    assert _status_of(done) == {"In": "FINISHED", "Box": "FINISHED", "Work": "FINISHED"}


def _status_of(runs: str) -> dict[str, str]:
    """list-runs' table: "N.  Name  Scheduled start  Status" lines."""
    rows = [line.split() for line in runs.splitlines()]
    return {r[1]: r[3] for r in rows if r and r[0][:-1].isdigit() and r[0][-1] == "."}
