"""``dp-runner exec``: one slot of one activity or precondition, as a scheduler runs it.

Every test runs the CLI as a real process on a small definition of ``tests/exec/``,
with its embedded local service over real HTTP, and checks the exit code and what
the task did (its output in the attempt folder, the processes that are gone, what
its lines and files hold). The cases with S3 and a database are in
tests/test_exec_services.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.execs import DEFINITIONS, exec_command, run_exec, slot
from tests.support.runners import REPO, SCRIPTS
from tests.support.waiting import wait_for

DAILY = DEFINITIONS / "daily.json"


def outputs(tmp_path: Path, component: str) -> list[str]:
    """The StdOutput of each attempt of ``component``."""
    found = (tmp_path / "work").glob(f"attempts/*/{component}/*/*/StdOutput")
    return [path.read_text() for path in found]


def log_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_finished_activity_sees_the_given_scheduled_time(tmp_path: Path) -> None:
    """Exit 0; the command's expressions are the slot's. The slot is 3 days old
    (AWS refuses to activate a schedule that old: exec runs it). Say's
    dependsOn (Fail) and precondition (Never) are the scheduler's: neither runs."""
    start = slot(72)
    done = run_exec(DAILY, tmp_path, "--object", "Say", "--scheduled-start", f"{start}")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    end = start + dt.timedelta(days=1)
    assert outputs(tmp_path, "Say") == [
        f"start={start:%Y-%m-%dT%H:%M:%S} end={end:%Y-%m-%dT%H:%M:%S} "
        f"day={start:%Y-%m-%d}\n"
    ]
    ran = {p.name for p in (tmp_path / "work").glob("attempts/*/*")}
    assert ran == {"Say"}
    verdict = [e for e in log_lines(done.stdout) if e["event"] == "exec_verdict"]
    assert [(e["status"], e["exit_code"]) for e in verdict] == [("FINISHED", 0)]


def test_a_time_with_an_offset_is_the_same_slot_in_utc(tmp_path: Path) -> None:
    start = "2026-06-01T02:30+02:00"
    done = run_exec(DAILY, tmp_path, "--object", "Say", "--scheduled-start", start)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert outputs(tmp_path, "Say") == [
        "start=2026-06-01T00:30:00 end=2026-06-02T00:30:00 day=2026-06-01\n"
    ]


def test_failed_activity_exits_4_with_its_error_on_stderr(tmp_path: Path) -> None:
    """``exit 3`` FAILED once, not retried (the scheduler retries), error on stderr."""
    started = time.monotonic()
    done = run_exec(
        DAILY, tmp_path, "--object", "Fail", "--scheduled-start", f"{slot(1)}"
    )
    assert done.returncode == 4, done.stdout + done.stderr[-3000:]
    (finished,) = [e for e in log_lines(done.stdout) if e["event"] == "task_finished"]
    assert finished["outcome"] == "failed"
    assert finished["error_id"]
    assert f"FAILED: {finished['error_id']}: " in done.stderr
    assert "code 3" in done.stderr
    assert len(list((tmp_path / "work").glob("attempts/*/Fail/*/*"))) == 1
    assert time.monotonic() - started < 60  # not its 10-minute retryDelay


def test_attempt_timeout_applies(tmp_path: Path) -> None:
    """Slow sleeps 120 s under an attemptTimeout of 2 s: FAILED AttemptTimeout."""
    started = time.monotonic()
    done = run_exec(
        DAILY, tmp_path, "--object", "Slow", "--scheduled-start", f"{slot(1)}"
    )
    assert done.returncode == 4, done.stdout + done.stderr[-3000:]
    assert "FAILED: AttemptTimeout: " in done.stderr
    assert time.monotonic() - started < 60


def test_help_lists_the_settings_it_takes_from_run() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runner", "exec", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=REPO,
    )
    for option in (
        "--object",
        "--scheduled-start",
        "--parameter-values",
        "--parameter-values-uri",
        "--config",
        "--work-dir",
        "--kill-grace",
        "--run-as",
        "--log-format",
        "--log-level",
    ):
        assert option in done.stdout


def test_false_precondition_exits_3_at_its_first_check(tmp_path: Path) -> None:
    """Never's retryDelay is 10 minutes and its preconditionTimeout an hour:
    exec answers after the first check."""
    done = run_exec(
        DAILY, tmp_path, "--object", "Never", "--scheduled-start", f"{slot(1)}"
    )
    assert done.returncode == 3, done.stdout + done.stderr[-3000:]
    assert "FALSE" in done.stderr
    assert len(list((tmp_path / "work").glob("attempts/*/Never/*/*"))) == 1


def test_true_precondition_exits_0(tmp_path: Path) -> None:
    done = run_exec(
        DAILY, tmp_path, "--object", "Always", "--scheduled-start", f"{slot(1)}"
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    ran = {p.name for p in (tmp_path / "work").glob("attempts/*/*")}
    assert ran == {"Always"}  # its carrier activity never runs


def test_dangling_ref_anywhere_exits_78(tmp_path: Path) -> None:
    """The reference is in an activity exec does not run: AWS would refuse the
    whole definition, and so does exec."""
    done = run_exec(
        DEFINITIONS / "dangling.json",
        tmp_path,
        "--object",
        "Hello",
        "--scheduled-start",
        "2026-06-01T00:00:00",
    )
    assert done.returncode == 78, done.stdout + done.stderr[-3000:]
    assert "NoSuchActivity" in done.stderr
    assert not list((tmp_path / "work").glob("attempts/*/*"))


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    for args in (
        ["--object", "Daily", "--scheduled-start", "2026-06-01"],
        ["--object", "Nobody", "--scheduled-start", "2026-06-01"],
        ["--object", "Say", "--scheduled-start", "yesterday"],
        ["--object", "Say"],
    ):
        done = run_exec(DAILY, tmp_path, *args)
        assert done.returncode == 2, (args, done.stderr)


@pytest.mark.parametrize("source", ["environment", "values file"])
def test_masked_value_never_on_argv_nor_in_any_output(
    tmp_path: Path, source: str
) -> None:
    """The value reaches the command (it checks its hash), never exec's argv,
    the task's environment (the command checks), or any line or log file."""
    secret = "hunter2-exec-" + os.urandom(6).hex()
    digest = hashlib.sha256(secret.encode()).hexdigest()
    argv = ["--object", "Secret", "--scheduled-start", f"{slot(2)}"]
    env = dict(os.environ)
    if source == "environment":
        env["DP_PARAMETER_myPassword"] = secret
        argv += ["--parameter-values", f"myPasswordSha256={digest}"]
    else:
        values = tmp_path / "values.json"
        doc = {"values": {"*myPassword": secret, "myPasswordSha256": digest}}
        values.write_text(json.dumps(doc))
        argv += ["--parameter-values-uri", f"file://{values}"]
    done = run_exec(DAILY, tmp_path, *argv, env=env)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert outputs(tmp_path, "Secret") == ["the password matches\n"]
    assert all(secret not in arg for arg in exec_command(DAILY, tmp_path, *argv))
    assert secret not in done.stdout + done.stderr
    # command.sh is the task's own command, which holds the value it uses (0600)
    written = [
        p
        for p in (tmp_path / "work").rglob("*")
        if p.is_file() and p.name != "command.sh"
    ]
    assert written
    assert all(secret.encode() not in p.read_bytes() for p in written)


def test_masked_value_on_the_command_line_is_refused(tmp_path: Path) -> None:
    secret = "on-argv-" + os.urandom(6).hex()
    done = run_exec(
        DAILY,
        tmp_path,
        "--object",
        "Secret",
        "--scheduled-start",
        "2026-06-01",
        "--parameter-values",
        f"*myPassword={secret}",
    )
    assert done.returncode == 2, done.stderr
    assert "DP_PARAMETER_myPassword" in done.stderr
    assert secret not in done.stdout + done.stderr


def test_sigterm_kills_the_tree_and_exits_5(tmp_path: Path) -> None:
    """The tree ignores SIGTERM and has a setsid grandchild: all of it is dead
    within kill_grace + 5 s of the signal, and exec exits 5."""
    pid_file = tmp_path / "pids.json"
    kill_grace = 1.0
    process = subprocess.Popen(
        exec_command(
            DAILY,
            tmp_path,
            "--object",
            "Tree",
            "--scheduled-start",
            f"{slot(1)}",
            "--kill-grace",
            str(kill_grace),
            "--parameter-values",
            f"myPython={sys.executable}",
            f"myTreeScript={SCRIPTS / 'task_tree.py'}",
            f"myPidFile={pid_file}",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        wait_for(pid_file.exists, 60, "the task tree")
        pids: dict[str, int] = json.loads(pid_file.read_text())
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        def gone() -> bool:
            return all(_gone(pid) for pid in pids.values())

        wait_for(gone, kill_grace + 5, f"the tree {pids} to die")
        assert time.monotonic() - signalled <= kill_grace + 5
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 5, stdout[-2000:] + stderr[-2000:]
    assert "SIGNALED" in stderr


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
