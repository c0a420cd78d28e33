"""Supervisor against real processes: outcomes, output files, environment, and
killing whole trees (TERM-ignoring child, setsid grandchild, double-forked orphan).

The test process is never made a subreaper: the subreaper case runs in
tests/scripts/subreaper_harness.py, a process of its own, as ``dp-runner run`` would.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import structlog
from structlog.testing import capture_logs

from runner import supervisor
from runner.errors import SpawnError
from runner.supervisor import MARKER_ENV, Supervisor

SCRIPTS = Path(__file__).resolve().parent / "scripts"
REPO = Path(__file__).resolve().parent.parent
CHILD = str(SCRIPTS / "child.py")
TREE = str(SCRIPTS / "tree.py")


def spawn(tmp_path: Path, *argv: str, marker: str = "attempt-1") -> Supervisor:
    return Supervisor.spawn(
        list(argv),
        cwd=tmp_path,
        env=supervisor.task_environment(os.environ, {}),
        stdout=tmp_path / "StdOutput",
        stderr=tmp_path / "StdError",
        # Unique per test process: a scan finds markers of every process of our
        # uid, and another test run may share the machine.
        marker=f"{marker}-{os.getpid()}",
        log=structlog.get_logger(),
    )


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def gone(pid: int) -> bool:
    """Dead, or a zombie that its new parent (init) has yet to reap."""
    try:
        proc = psutil.Process(pid)
        return proc.status() == psutil.STATUS_ZOMBIE and proc.ppid() != os.getpid()
    except psutil.NoSuchProcess:
        return True


def our_zombies() -> list[int]:
    return [
        p.pid for p in psutil.Process().children() if p.status() == psutil.STATUS_ZOMBIE
    ]


def test_exit_zero_writes_output_to_files(tmp_path: Path) -> None:
    sup = spawn(tmp_path, sys.executable, CHILD, "exit", "0")
    outcome = sup.wait_exit(10)
    assert outcome is not None
    assert (outcome.returncode, outcome.signal, outcome.killed) == (0, None, False)
    assert outcome.succeeded
    assert outcome.duration_s > 0
    assert (tmp_path / "StdOutput").read_text() == "to stdout\n"
    assert (tmp_path / "StdError").read_text() == "to stderr\n"


def test_exit_n_is_reported_and_output_appends(tmp_path: Path) -> None:
    assert spawn(tmp_path, sys.executable, CHILD, "exit", "0").wait_exit(10)
    outcome = spawn(tmp_path, sys.executable, CHILD, "exit", "3").wait_exit(10)
    assert outcome is not None
    assert (outcome.returncode, outcome.signal) == (3, None)
    assert not outcome.succeeded
    assert (tmp_path / "StdOutput").read_text() == "to stdout\n" * 2


def test_death_by_signal_names_the_signal(tmp_path: Path) -> None:
    sup = spawn(tmp_path, sys.executable, CHILD, "signal", "TERM")
    outcome = sup.wait_exit(10)
    assert outcome is not None
    assert (outcome.returncode, outcome.signal, outcome.killed) == (
        None,
        signal.SIGTERM,
        False,
    )


def test_wait_exit_times_out_while_running(tmp_path: Path) -> None:
    sup = spawn(tmp_path, sys.executable, CHILD, "obey-term", str(tmp_path / "up"))
    try:
        assert sup.poll_nowait() is None
        assert sup.wait_exit(0.05) is None
    finally:
        sup.terminate(1.0)
    assert sup.poll_nowait() is not None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["/nonexistent/program"], "No such file"),
        ([__file__], "Permission denied"),  # not executable
        ([], "empty command line"),
    ],
)
def test_spawn_failure_raises_spawn_error(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    with pytest.raises(SpawnError, match=message):
        spawn(tmp_path, *argv)


def test_missing_working_directory_raises_spawn_error(tmp_path: Path) -> None:
    with pytest.raises(SpawnError, match="nowhere"):
        Supervisor.spawn(
            [sys.executable, CHILD, "exit", "0"],
            cwd=tmp_path / "nowhere",
            env={},
            stdout=tmp_path / "out",
            stderr=tmp_path / "err",
            marker="m",
            log=structlog.get_logger(),
        )


def test_task_environment_drops_runner_variables() -> None:
    base = {
        "PATH": "/bin",
        "NOTIFY_SOCKET": "@x",
        "WATCHDOG_USEC": "1",
        "WATCHDOG_PID": "1",
        "LISTEN_FDS": "1",
        "LISTEN_PID": "1",
        "LISTEN_FDNAMES": "a",
        "DP_RUNNER_WORKER_GROUPS": "wg",
        MARKER_ENV: "outer",
    }
    env = supervisor.task_environment(base, {"AWS_REGION": "eu-west-1"})
    assert env == {"PATH": "/bin", "AWS_REGION": "eu-west-1"}


def test_child_gets_scrubbed_environment_and_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("DP_RUNNER_SECRET_THING", "x")
    sup = Supervisor.spawn(
        [sys.executable, CHILD, "env"],
        cwd=tmp_path,
        env=supervisor.task_environment(os.environ, {"EXTRA": "1"}),
        stdout=tmp_path / "out",
        stderr=tmp_path / "out",
        marker="attempt-42",
        log=structlog.get_logger(),
    )
    assert sup.wait_exit(10) is not None
    env = json.loads((tmp_path / "out").read_text())
    assert env["EXTRA"] == "1"
    assert env[MARKER_ENV] == "attempt-42"
    assert "NOTIFY_SOCKET" not in env
    assert "DP_RUNNER_SECRET_THING" not in env


def test_child_runs_with_umask_077(tmp_path: Path) -> None:
    sup = spawn(tmp_path, sys.executable, CHILD, "touch", "made-by-task")
    assert sup.wait_exit(10) is not None
    assert stat.S_IMODE((tmp_path / "made-by-task").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "StdOutput").stat().st_mode) == 0o600


def test_terminate_kills_tree_with_setsid_grandchild_and_orphan(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids.json"
    sup = spawn(tmp_path, sys.executable, TREE, str(pid_file))
    wait_for(pid_file.exists)
    pids = json.loads(pid_file.read_text())
    assert psutil.Process(pids["orphan"]).ppid() != pids["task"]  # really orphaned

    with capture_logs() as logs:
        outcome = sup.terminate(0.2)

    assert outcome.killed
    assert outcome.signal == signal.SIGTERM  # the task itself obeyed TERM
    for name, pid in pids.items():
        assert gone(pid), name
    assert our_zombies() == []
    killed = [e for e in logs if e["event"] == "child_killed"]
    assert killed == [
        {
            "event": "child_killed",
            "log_level": "info",
            "pid": sup.pid,
            "signal": "SIGKILL",
            "survivors": 1,  # the TERM-ignoring child
        }
    ]


def test_terminate_returns_soon_after_grace_when_term_is_ignored(
    tmp_path: Path,
) -> None:
    ready = tmp_path / "ready"
    sup = spawn(tmp_path, sys.executable, CHILD, "ignore-term", str(ready))
    wait_for(ready.exists)
    started = time.monotonic()
    outcome = sup.terminate(0.2)
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 1.0
    assert (outcome.returncode, outcome.signal, outcome.killed) == (
        None,
        signal.SIGKILL,
        True,
    )
    with pytest.raises(ProcessLookupError):
        os.killpg(sup.pid, 0)


def test_terminate_is_idempotent_and_keeps_a_natural_outcome(tmp_path: Path) -> None:
    sup = spawn(tmp_path, sys.executable, CHILD, "exit", "4")
    natural = sup.wait_exit(10)
    assert natural is not None
    first = sup.terminate(0.2)
    assert first == natural
    assert not first.killed
    assert sup.terminate(0.2) is first


def test_kill_leftovers_kills_what_an_exited_task_left_behind(tmp_path: Path) -> None:
    helper_file = tmp_path / "helper"
    sup = spawn(tmp_path, sys.executable, CHILD, "leave-orphan", str(helper_file))
    outcome = sup.wait_exit(10)
    assert outcome is not None
    assert outcome.returncode == 0
    helper = int(helper_file.read_text())
    assert not gone(helper)

    assert sup.kill_leftovers(0.5) == 1

    assert gone(helper)
    assert sup.kill_leftovers(0.5) == 0


def test_kill_leftovers_leaves_other_attempts_alone(tmp_path: Path) -> None:
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    ready = other_dir / "ready"
    other = spawn(other_dir, sys.executable, CHILD, "obey-term", str(ready), marker="B")
    try:
        wait_for(ready.exists)
        mine = spawn(tmp_path, sys.executable, CHILD, "exit", "0", marker="A")
        assert mine.wait_exit(10) is not None
        assert mine.kill_leftovers(0.2) == 0
        assert other.poll_nowait() is None
    finally:
        other.terminate(1.0)


def test_reap_orphans_reaps_strays_but_never_a_supervised_child(
    tmp_path: Path,
) -> None:
    sup = spawn(tmp_path, sys.executable, CHILD, "exit", "3")
    stray = os.posix_spawn("/bin/true", ["true"], {})
    wait_for(lambda: sorted(our_zombies()) == sorted([sup.pid, stray]))

    assert supervisor.reap_orphans(exclude=()) == [stray]

    outcome = sup.wait_exit(10)  # its exit status was not stolen
    assert outcome is not None
    assert outcome.returncode == 3


@pytest.mark.parametrize("task_mode", ["obey-term", "ignore-term"])
def test_subreaper_adopts_and_reaps_the_whole_tree(
    tmp_path: Path, task_mode: str
) -> None:
    extra = ["ignore-term"] if task_mode == "ignore-term" else []
    report = run_harness("subreaper_harness.py", str(tmp_path), *extra)
    assert report["subreaper"] is True
    assert report["orphan_parent"] == result_harness_pid(report)
    assert report["alive"] == []
    assert report["zombies"] == []
    assert report["groups_alive"] == []
    assert report["outcome"]["killed"] is True
    expected = signal.SIGKILL if task_mode == "ignore-term" else signal.SIGTERM
    assert report["outcome"]["signal"] == expected
    assert report["terminate_s"] < 1.5


def run_harness(script: str, *args: str) -> dict[str, Any]:
    """Run a harness from tests/scripts in a process of its own (it makes itself a
    subreaper, which the test process must never be); its JSON report."""
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    report: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return report


def result_harness_pid(report: dict[str, object]) -> object:
    """The harness reports its own pid as the orphan's parent: it adopted it."""
    return report["harness_pid"]


def test_kill_leftovers_in_a_subreaper_misses_no_leftover(tmp_path: Path) -> None:
    """The shortcut that skips the process-table scan (empty group, no stray
    child) must still find helpers left in the group or in a session of their
    own, and leave another attempt's task alone."""
    report = run_harness("leftovers_harness.py", str(tmp_path))
    assert report["subreaper"] is True
    cases = report["cases"]
    assert cases["alone"] == {"found": 0, "helper_alive": False}
    assert cases["clean"] == {"found": 0, "helper_alive": False}
    assert cases["in-group"] == {"found": 1, "helper_alive": False}
    assert cases["setsid"] == {"found": 1, "helper_alive": False}
    assert report["other_alive"] is True
    assert report["zombies"] == []


def test_interrupt_wait_ends_a_wait_early(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    sup = spawn(tmp_path, sys.executable, CHILD, "obey-term", str(ready))
    try:
        wait_for(ready.exists)
        waker = threading.Timer(0.1, sup.interrupt_wait)
        started = time.monotonic()
        waker.start()
        assert sup.wait_exit(30) is None
        assert time.monotonic() - started < 15
        assert sup.poll_nowait() is None
    finally:
        sup.terminate(1.0)
    assert gone(sup.pid)


def test_wait_exit_sees_the_end_after_an_interrupt(tmp_path: Path) -> None:
    sup = spawn(tmp_path, sys.executable, CHILD, "exit", "5")
    sup.interrupt_wait()
    outcome = None
    deadline = time.monotonic() + 10
    while outcome is None and time.monotonic() < deadline:
        outcome = sup.wait_exit(1.0)
    assert outcome is not None
    assert outcome.returncode == 5
    sup.interrupt_wait()  # after the end: harmless
