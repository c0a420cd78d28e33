"""The AWS CLI, unchanged, against the local service (as a new user would try it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner.localservice import LocalService
from tests.localservice.conftest import make_client, wait_for

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
