"""A full disk never loses a status and never looks like a configuration error
(issue 22). The work dir is a small tmpfs mounted for the test (the tests run as
root, as the suite's other kernel tests do)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from runner.errors import HostFaultError
from runner.localservice import LocalService
from runner.task.journal import Journal
from tests.conftest import REPO, runner_command

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
    assert raised.value.exit_code == 75
