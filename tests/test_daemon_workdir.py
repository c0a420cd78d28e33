"""End to end: the work dir stays the runner's (issue 12). Each case starts the real
runner as root or as ``nobody`` (through ``setpriv``), under ``umask 000``, on a
work dir made by ``mkdtemp(dir="/tmp")`` and given to that user, then looks at
the disk as root: modes, owners, and the targets of planted symlinks.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.localservice import LocalService
from tests.support.pipelines import (
    default_object,
    instances,
    shell,
    submit,
    wait_instances,
)
from tests.support.runners import RunnerProcess
from tests.support.users import NOBODY, folder_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (setpriv)")

SpawnAs = Callable[..., RunnerProcess]
USERS = [pytest.param(0, id="root"), pytest.param(NOBODY, id="nobody")]
OLD_S = 30 * 86400.0
#: Made by the task (umask 077, so private too) or its script (0700).
SCRIPT = "command.sh"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def victim(folder: Path, uid: int, name: str = "victim") -> Path:
    """A file the runner's user could write, which nothing must touch."""
    path = folder / name
    path.write_text("keep me\n")
    os.chown(path, uid, uid)
    return path


def plant(link: Path, target: Path, uid: int) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.chown(link.parent, uid, uid)
    link.symlink_to(target)
    os.chown(link, uid, uid, follow_symlinks=False)


def stop(runner: RunnerProcess) -> None:
    runner.signal()
    assert runner.wait_exit() == 0


@pytest.mark.parametrize("uid", USERS)
def test_every_folder_is_0700_and_every_file_0600_under_umask_000(
    dp: Any, spawn_runner_as: SpawnAs, tmp_folders: list[Path], uid: int
) -> None:
    work = folder_for(uid, tmp_folders)
    work.chmod(0o755)  # an older runner's
    pipeline_id = submit(
        dp, [default_object(), shell("Hello", "echo hi; mkdir sub; echo x > sub/f")]
    )
    runner = spawn_runner_as(uid, work_dir=work)
    wait_instances(dp, pipeline_id, {"FINISHED"})
    stop(runner)
    fixed = runner.events("work_dir_mode_fixed")
    assert [(e["mode_was"], e["mode"]) for e in fixed] == [("0755", "0700")]
    found = {"dirs": 0, "files": 0}
    for folder, dirs, files in os.walk(work):
        for name in dirs:
            assert mode(Path(folder, name)) == 0o700, Path(folder, name)
        for name in files:
            want = 0o700 if name == SCRIPT else 0o600
            assert mode(Path(folder, name)) == want, Path(folder, name)
        for name in (*dirs, *files):
            assert os.lstat(Path(folder, name)).st_uid == uid
        found["dirs"] += len(dirs)
        found["files"] += len(files)
    assert mode(work) == 0o700
    names = {p.name for p in work.rglob("*")}
    assert {"dp-runner.lock", "taskrunner-id", "journal.db", "dp-runner.log"} <= names
    assert {"StdOutput", "StdError", "TaskRunner.log", SCRIPT, "f"} <= names


@pytest.mark.parametrize("uid", USERS)
@pytest.mark.parametrize(
    "name", ["dp-runner.lock", "taskrunner-id", "logs/dp-runner.log", "journal.db"]
)
def test_a_planted_link_to_a_runner_file_stops_it_untouched(
    service: LocalService,
    spawn_runner_as: SpawnAs,
    tmp_folders: list[Path],
    uid: int,
    name: str,
) -> None:
    work = folder_for(uid, tmp_folders)
    target = victim(folder_for(uid, tmp_folders), uid)
    plant(work / name, target, uid)
    runner = spawn_runner_as(uid, work_dir=work)
    assert runner.wait_exit() == 78
    assert re.search("symlink|symbolic link", runner.log_path.read_text())
    assert target.read_text() == "keep me\n"
    assert service.calls("ReportTaskRunnerHeartbeat") == []
    assert service.calls("PollForTask") == []


@pytest.mark.parametrize("uid", USERS)
def test_what_a_task_plants_in_the_work_dir_is_never_followed(
    service: LocalService,
    dp: Any,
    spawn_runner_as: SpawnAs,
    tmp_folders: list[Path],
    uid: int,
) -> None:
    """Attempt 1 plants links where attempt 2 writes its output and its runner
    log, then fails; a link in ``attempts/`` to old files is there from the
    start, for the pruning at start to meet."""
    work = folder_for(uid, tmp_folders)
    elsewhere = folder_for(uid, tmp_folders)
    stdout_target = victim(elsewhere, uid, "stdout-victim")
    log_target = victim(elsewhere, uid, "log-victim")
    old = elsewhere / "a" / "b" / "c"
    old.mkdir(parents=True)
    (old / "precious").write_text("keep me\n")
    for folder in (old, old.parent, old.parent.parent):
        os.utime(folder, (time.time() - OLD_S,) * 2)
    plant(work / "attempts" / "x", elsewhere, uid)
    os.utime(work / "attempts" / "x", (time.time() - OLD_S,) * 2, follow_symlinks=False)
    planter = (
        'if [ "${DP_ATTEMPT_ID##*=}" = 1 ]; then'
        ' next="../../${DP_ATTEMPT_ID%=1}=2" && mkdir "$next"'
        f' && ln -s {stdout_target} "$next/StdOutput"'
        f' && ln -s {log_target} "$next/TaskRunner.log"; exit 1; fi; echo second'
    )
    pipeline_id = submit(
        dp, [default_object(), shell("Planter", planter, maximumRetries="1")]
    )
    runner = spawn_runner_as(uid, work_dir=work)
    wait_instances(dp, pipeline_id, {"FAILED"}, timeout=30)
    stop(runner)
    assert stdout_target.read_text() == "keep me\n"
    assert log_target.read_text() == "keep me\n"
    assert (old / "precious").read_text() == "keep me\n"
    assert not (work / "attempts" / "x").is_symlink()  # removed as a link
    statuses = [c.request for c in service.calls("SetTaskStatus") if not c.error]
    assert [s["taskStatus"] for s in statuses] == ["FAILED", "FAILED"]
    assert "StdOutput" in statuses[1]["errorMessage"]
    assert len(instances(dp, pipeline_id)) == 1


def test_a_work_dir_of_another_user_gets_a_folder_of_the_runner(
    dp: Any, spawn_runner_as: SpawnAs, tmp_folders: list[Path]
) -> None:
    """A container volume mounted root-owned 0777: the runner (nobody) works in
    ``dp-runner-65534`` in it."""
    volume = folder_for(0, tmp_folders)
    volume.chmod(0o777)
    pipeline_id = submit(dp, [default_object(), shell("Hello", "echo hi")])
    runner = spawn_runner_as(NOBODY, work_dir=volume)
    wait_instances(dp, pipeline_id, {"FINISHED"})
    stop(runner)
    own = volume / f"dp-runner-{NOBODY}"
    (shared,) = runner.events("work_dir_shared")
    assert shared["work_dir"] == str(own)
    assert (os.stat(own).st_uid, mode(own)) == (NOBODY, 0o700)
    assert [p.read_text() for p in own.glob("attempts/*/*/*/*/StdOutput")] == ["hi\n"]
    assert sorted(p.name for p in volume.iterdir()) == [own.name]


def test_a_work_dir_the_runner_cannot_use_exits_78(
    spawn_runner_as: SpawnAs, tmp_folders: list[Path]
) -> None:
    volume = folder_for(0, tmp_folders)
    volume.chmod(0o755)
    runner = spawn_runner_as(NOBODY, work_dir=volume)
    assert runner.wait_exit() == 78
    assert f"cannot make its own folder dp-runner-{NOBODY}" in (
        runner.log_path.read_text()
    )


def test_a_symlinked_work_dir_is_resolved_at_start(
    dp: Any, spawn_runner_as: SpawnAs, tmp_folders: list[Path]
) -> None:
    real = folder_for(NOBODY, tmp_folders)
    links = folder_for(0, tmp_folders)
    links.chmod(0o755)
    link = links / "work"
    link.symlink_to(real)
    pipeline_id = submit(dp, [default_object(), shell("Hello", "echo hi")])
    runner = spawn_runner_as(NOBODY, work_dir=link)
    wait_instances(dp, pipeline_id, {"FINISHED"})
    stop(runner)
    assert [p.read_text() for p in real.glob("attempts/*/*/*/*/StdOutput")] == ["hi\n"]
