"""Each attempt in a cgroup of its own, end to end, on this machine's real cgroup2
(/sys/fs/cgroup/unified, writable as root, PID 1 not systemd).

A task leaves ``setsid env -i sleep 1000 &``: an orphan in a session of its own,
without the marker in its environment, that no walk of the process table can tie
to the attempt. It must die at the task's normal end, at a cancel, at
``attemptTimeout`` and after a ``kill -9`` of the runner and a restart (with
``run_as`` and without), and no attempt cgroup may be left behind. A task of the
runner's own user can move itself out of its cgroup; a ``run_as`` task cannot.
The fallback is in ``test_cgroup_fallback.py``; the kill alone, the sweep at start
and the journal's column in ``test_cgroup_kill.py``.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.localservice import LocalService
from tests.support.cgroups import (
    NEEDS_CGROUP2,
    UNIFIED,
    Spawn,
    gone,
    orphan,
    orphan_task,
    until,
)
from tests.support.harness import HarnessedRunner
from tests.support.pipelines import default_object, instance_of, shell, submit
from tests.support.runners import RunnerProcess
from tests.support.users import NOBODY, folder_for
from tests.support.waiting import wait_for

pytestmark = NEEDS_CGROUP2


def attempt_cgroups(group: Path) -> list[str]:
    return sorted(p.name for p in group.iterdir() if p.name.startswith("task-"))


def started_in_cgroup(runner: RunnerProcess | HarnessedRunner) -> Path:
    """The runner's group, from its start-up line, which names the cgroup."""
    started = runner.wait_event("worker_started")
    assert started["containment"] == "cgroup", started
    assert "PID 1 is not systemd" in started["containment_reason"]
    group = Path(started["cgroup"])
    assert group.parent == UNIFIED  # the tests run in the root cgroup
    runner_pid = group.name.split("-")[2]  # dp-runner-<pid>-<random>
    # in its leaf, or for a spawn in an attempt's cgroup beside it
    (own,) = [
        line[3:]
        for line in Path(f"/proc/{runner_pid}/cgroup").read_text().splitlines()
        if line.startswith("0::")
    ]
    assert Path(own).parent == Path("/") / group.name
    return group


def ran_in(cgroup_file: Path, group: Path) -> None:
    """The task's shell ran in an attempt cgroup of the runner's group."""
    line = wait_for(lambda: cgroup_file.exists() and cgroup_file.read_text(), 10, "cg")
    (unified,) = [x for x in line.splitlines() if x.startswith("0::")]
    path = Path(unified[3:])
    assert path.parent.name == group.name
    assert path.name.startswith("task-")


def stopped(runner: RunnerProcess, group: Path) -> None:
    """A SIGTERM ends the runner, and its own group goes with it."""
    runner.signal()
    assert runner.wait_exit() == 0
    assert not group.exists()


def test_the_orphan_dies_at_the_tasks_normal_end(
    dp: Any, spawn_runner: Spawn, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    command, pid_file, cgroup_file = orphan_task(tmp_path, then=until(go))
    submit(dp, [default_object(), shell("Orphan", command, maximumRetries="0")])
    runner = spawn_runner()
    group = started_in_cgroup(runner)
    left = orphan(pid_file)
    ran_in(cgroup_file, group)
    go.touch()
    finished = runner.wait_event("task_finished")
    assert finished["outcome"] == "finished"
    assert gone(left)
    assert attempt_cgroups(group) == []
    stopped(runner, group)


def test_the_orphan_dies_at_a_cancel(
    dp: Any, spawn_runner: Spawn, tmp_path: Path
) -> None:
    command, pid_file, cgroup_file = orphan_task(tmp_path, then="sleep 1000")
    pipeline_id = submit(
        dp, [default_object(), shell("Orphan", command, maximumRetries="0")]
    )
    runner = spawn_runner()
    group = started_in_cgroup(runner)
    left = orphan(pid_file)
    ran_in(cgroup_file, group)
    assert len(attempt_cgroups(group)) == 1
    dp.set_status(
        pipelineId=pipeline_id,
        objectIds=[instance_of(dp, pipeline_id, "Orphan")],
        status="TRY_CANCEL",
    )
    assert runner.wait_event("task_finished")["outcome"] == "canceled"
    assert gone(left)
    assert attempt_cgroups(group) == []
    stopped(runner, group)


def test_the_orphan_dies_at_attempt_timeout(
    dp: Any, spawn_runner: Spawn, tmp_path: Path
) -> None:
    command, pid_file, _ = orphan_task(tmp_path, then="sleep 1000")
    timeout = {"attemptTimeout": "2 seconds", "maximumRetries": "0"}
    submit(dp, [default_object(), shell("Orphan", command, **timeout)])
    runner = spawn_runner()
    group = started_in_cgroup(runner)
    left = orphan(pid_file)
    finished = runner.wait_event("task_finished")
    assert finished["error_id"] == "AttemptTimeout"
    assert gone(left)
    assert attempt_cgroups(group) == []
    stopped(runner, group)


@pytest.fixture
def harnessed(service: LocalService, tmp_path: Path) -> Iterator[list[HarnessedRunner]]:
    started: list[HarnessedRunner] = []
    yield started
    for runner in started:
        runner.stop()


@pytest.mark.parametrize("run_as", [(), ("--run-as", "nobody")])
def test_the_orphan_dies_after_a_kill_9_of_the_runner_and_a_restart(
    run_as: tuple[str, ...],
    service: LocalService,
    dp: Any,
    tmp_path: Path,
    harnessed: list[HarnessedRunner],
    tmp_folders: list[Path],
) -> None:
    files = folder_for(NOBODY, tmp_folders)  # a run_as task can write there too
    command, pid_file, cgroup_file = orphan_task(files, then="sleep 1000")
    submit(dp, [default_object(), shell("Orphan", command, maximumRetries="0")])
    work = ("--work-dir", str(folder_for(0, tmp_folders))) if run_as else ()
    runner = HarnessedRunner(service, tmp_path, *run_as, *work)
    harnessed.append(runner)
    old_group = started_in_cgroup(runner)
    left = orphan(pid_file)
    assert left.uids().real == (NOBODY if run_as else 0)
    ran_in(cgroup_file, old_group)

    runner.kill9_and_restart()
    recovered = runner.wait_event("journal_recovered", count=2)  # the restart's
    assert recovered["processes_found"] >= 2  # the task's shell and the orphan
    assert gone(left)
    assert not old_group.exists()  # its attempt's cgroup, then the dead runner's
    restarted = runner.wait_event("worker_started", count=2)
    new_group = Path(restarted["cgroup"])
    assert new_group != old_group
    runner.process.send_signal(signal.SIGTERM)  # the harness passes it on
    assert runner.process.wait(30) == 0
    assert not new_group.exists()


# ------------------------------------------------------------ who can leave


@pytest.mark.parametrize(
    ("run_as", "expected"), [((), "moved"), (("--run-as", "nobody"), "stayed")]
)
def test_only_run_as_keeps_a_task_from_moving_itself_out_of_its_cgroup(
    run_as: tuple[str, ...],
    expected: str,
    dp: Any,
    spawn_runner_as: Callable[..., RunnerProcess],
    tmp_folders: list[Path],
) -> None:
    """A task of the runner's own user can write its pid into the runner's leaf
    (the docs say so); a ``run_as`` task cannot write the runner's cgroup files."""
    out = folder_for(NOBODY, tmp_folders) / "moved"
    command = (
        "cg=$(sed -n 's/^0:://p' /proc/self/cgroup); "
        f'if echo $$ > "{UNIFIED}${{cg%/*}}/runner/cgroup.procs"; '
        f"then echo moved; else echo stayed; fi > {out}; "
        f"sed -n 's/^0:://p' /proc/self/cgroup >> {out}"
    )
    submit(dp, [default_object(), shell("Escape", command, maximumRetries="0")])
    runner = spawn_runner_as(0, *run_as)
    group = started_in_cgroup(runner)
    assert runner.wait_event("task_finished")["outcome"] == "finished"
    answer, now_in = out.read_text().split()
    assert answer == expected
    left_to = "runner" if expected == "moved" else "task-"
    assert Path(now_in).name.startswith(left_to)
    assert Path(now_in).parent.name == group.name
    stopped(runner, group)
