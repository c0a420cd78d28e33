"""Staging folders the task wrote are taken back before the runner reads them: no
symlink is followed (none is uploaded), and under root a folder of a ``run_as``
user becomes the runner's before it is listed. A local stdout/stderr path is
refused under ``run_as``."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
import structlog

from runner.activities import ActivityContext, plan, staging
from runner.attempt import AttemptPaths
from runner.aws.s3 import S3
from runner.errors import ActivityError
from runner.runas import RunAs
from runner.taskmodel import Ref
from tests.support.staging import NEVER, make_task, node

NOBODY = RunAs(name="nobody", uid=65534, gid=65534, groups=(65534,), home="/")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown)")


def output_task(bucket: str) -> Any:
    return make_task(
        node("Out", directoryPath=f"s3://{bucket}/out/"),
        command="true",
        stage="true",
        output=[Ref("Out")],
    )


def uploaded(s3_admin: Any, bucket: str) -> list[str]:
    listing = s3_admin.list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(item["Key"] for item in listing)


def secrets(tmp_path: Path) -> tuple[Path, Path]:
    secret_dir = tmp_path / "secret-dir"
    secret_dir.mkdir()
    (secret_dir / "key.pem").write_text("PRIVATE")
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("PRIVATE")
    return secret_file, secret_dir


def test_stage_out_uploads_no_symlink(
    s3: S3, s3_bucket: str, s3_admin: Any, tmp_path: Path
) -> None:
    secret_file, secret_dir = secrets(tmp_path)
    root = tmp_path / "staging"
    out = root / "output1"
    (out / "sub").mkdir(parents=True)
    (out / "data.csv").write_text("a,b\n")
    (out / "sub" / "deep.txt").write_text("deep")
    (out / "leak.txt").symlink_to(secret_file)
    (out / "sub" / "leak-dir").symlink_to(secret_dir)
    staging.stage_out(staging.read(output_task(s3_bucket)), s3, root, NEVER)
    assert uploaded(s3_admin, s3_bucket) == ["out/data.csv", "out/sub/deep.txt"]
    assert secret_file.read_text() == "PRIVATE"
    assert (secret_dir / "key.pem").read_text() == "PRIVATE"


@needs_root
def test_stage_out_takes_a_run_as_users_folders_back_before_reading(
    s3: S3, s3_bucket: str, s3_admin: Any, tmp_path: Path
) -> None:
    secret_file, _ = secrets(tmp_path)
    root = tmp_path / "staging"
    out = root / "output1"
    (out / "sub").mkdir(parents=True)
    (out / "sub").chmod(0o777)
    (out / "mine.txt").write_text("the task's")
    os.link(secret_file, out / "hardlink.txt")  # root's file: not the task's
    for path in (root, out, out / "sub", out / "mine.txt"):
        os.chown(path, NOBODY.uid, NOBODY.gid)
    staging.stage_out(staging.read(output_task(s3_bucket)), s3, root, NEVER)
    assert uploaded(s3_admin, s3_bucket) == ["out/mine.txt"]
    for folder in (root, out, out / "sub"):
        found = os.stat(folder)
        assert (found.st_uid, stat.S_IMODE(found.st_mode)) == (0, 0o700), folder
    assert secret_file.read_text() == "PRIVATE"


def test_cleanup_never_follows_a_link_out(tmp_path: Path) -> None:
    secret_file, secret_dir = secrets(tmp_path)
    root = tmp_path / "staging"
    (root / "output1").mkdir(parents=True)
    (root / "output1" / "to-dir").symlink_to(secret_dir)
    (root / "output1" / "to-file").symlink_to(secret_file)
    secret_dir.chmod(0o755)
    staging.cleanup(root)
    assert not root.exists()
    assert stat.S_IMODE(secret_dir.stat().st_mode) == 0o755
    assert (secret_dir / "key.pem").read_text() == "PRIVATE"


@pytest.mark.parametrize("key", ["stdout", "stderr"])
def test_a_local_output_path_is_refused_under_run_as(tmp_path: Path, key: str) -> None:
    paths = AttemptPaths(tmp_path / "attempt")
    paths.workdir.mkdir(parents=True)
    s3 = S3(region=None, log=structlog.get_logger())  # never called by planning
    task = make_task(command="true", **{key: "/etc/cron.d/planted"})
    ctx = ActivityContext(paths=paths, s3=s3, run_as=NOBODY)
    with pytest.raises(ActivityError, match="local path") as caught:
        plan(task, ctx)
    assert caught.value.error_id == "InvalidField"
    assert plan(task, ActivityContext(paths=paths, s3=s3)) is not None
    s3_task = make_task(command="true", **{key: "s3://bucket/out.txt"})
    assert plan(s3_task, ctx) is not None
