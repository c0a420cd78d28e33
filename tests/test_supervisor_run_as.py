"""The supervisor with ``run_as`` (as root): the child's ids, groups and
environment, and its whole tree killed, a double-forked orphan of that user
included. Output files are never opened through a symlink (any user)."""

from __future__ import annotations

import os
import pwd
import time
from pathlib import Path

import psutil
import pytest
import structlog

from runner import runas, supervisor
from runner.errors import SpawnError
from runner.supervisor import Supervisor

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def spawn_sh(
    tmp_path: Path, script: str, *, user: runas.RunAs | None, env: dict[str, str]
) -> Supervisor:
    return Supervisor.spawn(
        ["/bin/sh", "-c", script],
        cwd=tmp_path,
        env=supervisor.task_environment(env, {}, run_as=user),
        stdout=tmp_path / "StdOutput",
        stderr=tmp_path / "StdError",
        marker=f"run-as-{os.getpid()}-{time.monotonic_ns()}",
        log=structlog.get_logger(),
        run_as=user,
    )


def wait_lines(path: Path, count: int, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines()
        if len(lines) >= count:
            return lines
        assert time.monotonic() < deadline, f"{path}: {lines}"
        time.sleep(0.01)


@needs_root
def test_the_child_runs_as_the_user_with_its_groups_and_home(tmp_path: Path) -> None:
    user = runas.resolve("nobody")
    env = {"PATH": os.environ["PATH"], "AWS_SECRET_ACCESS_KEY": "s3cr3t"}
    child = spawn_sh(
        tmp_path,
        'id -u; id -g; id -G; echo "$HOME $USER $LOGNAME"; '
        'echo "key=${AWS_SECRET_ACCESS_KEY:-none}"; pwd',
        user=user,
        env=env,
    )
    outcome = child.wait_exit(10)
    assert outcome is not None
    assert outcome.returncode == 0, (tmp_path / "StdError").read_text()
    entry = pwd.getpwnam("nobody")
    uid, gid, groups, identity, key, cwd = wait_lines(tmp_path / "StdOutput", 6)
    assert (int(uid), int(gid)) == (entry.pw_uid, entry.pw_gid)
    assert {int(g) for g in groups.split()} == set(user.groups)
    assert identity == f"{entry.pw_dir} nobody nobody"
    assert key == "key=none"
    assert cwd == str(tmp_path)
    assert os.stat(tmp_path / "StdOutput").st_uid == 0


@needs_root
def test_the_users_tree_is_killed_orphans_included(tmp_path: Path) -> None:
    user = runas.resolve("nobody")
    child = spawn_sh(
        tmp_path,
        "(setsid sleep 600 & echo $!); sleep 600 & echo $!; wait",
        user=user,
        env={"PATH": os.environ["PATH"]},
    )
    pids = [int(line) for line in wait_lines(tmp_path / "StdOutput", 2)]
    orphan = psutil.Process(pids[0])
    assert orphan.uids().real == 65534
    assert orphan.ppid() != child.pid  # re-parented: only its marker finds it
    outcome = child.terminate(grace=2.0)
    assert outcome.killed
    survivors = [pid for pid in pids if alive(pid)]
    assert survivors == []


def alive(pid: int) -> bool:
    """Running, and not a zombie that init has yet to reap."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_an_output_file_is_never_opened_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_text("keep me\n")
    (tmp_path / "StdOutput").symlink_to(target)
    with pytest.raises(SpawnError, match="StdOutput"):
        spawn_sh(tmp_path, "echo planted", user=None, env=dict(os.environ))
    assert target.read_text() == "keep me\n"
