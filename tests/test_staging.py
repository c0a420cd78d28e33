"""runner.task.staging: plans from hand-built tasks, transfers against moto (HTTP)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from runner.aws.s3 import S3
from runner.errors import ActivityError, StagingError
from runner.task import attemptlogs, staging
from runner.taskmodel import FieldValue, PipelineObject, Ref, Task

ATTEMPT = "@Act_2024-01-01T00:00:00_Attempt=1"


def obj(obj_id: str, **fields: FieldValue | list[FieldValue]) -> PipelineObject:
    pairs = tuple(
        (key, item)
        for key, value in fields.items()
        for item in (value if isinstance(value, list) else [value])
    )
    return PipelineObject(id=obj_id, name=obj_id, fields=pairs)


def make_task(*others: PipelineObject, **fields: FieldValue | list[FieldValue]) -> Task:
    attempt = obj(ATTEMPT, type="ShellCommandActivity", **fields)
    objects = {o.id: o for o in (attempt, *others)}
    return Task(
        task_id="t" * 40, pipeline_id="df-1", attempt_id=ATTEMPT, objects=objects
    )


def node(node_id: str, **fields: FieldValue) -> PipelineObject:
    return obj(node_id, type="S3DataNode", **fields)


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    return done.stdout


# plan: pure


def test_plan_reads_every_s3_field_and_inherits_the_log_uri_from_default() -> None:
    task = make_task(
        node("In", filePath="s3://b/in/data.csv", s3EncryptionType="NONE"),
        node("Out", directoryPath="s3://b/out"),
        obj("Default", pipelineLogUri="s3://logs/dp/"),
        scriptUri="s3://b/script.sh",
        stage="true",
        input=Ref("In"),
        output=Ref("Out"),
        stdout="s3://b/stdout.txt",
        stderr="/var/log/err.txt",
    )
    plan = staging.plan(task)
    assert plan.script_uri == "s3://b/script.sh"
    assert plan.stage
    assert [(n.id, n.file_path, n.sse) for n in plan.inputs] == [
        ("In", "s3://b/in/data.csv", False)
    ]
    assert [(n.id, n.uri, n.sse) for n in plan.outputs] == [
        ("Out", "s3://b/out/", True)
    ]
    assert (plan.stdout_uri, plan.stderr_uri) == (
        "s3://b/stdout.txt",
        "/var/log/err.txt",
    )
    assert plan.log_uri == "s3://logs/dp/"


def test_plan_without_stage_ignores_data_nodes() -> None:
    task = make_task(obj("Sql", type="SqlDataNode"), command="true", input=Ref("Sql"))
    assert staging.plan(task) == staging.StagingPlan()


@pytest.mark.parametrize(
    ("fields", "others", "error_id"),
    [
        ({"scriptUri": "s3://b/s.sh", "scriptArgument": ["a"]}, (), "InvalidField"),
        (
            {"stage": "true", "input": Ref("Sql")},
            ("Sql", "SqlDataNode"),
            "UnsupportedStaging",
        ),
        ({"stage": "true", "output": Ref("F")}, ("F", "file"), "MissingField"),
        ({"stage": "true", "input": Ref("Gone")}, (), "MissingField"),
        ({"stage": "yes"}, (), "InvalidField"),
        ({"stdout": "relative/out.txt"}, (), "InvalidField"),
        ({"scriptUri": "https://example/s.sh"}, (), "S3InvalidUri"),
    ],
)
def test_plan_refuses_bad_shapes(
    fields: dict[str, Any], others: tuple[str, ...], error_id: str
) -> None:
    extra = []
    if others == ("Sql", "SqlDataNode"):
        extra.append(obj("Sql", type="SqlDataNode"))
    elif others == ("F", "file"):
        extra.append(node("F", filePath="s3://b/f.txt"))
    with pytest.raises(ActivityError) as info:
        staging.plan(make_task(*extra, **fields))
    assert info.value.error_id == error_id


# transfers against moto


def test_script_with_a_shebang_is_exec_d_directly(
    s3: S3, s3_bucket: str, s3_admin: Any, tmp_path: Path
) -> None:
    body = b'#!/bin/sh\necho shebang-ran "$0"\n'
    s3_admin.put_object(Bucket=s3_bucket, Key="scripts/run.sh", Body=body)
    plan = staging.plan(make_task(scriptUri=f"s3://{s3_bucket}/scripts/run.sh"))
    argv = staging.fetch_script(plan, s3, tmp_path)
    assert argv == [str(tmp_path / "run.sh")]
    assert stat.S_IMODE((tmp_path / "run.sh").stat().st_mode) == 0o700
    assert run(argv, tmp_path).strip() == f"shebang-ran {tmp_path / 'run.sh'}"


def test_script_without_a_shebang_runs_with_bash(
    s3: S3, s3_bucket: str, s3_admin: Any, tmp_path: Path
) -> None:
    body = b'echo "bash=${BASH_VERSION:+yes}"\n'
    s3_admin.put_object(Bucket=s3_bucket, Key="plain", Body=body)
    plan = staging.plan(make_task(scriptUri=f"s3://{s3_bucket}/plain"))
    argv = staging.fetch_script(plan, s3, tmp_path)
    assert argv[0].endswith("bash")
    assert argv[1:] == [str(tmp_path / "plain")]
    assert run(argv, tmp_path).strip() == "bash=yes"


def test_missing_script_names_the_object(
    s3: S3, s3_bucket: str, tmp_path: Path
) -> None:
    plan = staging.plan(make_task(scriptUri=f"s3://{s3_bucket}/nope.sh"))
    with pytest.raises(StagingError) as info:
        staging.fetch_script(plan, s3, tmp_path)
    assert info.value.error_id == "S3NoSuchKey"
    assert f"s3://{s3_bucket}/nope.sh" in info.value.message


def test_staging_in_and_out_with_a_file_node_and_a_nested_directory_node(
    s3: S3, s3_bucket: str, s3_admin: Any, tmp_path: Path
) -> None:
    b = s3_bucket
    s3_admin.put_object(Bucket=b, Key="in/single/data.csv", Body=b"a,b\n")
    for key in ("in/tree/top.txt", "in/tree/x/y/deep.txt"):
        s3_admin.put_object(Bucket=b, Key=key, Body=key.encode())
    task = make_task(
        node("File", filePath=f"s3://{b}/in/single/data.csv"),
        node("Tree", directoryPath=f"s3://{b}/in/tree"),
        node("Out", directoryPath=f"s3://{b}/out/run1/"),
        node("Plain", directoryPath=f"s3://{b}/plain", s3EncryptionType="NONE"),
        stage="true",
        input=[Ref("File"), Ref("Tree")],
        output=[Ref("Out"), Ref("Plain")],
    )
    plan = staging.plan(task)
    root = tmp_path / "staging"
    env = staging.stage_in(plan, s3, root)
    assert sorted(env) == [
        "INPUT1_STAGING_DIR",
        "INPUT2_STAGING_DIR",
        "OUTPUT1_STAGING_DIR",
        "OUTPUT2_STAGING_DIR",
    ]
    assert Path(env["INPUT1_STAGING_DIR"], "data.csv").read_bytes() == b"a,b\n"
    assert Path(env["INPUT2_STAGING_DIR"], "x/y/deep.txt").read_text() == (
        "in/tree/x/y/deep.txt"
    )
    assert list(Path(env["OUTPUT1_STAGING_DIR"]).iterdir()) == []

    command = (
        'cp -r "$INPUT2_STAGING_DIR"/. "$OUTPUT1_STAGING_DIR"/ && '
        'mkdir -p "$OUTPUT2_STAGING_DIR/n" && cp "$INPUT1_STAGING_DIR/data.csv" '
        '"$OUTPUT2_STAGING_DIR/n/"'
    )
    run(["sh", "-c", command], tmp_path, env)
    staging.stage_out(plan, s3, root)

    keys = {o["Key"] for o in s3_admin.list_objects_v2(Bucket=b)["Contents"]}
    assert {"out/run1/top.txt", "out/run1/x/y/deep.txt", "plain/n/data.csv"} <= keys
    encrypted = s3_admin.head_object(Bucket=b, Key="out/run1/x/y/deep.txt")
    assert encrypted["ServerSideEncryption"] == "AES256"
    plain = s3_admin.head_object(Bucket=b, Key="plain/n/data.csv")
    assert "ServerSideEncryption" not in plain

    staging.cleanup(root)
    assert not root.exists()


def test_staging_a_traversal_key_fails_and_writes_nothing_outside(
    s3: S3, s3_bucket: str, s3_admin: Any, tmp_path: Path
) -> None:
    s3_admin.put_object(Bucket=s3_bucket, Key="in/../../../evil", Body=b"x")
    task = make_task(
        node("Tree", directoryPath=f"s3://{s3_bucket}/in/"),
        stage="true",
        input=Ref("Tree"),
    )
    with pytest.raises(StagingError) as info:
        staging.stage_in(staging.plan(task), s3, tmp_path / "staging")
    assert info.value.error_id == "S3PathTraversal"
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_stdout_and_stderr_go_to_s3_and_to_a_local_path(
    s3: S3, s3_bucket: str, s3_admin: Any, tmp_path: Path
) -> None:
    out, err = tmp_path / "StdOutput", tmp_path / "StdError"
    out.write_text("the output\n")
    err.write_text("the errors\n")
    local = tmp_path / "delivered" / "nested" / "err.txt"
    task = make_task(stdout=f"s3://{s3_bucket}/logs/out.txt", stderr=str(local))
    staging.deliver_output(staging.plan(task), s3, out, err)
    got = s3_admin.get_object(Bucket=s3_bucket, Key="logs/out.txt")
    assert got["Body"].read() == b"the output\n"
    assert got["ServerSideEncryption"] == "AES256"
    assert local.read_text() == "the errors\n"


def test_attempt_logs_land_under_the_pipeline_log_uri(
    s3: S3, s3_bucket: str, s3_admin: Any, tmp_path: Path
) -> None:
    files = []
    for name in ("StdOutput", "StdError", "runner.log"):
        (tmp_path / name).write_text(name)
        files.append(tmp_path / name)
    task = make_task(obj("Default", pipelineLogUri=f"s3://{s3_bucket}/dp-logs"))
    ok = attemptlogs.upload_attempt_logs(
        staging.plan(task),
        s3,
        [*files, tmp_path / "never-written"],
        pipeline_id="df-1",
        component_id="Act",
        instance_id="@Act_2024-01-01T00:00:00",
        attempt_id="../../escape",
        deadline_s=10,
    )
    assert ok
    keys = sorted(
        o["Key"] for o in s3_admin.list_objects_v2(Bucket=s3_bucket)["Contents"]
    )
    assert len(keys) == 3
    prefix = "dp-logs/df-1/Act/@Act_2024-01-01T00:00:00/"
    assert all(k.startswith(prefix) for k in keys)
    attempt_part = keys[0][len(prefix) :].split("/")[0]
    assert ".." not in attempt_part
    assert [k.rsplit("/", 1)[1] for k in keys] == [
        "StdError",
        "StdOutput",
        "runner.log",
    ]


def test_attempt_log_upload_to_a_missing_bucket_returns_false_without_raising(
    s3: S3, tmp_path: Path
) -> None:
    (tmp_path / "StdOutput").write_text("x")
    task = make_task(pipelineLogUri="s3://no-such-log-bucket/x")
    started = time.monotonic()
    with capture_logs() as logs:
        ok = attemptlogs.upload_attempt_logs(
            staging.plan(task),
            s3,
            [tmp_path / "StdOutput"],
            pipeline_id="df-1",
            component_id="c",
            instance_id="i",
            attempt_id="a",
            deadline_s=5,
            log=structlog.get_logger(),
        )
    assert not ok
    assert time.monotonic() - started < 5
    failed = [e for e in logs if e["event"] == "attempt_log_upload_failed"]
    assert failed[0]["error_id"] == "S3NoSuchBucket"


@pytest.fixture
def silent_endpoint(
    s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """An endpoint that accepts connections and never answers (after ``s3_env``)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        yield endpoint


def test_attempt_log_upload_is_bounded_by_its_deadline(
    silent_endpoint: str, tmp_path: Path
) -> None:
    s3 = S3(region=None, log=structlog.get_logger())
    (tmp_path / "StdOutput").write_text("x")
    task = make_task(pipelineLogUri="s3://logs/x")
    started = time.monotonic()
    ok = attemptlogs.upload_attempt_logs(
        staging.plan(task),
        s3,
        [tmp_path / "StdOutput"],
        pipeline_id="df-1",
        component_id="c",
        instance_id="i",
        attempt_id="a",
        deadline_s=0.5,
    )
    assert not ok
    assert time.monotonic() - started < 2


def test_cleanup_removes_folders_the_task_made_unreadable(tmp_path: Path) -> None:
    root = tmp_path / "staging"
    locked = root / "output1" / "locked"
    locked.mkdir(parents=True)
    (locked / "f").write_text("x")
    locked.chmod(0)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    staging.cleanup(root)
    assert not root.exists()
    assert outside.exists()


def test_exists_precondition_checks_the_guarded_node(
    s3: S3, s3_bucket: str, s3_admin: Any
) -> None:
    def precondition_task(path_field: str, uri: str) -> Task:
        guarded = node("Node", precondition=Ref("Ready"), **{path_field: uri})
        other = node("Other", filePath=f"s3://{s3_bucket}/other")
        return make_task(
            guarded,
            other,
            obj("Ready", type="Exists"),
            **{"@componentParent": Ref("Ready")},
        )

    assert not staging.exists_precondition(
        precondition_task("filePath", f"s3://{s3_bucket}/ready/_SUCCESS"), s3
    )
    s3_admin.put_object(Bucket=s3_bucket, Key="ready/_SUCCESS", Body=b"")
    assert staging.exists_precondition(
        precondition_task("filePath", f"s3://{s3_bucket}/ready/_SUCCESS"), s3
    )
    assert staging.exists_precondition(
        precondition_task("directoryPath", f"s3://{s3_bucket}/ready"), s3
    )
    assert not staging.exists_precondition(
        precondition_task("directoryPath", f"s3://{s3_bucket}/rea"), s3
    )
