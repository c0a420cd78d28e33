"""End to end, as root: ``run_as nobody`` (issue 12). A ``stage: true`` task and a
``scriptUri`` task run as nobody and write their output, and cannot list the work
dir or read the runner's files, its environment or any StdOutput; a task's tree is
killed whole on cancel, and after a ``kill -9`` of the runner its restart kills
what the task left. Without root, ``run_as`` exits 78.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from runner.localservice import LocalService
from tests.support.harness import HarnessedRunner
from tests.support.pipelines import (
    default_object,
    instances,
    shell,
    submit,
    wait_instances,
)
from tests.support.runners import SCRIPTS, RunnerProcess
from tests.support.trees import assert_all_gone, wait_tree
from tests.support.users import NOBODY, folder_for
from tests.support.waiting import HANG_GUARD_S, wait_for

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    # no lease lapses while a loaded machine runs the tasks as nobody: these tests
    # are about what a task reaches, not about lease expiry
    pytest.mark.leases_hold,
]

SpawnAs = Callable[..., RunnerProcess]
HOME = pwd.getpwuid(NOBODY).pw_dir

#: What a task as nobody tries; every line that it prints but ``probed`` is a leak.
PROBE = """#!/bin/sh
W={work}
echo "id=$(id -u):$(id -g) home=$HOME user=$USER logname=$LOGNAME"
echo "key=${{AWS_ACCESS_KEY_ID:-none}} secret=${{AWS_SECRET_ACCESS_KEY:-none}}"
echo "files=${{AWS_SHARED_CREDENTIALS_FILE:-none}} ${{AWS_CONFIG_FILE:-none}}"
for d in "$W" "$W/attempts" "$W/logs" ..; do
  ls "$d" >/dev/null 2>&1 && echo "LISTED $d"
done
for f in "$W/journal.db" "$W/dp-runner.lock" "$W/taskrunner-id" \\
    "$W/logs/dp-runner.log" ../StdOutput ../StdError ../TaskRunner.log \\
    "/proc/$PPID/environ" "$W"/attempts/*/*/*/*/StdOutput; do
  cat "$f" >/dev/null 2>&1 && echo "READ $f"
done
echo probed
"""
EXPECTED = [
    f"id={NOBODY}:{NOBODY} home={HOME} user=nobody logname=nobody",
    "key=none secret=none",
    "files=none none",
    "probed",
]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def owner(path: Path) -> int:
    return os.lstat(path).st_uid


def test_stage_and_script_tasks_run_as_nobody_and_reach_nothing_of_the_runner(
    dp: Any,
    spawn_runner_as: SpawnAs,
    tmp_folders: list[Path],
    s3_admin: Any,
    s3_bucket: str,
) -> None:
    work = folder_for(0, tmp_folders)
    probe = PROBE.format(work=work)
    b = s3_bucket
    s3_admin.put_object(Bucket=b, Key="in/data.txt", Body=b"the input\n")
    s3_admin.put_object(Bucket=b, Key="scripts/probe.sh", Body=probe.encode())
    stage_command = (
        probe.split("\n", 1)[1]
        + 'cp "$INPUT1_STAGING_DIR/data.txt" "$OUTPUT1_STAGING_DIR/copy.txt"'
        + ' && id -u > "$OUTPUT1_STAGING_DIR/uid.txt"'
    )
    objects = [
        default_object(),
        {
            "id": "In",
            "name": "In",
            "type": "S3DataNode",
            "filePath": f"s3://{b}/in/data.txt",
        },
        {
            "id": "Out",
            "name": "Out",
            "type": "S3DataNode",
            "directoryPath": f"s3://{b}/out/",
        },
        shell(
            "Staged",
            stage_command,
            stage="true",
            input={"ref": "In"},
            output={"ref": "Out"},
        ),
        {
            "id": "Fetched",
            "name": "Fetched",
            "type": "ShellCommandActivity",
            "scriptUri": f"s3://{b}/scripts/probe.sh",
        },
    ]
    pipeline_id = submit(dp, objects)
    runner = spawn_runner_as(0, "--run-as", "nobody", work_dir=work)
    wait_instances(dp, pipeline_id, {"FINISHED"})
    assert runner.wait_event("tasks_run_as")["uid"] == NOBODY

    outputs = sorted(work.glob("attempts/*/*/*/*/StdOutput"))
    assert len(outputs) == 2
    for stdout in outputs:
        assert stdout.read_text().splitlines() == EXPECTED, stdout
    copied = s3_admin.get_object(Bucket=b, Key="out/copy.txt")["Body"].read()
    assert copied == b"the input\n"
    uid = s3_admin.get_object(Bucket=b, Key="out/uid.txt")["Body"].read()
    assert uid.decode().strip() == str(NOBODY)

    attempt = outputs[0].parent
    for folder in (work, work / "attempts", *attempt.parents[:3], attempt):
        assert (owner(folder), mode(folder)) == (0, 0o711), folder
    for path in (work / "logs", *(work / n for n in ("journal.db", "dp-runner.lock"))):
        assert owner(path) == 0
        assert mode(path) in (0o700, 0o600), path
    for stdout in outputs:
        for name in ("StdOutput", "StdError", "TaskRunner.log"):
            path = stdout.parent / name
            assert (owner(path), mode(path)) == (0, 0o600), path
        assert (owner(stdout.parent / "work"), mode(stdout.parent / "work")) == (
            NOBODY,
            0o700,
        )
    scripts = [*work.glob("attempts/*/*/*/*/work/command.sh")]
    scripts += [*work.glob("attempts/*/*/*/*/work/probe.sh")]
    assert [owner(path) for path in scripts] == [NOBODY, NOBODY]


def tree_task(
    nobody_python: str, tmp_folders: list[Path]
) -> tuple[dict[str, Any], Path]:
    """A task that builds ``task_tree.py``'s tree as nobody: the script copied
    where nobody can read it, the pid file where nobody can write it."""
    folder = folder_for(NOBODY, tmp_folders)
    folder.chmod(0o755)
    script = folder / "task_tree.py"
    shutil.copy(SCRIPTS / "task_tree.py", script)
    pid_file = folder / "pids.json"
    return shell("Tree", f"exec {nobody_python} {script} {pid_file}"), pid_file


def assert_nobodys(pids: dict[str, int]) -> None:
    for pid in pids.values():
        assert psutil.Process(pid).uids().real == NOBODY


def test_cancel_kills_a_run_as_tree_whole(
    dp: Any,
    spawn_runner_as: SpawnAs,
    tmp_folders: list[Path],
    nobody_python: str,
) -> None:
    activity, pid_file = tree_task(nobody_python, tmp_folders)
    pipeline_id = submit(dp, [default_object(), activity])
    runner = spawn_runner_as(0, "--run-as", "nobody")
    pids = wait_tree(pid_file)
    assert_nobodys(pids)
    (instance_id,) = instances(dp, pipeline_id)
    dp.set_status(pipelineId=pipeline_id, objectIds=[instance_id], status="TRY_CANCEL")
    runner.wait_event("task_finished", outcome="canceled")
    assert_all_gone(pids)


def test_a_restart_kills_what_a_run_as_task_left(
    service: LocalService,
    dp: Any,
    tmp_path: Path,
    tmp_folders: list[Path],
    nobody_python: str,
    harnessed: list[HarnessedRunner],
) -> None:
    activity, pid_file = tree_task(nobody_python, tmp_folders)
    submit(dp, [default_object(), activity])
    work = folder_for(0, tmp_folders)
    runner = HarnessedRunner(
        service, tmp_path, "--run-as", "nobody", "--work-dir", str(work)
    )
    harnessed.append(runner)
    pids = wait_tree(pid_file)
    assert_nobodys(pids)
    runner.kill9_and_restart()
    recovered = runner.wait_event("journal_recovered", count=2)
    assert recovered["processes_found"] >= len(pids)
    assert recovered["processes_survived"] == 0
    assert_all_gone(pids)
    wait_for(
        lambda: [c for c in service.calls("SetTaskStatus") if not c.error],
        HANG_GUARD_S,
        "the restarted attempt's status",
    )


def test_run_as_without_root_exits_78(spawn_runner_as: SpawnAs) -> None:
    runner = spawn_runner_as(NOBODY, "--run-as", "nobody")
    assert runner.wait_exit() == 78
    assert "only a runner started as root" in runner.log_path.read_text()
