"""``dp-runner run --local`` on a terminal: a line per change, retries, Ctrl-C, the
closing table, and the work dir removed once everything finished.

The runner's stdout and stderr are a real pseudo-terminal (``pty.openpty``), so
``--log-format auto`` chooses the terminal's output exactly as it does for a person.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil

from tests.support.runners import REPO, run_local
from tests.support.terminal import EXAMPLES, Terminal, definition, made_dirs


def test_each_change_is_a_line_and_a_retry_says_when(tmp_path: Path) -> None:
    term = Terminal(["--local", str(EXAMPLES / "retry-and-depend.json")], tmp_path)
    code, text = term.finish()
    assert code == 0, text
    transform = r"@Transform_\S+\s+"
    failed = re.search(
        transform + r"attempt 1 FAILED in \S+ s: ExitCode:1: the command exited with "
        r"code 1\n"
        r"    \| transient failure on the first attempt; the service retries it\n",
        text,
    )
    assert failed, text
    # retryDelay "2 minutes" from Default, on the service's clock (x0.01)
    assert re.search(transform + r"retry 1 of 2 in 1\.2 s$", text, re.MULTILINE), text
    assert re.search(transform + r"FINISHED\s+attempt 2$", text, re.MULTILINE), text
    assert re.search(r"@NumbersReady_\S+\s+check again in 1\.2 s$", text, re.M), text
    # the runner's own lines drop to warnings: a person reads the changes
    assert "task_acknowledged" not in text, text
    # the closing table, then the work dir it made is gone
    assert re.search(r"^@Load_\S+\s+FINISHED\s+1\s*$", text, re.MULTILINE), text
    assert re.search(r"work dir \S+ removed \(--keep keeps it\)", text), text
    assert made_dirs(tmp_path) == [], text


def test_a_failure_keeps_the_work_dir_and_shows_the_stderr_tail(tmp_path: Path) -> None:
    path = definition(
        tmp_path,
        {
            "id": "Fail",
            "name": "Fail",
            "type": "ShellCommandActivity",
            "command": "echo first >&2; echo 'disk full on /data' >&2; exit 3",
            "maximumRetries": "0",
        },
    )
    term = Terminal(["--local", str(path)], tmp_path)
    code, text = term.finish()
    assert code == 4, text
    assert re.search(
        r"@Fail_\S+\s+attempt 1 FAILED in \S+ s: ExitCode:3: .*\n"
        r"    \| first\n    \| disk full on /data\n",
        text,
    ), text
    assert "retry" not in text, text
    (kept,) = made_dirs(tmp_path)
    assert f"attempt folders: {kept / 'attempts'}" in text
    assert list(kept.glob("attempts/*/Fail/*/*/StdError")), text


def test_keep_keeps_the_work_dir_of_a_good_run(tmp_path: Path) -> None:
    term = Terminal(["--local", str(EXAMPLES / "hello.json"), "--keep"], tmp_path)
    code, text = term.finish()
    assert code == 0, text
    (kept,) = made_dirs(tmp_path)
    assert f"attempt folders: {kept / 'attempts'}" in text
    assert list(kept.glob("attempts/*/SayHello/*/*/StdOutput")), text


def tree_of(pid: int) -> Callable[[], list[psutil.Process]]:
    def alive() -> list[psutil.Process]:
        try:
            children = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [c for c in children if c.is_running() and c.status() != "zombie"]

    return alive


def test_ctrl_c_drains_and_a_second_stops_now(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    path = definition(
        tmp_path,
        {
            "id": "Long",
            "name": "Long",
            "type": "ShellCommandActivity",
            "command": f"touch {marker}; sleep 300",
        },
    )
    term = Terminal(["--local", str(path), "--kill-grace", "1"], tmp_path)
    term.wait_for(r"@Long_\S+\s+RUNNING\s+attempt 1$")
    term.process.send_signal(signal.SIGINT)
    term.wait_for(r"^draining — Ctrl-C again to stop now$")
    assert term.process.poll() is None  # the task still runs: a drain waits
    term.process.send_signal(signal.SIGINT)
    term.wait_for(r"^stopping now: running tasks are killed, then reported$")
    code, text = term.finish()
    assert code == 4, text
    assert re.search(r"^@Long_\S+\s+\S+", text, re.MULTILINE), text
    assert made_dirs(tmp_path), "a stopped run keeps its work dir"


def test_json_output_carries_the_same_events(tmp_path: Path) -> None:
    result = run_local(EXAMPLES / "retry-and-depend.json", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    events = [
        json.loads(line)
        for line in result.stdout.splitlines()
        if line.startswith("{") and '"instance_' in line
    ]
    attempts = [e for e in events if e["event"] == "instance_attempt"]
    (failure,) = [e for e in attempts if e["status"] == "FAILED"]
    (false,) = [e for e in attempts if e["status"] == "FALSE"]
    assert false["instance_id"].startswith("@NumbersReady")
    assert failure["error"].startswith("ExitCode:1")
    assert failure["stderr_tail"] == [
        "transient failure on the first attempt; the service retries it"
    ]
    retries = [e for e in events if e["event"] == "instance_retry"]
    transform = next(e for e in retries if e["instance_id"].startswith("@Transform"))
    assert (transform["retry"], transform["of"], transform["wait_s"]) == (1, 2, 1.2)
    assert any(e["event"] == "instance_status" for e in events)
    # --work-dir was given: yours, never removed
    assert (tmp_path / "work" / "attempts").is_dir()


def test_keep_without_local_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runner", "run", "--keep"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert "--keep goes with --local" in result.stderr
