"""The runner's own files outside ``workdir``: ``logs/dp-runner.log``, an attempt's
``TaskRunner.log`` and the journal are mode 0600 whatever the umask, and none of
them is opened through a planted symlink (design.md §3)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from runner import logs
from runner.errors import ConfigError
from runner.task.attemptlogs import AttemptLog
from runner.task.journal import Journal

LOG = structlog.get_logger("test")


@pytest.fixture(autouse=True)
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.fixture
def file_log() -> Iterator[None]:
    """``add_file_log`` installs a handler on the root logger: removed after."""
    yield
    logs.remove_file_log()


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def planted(tmp_path: Path, link: Path) -> Path:
    target = tmp_path / "victim"
    target.write_text("keep me\n")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return target


def test_the_file_log_is_private_and_tightened(tmp_path: Path, file_log: None) -> None:
    (tmp_path / logs.FILE_LOG_NAME).write_text("a line of an older runner\n")
    (tmp_path / logs.FILE_LOG_NAME).chmod(0o644)
    handler = logs.add_file_log(tmp_path)
    logging.getLogger("test").warning("hello")
    handler.flush()
    assert mode(tmp_path / logs.FILE_LOG_NAME) == 0o600
    handler.doRollover()
    logging.getLogger("test").warning("after the rotation")
    handler.flush()
    for path in tmp_path.iterdir():
        assert mode(path) == 0o600, path


def test_a_symlinked_file_log_is_refused(tmp_path: Path, file_log: None) -> None:
    target = planted(tmp_path, tmp_path / "logs" / logs.FILE_LOG_NAME)
    with pytest.raises(ConfigError, match="cannot open"):
        logs.add_file_log(tmp_path / "logs")
    assert target.read_text() == "keep me\n"


def test_the_attempt_log_is_private(tmp_path: Path) -> None:
    attempt_log = AttemptLog(tmp_path / "TaskRunner.log")
    attempt_log.write({"event": "task_started"})
    attempt_log.close()
    assert mode(tmp_path / "TaskRunner.log") == 0o600
    assert "task_started" in (tmp_path / "TaskRunner.log").read_text()


def test_a_symlinked_attempt_log_is_never_written(tmp_path: Path) -> None:
    target = planted(tmp_path, tmp_path / "attempt" / "TaskRunner.log")
    attempt_log = AttemptLog(tmp_path / "attempt" / "TaskRunner.log")
    attempt_log.write({"event": "task_started"})
    attempt_log.write({"event": "task_finished"})
    attempt_log.close()
    assert target.read_text() == "keep me\n"


def test_the_journal_and_its_companions_are_private(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.db", log=LOG)
    journal.attempt_opened("task", "attempt", tmp_path, "marker")
    names = ["journal.db", "journal.db-wal", "journal.db-shm"]
    modes = {name: mode(tmp_path / name) for name in names}
    journal.close()
    assert modes == dict.fromkeys(names, 0o600)


@pytest.mark.parametrize("companion", ["journal.db-wal", "journal.db-shm"])
def test_a_symlinked_journal_companion_is_never_followed(
    tmp_path: Path, companion: str
) -> None:
    """SQLite opens its companions with ``O_NOFOLLOW``: it refuses the link (a
    ``ConfigError`` at start) or replaces it; its target is never written."""
    target = planted(tmp_path, tmp_path / "work" / companion)
    try:
        journal = Journal.open(tmp_path / "work" / "journal.db", log=LOG)
    except ConfigError:
        pass
    else:
        journal.attempt_opened("task", "attempt", tmp_path, "marker")
        journal.close()
        again = Journal.open(tmp_path / "work" / "journal.db", log=LOG)
        assert [entry.task_id for entry in again.leftovers()] == ["task"]
        again.close()
    assert target.read_text() == "keep me\n"
