"""Shared by several test modules (moved here: no test module imports another)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.support.runners import RunnerProcess
from tests.support.waiting import wait_for

UNIFIED = Path("/sys/fs/cgroup/unified")


Spawn = Callable[..., RunnerProcess]


NEEDS_CGROUP2 = pytest.mark.skipif(
    os.geteuid() != 0 or not (UNIFIED / "cgroup.procs").exists(),
    reason="the cgroup tests need root and cgroup2 at /sys/fs/cgroup/unified",
)


def orphan_task(tmp_path: Path, then: str = "true") -> tuple[str, Path, Path]:
    """A command that leaves the orphan (its pid in one file, the task's own
    cgroup in another), then runs ``then``."""
    pid_file, cgroup_file = tmp_path / "orphan.pid", tmp_path / "task.cgroup"
    command = (
        f"cat /proc/self/cgroup > {cgroup_file}; "
        f"setsid env -i sleep 1000 & echo $! > {pid_file}.tmp; "
        f"mv {pid_file}.tmp {pid_file}; {then}"
    )
    return command, pid_file, cgroup_file


def orphan(pid_file: Path) -> psutil.Process:
    """The orphan, once it runs, checked to be the ``sleep 1000`` without the
    marker in its environment, in a session of its own."""
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), 15, "pid"))
    proc = psutil.Process(pid)
    wait_for(lambda: proc.cmdline() == ["sleep", "1000"], 10, "the orphan's exec")
    assert proc.environ() == {}
    assert os.getsid(pid) == pid
    return proc


def gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def until(go: Path) -> str:
    """Shell that waits for the test to create ``go``: the task ends when told."""
    return f"while [ ! -e {go} ]; do sleep 0.05; done"
