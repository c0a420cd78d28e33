"""The fallback where no cgroup can be had, forced in a mount namespace of the
runner's own (``unshare -m``, private propagation): a read-only cgroup2 mount, or a
systemd that seems to own the runner's cgroup. The start-up line names the
fallback and why; a ``setsid env -i`` orphan still dies at its task's end while one
attempt runs (the runner's adopted child), and two attempts' orphans without the
marker are told apart by their sessions.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from runner.localservice import LocalService
from tests.support.cgroups import (
    NEEDS_CGROUP2,
    UNIFIED,
    gone,
    orphan,
    orphan_task,
    until,
)
from tests.support.pipelines import default_object, shell, submit
from tests.support.runners import REPO, RunnerProcess, runner_command
from tests.support.waiting import wait_for

pytestmark = NEEDS_CGROUP2


def namespaced_runner(
    service: LocalService, tmp_path: Path, setup: str, *args: str
) -> RunnerProcess:
    """``dp-runner run`` in a mount namespace of its own (``unshare -m``, private
    propagation) where the shell ``setup`` ran first."""
    work_dir, log_path = tmp_path / "work", tmp_path / "runner.log"
    command = runner_command(
        service.endpoint_url, work_dir, "--worker-group", "wg", *args
    )
    script = f'{setup} && exec "$@"'
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private",
             "sh", "-c", script, "sh", *command],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=REPO,
        )  # fmt: skip
    return RunnerProcess(process, log_path, work_dir)


@pytest.fixture
def namespaced(
    service: LocalService, tmp_path: Path
) -> Iterator[Callable[..., RunnerProcess]]:
    started: list[RunnerProcess] = []

    def spawn(setup: str, *args: str) -> RunnerProcess:
        runner = namespaced_runner(service, tmp_path, setup, *args)
        started.append(runner)
        return runner

    yield spawn
    for runner in started:
        if runner.process.poll() is None:
            runner.process.kill()
        runner.process.wait(10)


READ_ONLY_CGROUP2 = (
    f"mount --bind {UNIFIED} {UNIFIED} && mount -o remount,bind,ro {UNIFIED}"
)


def test_the_fallback_is_named_and_still_kills_the_orphan_at_the_tasks_end(
    dp: Any, namespaced: Callable[..., RunnerProcess], tmp_path: Path
) -> None:
    assert shutil.which("unshare") is not None
    go = tmp_path / "go"
    command, pid_file, cgroup_file = orphan_task(tmp_path, then=until(go))
    submit(dp, [default_object(), shell("Orphan", command, maximumRetries="0")])
    runner = namespaced(READ_ONLY_CGROUP2)
    started = runner.wait_event("worker_started")
    assert started["containment"] == "process-tree"
    assert started["containment_reason"] == f"cgroup2 is mounted read-only at {UNIFIED}"
    assert "cgroup" not in started
    left = orphan(pid_file)
    assert "task-" not in cgroup_file.read_text()
    go.touch()
    finished = runner.wait_event("task_finished")
    assert finished["outcome"] == "finished"
    wait_for(lambda: gone(left), 5, "the orphan's end")  # found as the adopted child


def test_the_fallback_tells_two_attempts_orphans_apart_by_their_sessions(
    dp: Any, namespaced: Callable[..., RunnerProcess], tmp_path: Path
) -> None:
    """Two attempts at once, each leaving ``env -i sleep 1000`` (no marker) in
    its own session: at the end of one, only its orphan dies."""
    files = {}
    for name in ("a", "b"):
        go, pid_file = tmp_path / f"go-{name}", tmp_path / f"{name}.pid"
        command = (
            f"env -i sleep 1000 & echo $! > {pid_file}.tmp; "
            f"mv {pid_file}.tmp {pid_file}; {until(go)}"
        )
        submit(dp, [default_object(), shell("Orphan", command, maximumRetries="0")])
        files[name] = (go, pid_file)
    runner = namespaced(READ_ONLY_CGROUP2, "--max-tasks", "2")
    assert runner.wait_event("worker_started")["containment"] == "process-tree"
    orphans = {}
    for name, (_, pid_file) in files.items():
        pid = int(wait_for(lambda f=pid_file: f.exists() and f.read_text(), 15, name))
        orphans[name] = psutil.Process(pid)
        wait_for(lambda p=orphans[name]: p.cmdline() == ["sleep", "1000"], 10, "exec")
        assert orphans[name].environ() == {}
    files["a"][0].touch()
    wait_for(lambda: len(runner.events("task_finished")) == 1, 15, "a's end")
    assert gone(orphans["a"])
    assert not gone(orphans["b"])
    files["b"][0].touch()
    wait_for(lambda: len(runner.events("task_finished")) == 2, 15, "b's end")
    assert gone(orphans["b"])


def test_under_a_systemd_that_owns_its_cgroup_the_runner_writes_nothing_there(
    dp: Any, namespaced: Callable[..., RunnerProcess]
) -> None:
    """PID 1 seems to be systemd (/run/systemd/system, in the namespace only) and
    the runner's cgroup carries no delegation mark: it falls back and says so."""
    runner = namespaced("mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system")
    started = runner.wait_event("worker_started")
    assert started["containment"] == "process-tree"
    assert started["containment_reason"].startswith("systemd owns the runner's cgroup")
    runner.signal()
    assert runner.wait_exit() == 0
    mine = f"dp-runner-{runner.process.pid}-"
    assert not [p for p in UNIFIED.iterdir() if p.name.startswith(mine)]
