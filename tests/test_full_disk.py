"""A full disk never loses a status and never looks like a configuration error
(issue 22). The work dir is a small tmpfs mounted for the test (the tests run as
root, as the suite's other kernel tests do)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from runner import cli
from runner.errors import HostFaultError
from runner.localservice import LocalService
from runner.task.journal import Journal
from tests.support.pipelines import default_object, shell, submit, wait_instances
from tests.support.runners import REPO, RunnerProcess, runner_command
from tests.support.waiting import wait_for

#: The size of the work dir's file system.
TMPFS_SIZE = "6m"


@contextlib.contextmanager
def tmpfs(path: Path, size: str = TMPFS_SIZE) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        check=True,
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> Path:
    """Write into ``folder`` until the file system is full; the file written."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as handle:
        while os.statvfs(folder).f_bavail > 0:
            try:
                handle.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    return filler


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "fs") as mounted:
        yield mounted


def test_a_start_on_a_full_disk_exits_75(service: LocalService, small_fs: Path) -> None:
    fill(small_fs)
    command = runner_command(
        service.endpoint_url, small_fs / "work", "--worker-group", "wg"
    )
    started = subprocess.run(
        command, capture_output=True, text=True, timeout=60, cwd=REPO, check=False
    )
    assert started.returncode == 75, started.stderr
    assert "No space left on device" in started.stderr or "full" in started.stderr
    assert os.statvfs(small_fs).f_bavail == 0  # it was full all along


def test_a_journal_on_a_full_disk_is_a_host_fault_not_a_config_error(
    small_fs: Path,
) -> None:
    fill(small_fs)
    with pytest.raises(HostFaultError) as raised:
        Journal.open(small_fs / "journal.db", log=structlog.get_logger())
    assert cli.exit_code(raised.value) == 75


def readyz(address: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{address}/readyz", timeout=5) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_task_that_fills_the_disk_is_finished_once_and_the_runner_serves_again(
    service: LocalService, dp: Any, tmp_path: Path, small_fs: Path
) -> None:
    """The task fills the work dir's file system and exits 0: the journal cannot
    take its status, which is sent all the same, once; meanwhile the runner
    takes no new task and is not ready; once space is freed it serves again."""
    fill_up = "dd if=/dev/zero of=fill bs=65536 2>/dev/null; exit 0"
    first = submit(dp, [default_object(), shell("Fill", fill_up, maximumRetries="1")])
    work_dir = small_fs / "work"
    command = runner_command(
        service.endpoint_url,
        work_dir,
        "--worker-group",
        "wg",
        "--http-address",
        "127.0.0.1:0",
    )
    log_path = tmp_path / "runner.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
        )
    runner = RunnerProcess(process, log_path, work_dir)
    try:
        address = runner.wait_event("worker_started")["http_address"]
        failed = runner.wait_event("journal_write_failed")
        assert failed["level"] == "error"
        wait_instances(dp, first, {"FINISHED"})
        code, text = readyz(address)
        assert code == 503
        assert "journal" in text
        assert runner.events("journal_write_resumed") == []

        for filler in work_dir.glob("attempts/*/*/*/*/work/fill"):
            filler.unlink()
        runner.wait_event("journal_write_resumed", timeout=20)
        second = submit(dp, [default_object(), shell("After", "echo after")])
        wait_instances(dp, second, {"FINISHED"})
        wait_for(lambda: readyz(address)[0] == 200, 20, "ready again")
        runner.signal()
        assert runner.wait_exit() == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
    sent = [c.request for c in service.calls("SetTaskStatus") if c.error is None]
    assert [s["taskStatus"] for s in sent] == ["FINISHED", "FINISHED"]
    started = [e["pipeline_id"] for e in runner.events("task_started")]
    assert started == [first, second]  # the full disk's task ran once
    journal = Journal.open(work_dir / "journal.db", log=structlog.get_logger())
    assert journal.entries() == []  # the owed writes were made: every row closed
    journal.close()
