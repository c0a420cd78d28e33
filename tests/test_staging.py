"""activities.staging and attempt-log uploads: fields read from hand-built tasks,
transfers against moto over HTTP, and a silent endpoint for stops."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from runner.activities import staging
from runner.activities.shell import script_argv
from runner.attempt import AttemptPaths
from runner.aws.retries import RetryPolicy
from runner.aws.s3 import S3
from runner.errors import ActivityError, StagingError
from runner.task import attemptlogs
from runner.taskmodel import FieldValue, PipelineObject, Ref, Task
from tests.support.staging import ATTEMPT, NEVER, make_task, node, obj


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


# fields: pure


def test_read_takes_every_s3_field_and_the_log_uri_inherits_from_default() -> None:
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
    fields = staging.read(task)
    assert fields.script_uri == "s3://b/script.sh"
    assert fields.stage
    assert [(n.id, n.file_path, n.sse) for n in fields.inputs] == [
        ("In", "s3://b/in/data.csv", False)
    ]
    assert [(n.id, n.uri, n.sse) for n in fields.outputs] == [
        ("Out", "s3://b/out/", True)
    ]
    assert (fields.stdout_uri, fields.stderr_uri) == (
        "s3://b/stdout.txt",
        "/var/log/err.txt",
    )
    assert attemptlogs.log_uri(task, structlog.get_logger()) == "s3://logs/dp/"
    assert staging.staging_env(fields, Path("/s")) == {
        "INPUT1_STAGING_DIR": "/s/input1",
        "OUTPUT1_STAGING_DIR": "/s/output1",
    }


def test_read_without_stage_ignores_data_nodes() -> None:
    task = make_task(obj("Sql", type="SqlDataNode"), command="true", input=Ref("Sql"))
    assert staging.read(task) == staging.S3Fields()
    assert staging.staging_env(staging.read(task), Path("/s")) == {}


def test_a_bad_pipeline_log_uri_is_skipped_with_a_warning() -> None:
    task = make_task(pipelineLogUri="https://not-s3/logs")
    with capture_logs() as logs:
        assert attemptlogs.log_uri(task, structlog.get_logger()) is None
    assert [e["event"] for e in logs] == ["pipeline_log_uri_invalid"]
    assert staging.read(task) == staging.S3Fields()  # the task itself is fine


@pytest.mark.parametrize(
    ("fields", "others", "error_id"),
    [
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
def test_read_refuses_bad_shapes(
    fields: dict[str, Any], others: tuple[str, ...], error_id: str
) -> None:
    extra = []
    if others == ("Sql", "SqlDataNode"):
        extra.append(obj("Sql", type="SqlDataNode"))
    elif others == ("F", "file"):
        extra.append(node("F", filePath="s3://b/f.txt"))
    with pytest.raises(ActivityError) as info:
        staging.read(make_task(*extra, **fields))
    assert info.value.error_id == error_id


# transfers against moto


def fetch(s3: S3, uri: str, workdir: Path) -> list[str]:
    path = staging.script_path(uri, workdir)
    staging.fetch_script(uri, s3, path, NEVER)
    return script_argv(path)


def test_script_with_a_shebang_is_exec_d_directly(
    s3: S3, s3_bucket: str, s3_admin: Any, tmp_path: Path
) -> None:
    body = b'#!/bin/sh\necho shebang-ran "$0"\n'
    s3_admin.put_object(Bucket=s3_bucket, Key="scripts/run.sh", Body=body)
    argv = fetch(s3, f"s3://{s3_bucket}/scripts/run.sh", tmp_path)
    assert argv == [str(tmp_path / "run.sh")]
    assert stat.S_IMODE((tmp_path / "run.sh").stat().st_mode) == 0o700
    assert run(argv, tmp_path).strip() == f"shebang-ran {tmp_path / 'run.sh'}"


def test_script_without_a_shebang_runs_with_bash(
    s3: S3, s3_bucket: str, s3_admin: Any, tmp_path: Path
) -> None:
    body = b'echo "bash=${BASH_VERSION:+yes}"\n'
    s3_admin.put_object(Bucket=s3_bucket, Key="plain", Body=body)
    argv = fetch(s3, f"s3://{s3_bucket}/plain", tmp_path)
    assert argv[0].endswith("bash")
    assert argv[1:] == [str(tmp_path / "plain")]
    assert run(argv, tmp_path).strip() == "bash=yes"


def test_missing_script_names_the_object(
    s3: S3, s3_bucket: str, tmp_path: Path
) -> None:
    with pytest.raises(StagingError) as info:
        fetch(s3, f"s3://{s3_bucket}/nope.sh", tmp_path)
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
    fields = staging.read(task)
    root = tmp_path / "staging"
    env = staging.staging_env(fields, root)
    staging.stage_in(fields, s3, root, NEVER)
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
    staging.stage_out(fields, s3, root, NEVER)

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
        staging.stage_in(staging.read(task), s3, tmp_path / "staging", NEVER)
    assert info.value.error_id == "S3PathTraversal"
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_stdout_and_stderr_go_to_s3_and_to_a_local_path(
    s3: S3, s3_bucket: str, s3_admin: Any, tmp_path: Path
) -> None:
    paths = AttemptPaths(tmp_path)
    paths.stdout.write_text("the output\n")
    paths.stderr.write_text("the errors\n")
    local = tmp_path / "delivered" / "nested" / "err.txt"
    task = make_task(stdout=f"s3://{s3_bucket}/logs/out.txt", stderr=str(local))
    staging.deliver_output(staging.read(task), s3, paths, NEVER)
    got = s3_admin.get_object(Bucket=s3_bucket, Key="logs/out.txt")
    assert got["Body"].read() == b"the output\n"
    assert got["ServerSideEncryption"] == "AES256"
    assert local.read_text() == "the errors\n"


def attempt_task(*others: PipelineObject, attempt: str = ATTEMPT) -> Task:
    fields: tuple[tuple[str, FieldValue], ...] = (
        ("@componentParent", Ref("Act")),
        ("@instanceParent", Ref("@Act_2024-01-01T00:00:00")),
    )
    head = PipelineObject(id=attempt, name=attempt, fields=fields)
    objects = {o.id: o for o in (head, *others)}
    return Task(task_id="t", pipeline_id="df-1", attempt_id=attempt, objects=objects)


def test_attempt_logs_land_under_the_pipeline_log_uri(
    s3: S3, s3_bucket: str, s3_admin: Any, tmp_path: Path
) -> None:
    paths = AttemptPaths(tmp_path)
    for path in (paths.stdout, paths.stderr, tmp_path / attemptlogs.RUNNER_LOG_NAME):
        path.write_text(path.name)
    task = attempt_task(attempt="../../escape")
    attemptlogs.upload(task, s3, paths, f"s3://{s3_bucket}/dp-logs", NEVER)
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
        "TaskRunner.log",
    ]


def test_attempt_log_upload_to_a_missing_bucket_raises_once_every_file_was_tried(
    s3: S3, tmp_path: Path
) -> None:
    paths = AttemptPaths(tmp_path)
    paths.stdout.write_text("x")
    paths.stderr.write_text("y")
    with capture_logs() as logs, pytest.raises(StagingError) as info:
        attemptlogs.upload(
            attempt_task(), s3, paths, "s3://no-such-log-bucket/x", NEVER
        )
    assert info.value.error_id == "S3NoSuchBucket"
    assert not [e for e in logs if e["event"] == "s3_retry_scheduled"]  # permanent


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


def test_a_hung_transfer_ends_soon_after_its_stop(
    silent_endpoint: str, tmp_path: Path
) -> None:
    """The invariant behind abandoning a step: the thread left behind ends soon
    after the stop, because the stop ends the retries. Without it the retries
    would go on for the policy's 60 s budget; the bound sits far below that and
    far above a read timeout, so that it holds on a machine of any speed."""
    patient = RetryPolicy(
        attempts=100, budget_s=60.0, wait_initial_s=0.01, wait_max_s=0.05
    )
    s3 = S3(region=None, log=structlog.get_logger(), read_timeout_s=0.5, policy=patient)
    (tmp_path / "StdOutput").write_text("x")
    stop = threading.Event()
    ended = threading.Event()
    errors: list[StagingError] = []

    def upload() -> None:
        try:
            s3.upload_file(tmp_path / "StdOutput", "s3://logs/x", stop=stop)
        except StagingError as exc:
            errors.append(exc)
        finally:
            ended.set()

    threading.Thread(target=upload, daemon=True).start()
    assert not ended.wait(1.5)  # retried, not given up: only the stop ends it
    stop.set()
    assert ended.wait(10)  # the stop, not the 60 s budget, ended the retries
    assert errors
    assert errors[0].error_id == "S3Error"


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


def test_exists_checks_the_guarded_node(s3: S3, s3_bucket: str, s3_admin: Any) -> None:
    def exists(path_field: str, uri: str) -> bool:
        guarded = node("Node", precondition=Ref("Ready"), **{path_field: uri})
        other = node("Other", filePath=f"s3://{s3_bucket}/other")
        task = make_task(
            guarded,
            other,
            obj("Ready", type="Exists"),
            **{"@componentParent": Ref("Ready")},
        )
        return s3.exists(staging.guarded_node(task).uri)

    assert not exists("filePath", f"s3://{s3_bucket}/ready/_SUCCESS")
    s3_admin.put_object(Bucket=s3_bucket, Key="ready/_SUCCESS", Body=b"")
    assert exists("filePath", f"s3://{s3_bucket}/ready/_SUCCESS")
    assert exists("directoryPath", f"s3://{s3_bucket}/ready")
    assert not exists("directoryPath", f"s3://{s3_bucket}/rea")
