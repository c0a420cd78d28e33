"""End to end with S3: the real runner process, the local service, and moto's
standalone S3 server, all over real HTTP.

The runner finds moto the way it would find S3: through ``AWS_ENDPOINT_URL_S3`` in
its environment (set by ``s3_env``), never through an option of ours.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.localservice import LocalService
from tests.support.pipelines import (
    default_object,
    instances,
    shell,
    statuses_sent,
    submit,
    wait_instances,
)
from tests.support.runners import RunnerProcess
from tests.support.s3server import body, keys
from tests.support.trees import assert_all_gone, tree_command, wait_tree
from tests.support.waiting import wait_for

Spawn = Callable[..., RunnerProcess]


def test_script_uri_runs_with_arguments_and_output_goes_to_s3(
    service: LocalService,
    dp: Any,
    spawn_runner: Spawn,
    s3_admin: Any,
    s3_bucket: str,
) -> None:
    script = '#!/bin/sh\necho "script got $# args: $1|$2"\n'
    s3_admin.put_object(Bucket=s3_bucket, Key="scripts/run.sh", Body=script.encode())
    activity = {
        "id": "Script",
        "name": "Script",
        "type": "ShellCommandActivity",
        "scriptUri": f"s3://{s3_bucket}/scripts/run.sh",
        "stdout": f"s3://{s3_bucket}/out/stdout.txt",
    }
    pipeline_id = submit(dp, [default_object(), activity])
    spawn_runner()
    wait_instances(dp, pipeline_id, {"FINISHED"})
    assert body(s3_admin, s3_bucket, "out/stdout.txt") == "script got 0 args: |\n"


def test_failed_attempt_uploads_its_logs(
    service: LocalService,
    dp: Any,
    spawn_runner: Spawn,
    s3_admin: Any,
    s3_bucket: str,
) -> None:
    defaults = default_object(pipelineLogUri=f"s3://{s3_bucket}/logs")
    command = "echo working; echo 'disk full' >&2; exit 2"
    pipeline_id = submit(dp, [defaults, shell("Step", command, maximumRetries="0")])
    spawn_runner()
    wait_instances(dp, pipeline_id, {"FAILED"})
    uploaded = wait_for(lambda: keys(s3_admin, s3_bucket, "logs/"), 10, "log upload")
    names = {key.rsplit("/", 1)[1] for key in uploaded}
    assert names == {"StdOutput", "StdError", "TaskRunner.log"}
    assert all(key.startswith(f"logs/{pipeline_id}/Step/") for key in uploaded)
    (stderr_key,) = [k for k in uploaded if k.endswith("/StdError")]
    assert body(s3_admin, s3_bucket, stderr_key) == "disk full\n"
    (runner_key,) = [k for k in uploaded if k.endswith("/TaskRunner.log")]
    events = [
        json.loads(line)["event"]
        for line in body(s3_admin, s3_bucket, runner_key).splitlines()
    ]
    assert "task_started" in events


def test_canceled_attempt_still_uploads_its_logs(
    service: LocalService,
    dp: Any,
    spawn_runner: Spawn,
    s3_admin: Any,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "pids.json"
    defaults = default_object(pipelineLogUri=f"s3://{s3_bucket}/logs")
    pipeline_id = submit(dp, [defaults, shell("Tree", tree_command(pid_file))])
    runner = spawn_runner()
    pids = wait_tree(pid_file)
    (instance_id,) = instances(dp, pipeline_id)
    dp.set_status(pipelineId=pipeline_id, objectIds=[instance_id], status="TRY_CANCEL")
    runner.wait_event("task_finished", outcome="canceled")
    assert_all_gone(pids)
    uploaded = keys(s3_admin, s3_bucket, "logs/")
    assert {key.rsplit("/", 1)[1] for key in uploaded} >= {"StdOutput", "StdError"}
    assert statuses_sent(service) == []


def test_missing_script_fails_with_an_error_that_names_the_object(
    service: LocalService,
    dp: Any,
    spawn_runner: Spawn,
    s3_bucket: str,
) -> None:
    activity = {
        "id": "Script",
        "name": "Script",
        "type": "ShellCommandActivity",
        "scriptUri": f"s3://{s3_bucket}/nope.sh",
        "maximumRetries": "0",
    }
    pipeline_id = submit(dp, [default_object(), activity])
    spawn_runner()
    wait_instances(dp, pipeline_id, {"FAILED"})
    (sent,) = statuses_sent(service)
    assert sent["errorId"] == "S3NoSuchKey"
    assert f"s3://{s3_bucket}/nope.sh" in sent["errorMessage"]
