"""`dp-runner local` that cannot start: one line on stderr and exit 78 (EX_CONFIG),
never a traceback; and the same reasons as `StartupError` in process."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.localservice import LocalService, StartupError
from runner.localservice.store import SCHEMA_VERSION
from tests.support.localservice import make_client
from tests.support.runners import REPO


def local(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", "local", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=REPO,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 78, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("dp-runner local: ")
    return line


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def sqlite_file(path: Path, *statements: str) -> Path:
    with sqlite3.connect(path) as db:
        for statement in statements:
            db.execute(statement)
    return path


def test_a_port_in_use(taken_port: int) -> None:
    line = one_line(local("--port", str(taken_port)))
    assert line == (
        f"dp-runner local: cannot listen on 127.0.0.1:{taken_port}: "
        "Address already in use"
    )


def test_a_state_path_that_cannot_be_opened(tmp_path: Path) -> None:
    for path in (tmp_path / "no-such-dir" / "state.db", tmp_path):
        line = one_line(local("--port", "0", "--state", str(path)))
        assert line == (
            f"dp-runner local: cannot use {path} as the state file: unable to "
            "open database file"
        )


def test_a_state_file_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are notes, not a database\n" * 20)
    line = one_line(local("--port", "0", "--state", str(path)))
    assert line.endswith(f"cannot use {path} as the state file: file is not a database")


def test_a_state_file_of_an_unknown_schema_version(tmp_path: Path) -> None:
    path = sqlite_file(
        tmp_path / "future.db",
        "CREATE TABLE pipelines (id TEXT PRIMARY KEY, body TEXT NOT NULL)",
        f"PRAGMA user_version = {SCHEMA_VERSION + 1}",
    )
    line = one_line(local("--port", "0", "--state", str(path)))
    assert line == (
        f"dp-runner local: {path} holds state of schema version "
        f"{SCHEMA_VERSION + 1}; this dp-runner reads version {SCHEMA_VERSION}"
    )


def test_an_sqlite_file_of_another_program(tmp_path: Path) -> None:
    path = sqlite_file(tmp_path / "app.db", "CREATE TABLE users (name TEXT)")
    line = one_line(local("--port", "0", "--state", str(path)))
    assert "is an SQLite file of another program (tables: users)" in line
    with sqlite3.connect(path) as db:  # and it was left as it was
        assert db.execute("PRAGMA user_version").fetchone() == (0,)


def test_records_it_cannot_read(tmp_path: Path) -> None:
    path = sqlite_file(
        tmp_path / "odd.db",
        "CREATE TABLE pipelines (id TEXT PRIMARY KEY, body TEXT NOT NULL)",
        "INSERT INTO pipelines VALUES ('df-1', '{\"no\": \"such fields\"}')",
    )
    line = one_line(local("--port", "0", "--state", str(path)))
    assert f"{path} holds records this dp-runner cannot read" in line


def test_a_state_file_of_this_version_is_used_and_adopted(tmp_path: Path) -> None:
    """A file written before the version was kept (only our tables) is adopted."""
    path = sqlite_file(
        tmp_path / "old.db",
        "CREATE TABLE pipelines (id TEXT PRIMARY KEY, body TEXT NOT NULL)",
    )
    with LocalService(state_path=path):
        pass
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_in_process_the_same_reasons_are_a_startup_error(
    tmp_path: Path, taken_port: int
) -> None:
    with pytest.raises(StartupError, match="file is not a database"):
        LocalService(state_path=_text(tmp_path))
    service = LocalService(port=taken_port, state_path=tmp_path / "fine.db")
    with pytest.raises(StartupError, match="Address already in use"):
        service.start()
    with LocalService(state_path=tmp_path / "fine.db") as again:  # was closed
        assert again.port


def _text(tmp_path: Path) -> Path:
    path = tmp_path / "text.db"
    path.write_text("not sqlite " * 100)
    return path


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--port", "80000"), "--port 80000"),
        (("--port", "-1"), "--port -1"),
        (("--time-scale", "-1"), "--time-scale -1"),
        (("--time-scale", "0"), "--time-scale 0"),
        (("--time-scale", "nan"), "--time-scale nan"),
        (("--poll-hold", "-5"), "--poll-hold -5"),
    ],
)
def test_a_bad_flag_is_one_line_and_exit_78(args: tuple[str, ...], flag: str) -> None:
    assert one_line(local(*args)).startswith(f"dp-runner local: {flag}: must be")


def test_log_level_info_logs_one_line_per_request(tmp_path: Path) -> None:
    """operation, pipeline, outcome and time, for a good call and a refused one."""
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "local", "--port", "0", "--log-level", "info"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert process.stderr is not None
        serving = process.stderr.readline()
        endpoint = serving.rsplit(" ", 1)[-1].strip()
        dp = make_client(endpoint)
        pipeline_id = dp.create_pipeline(name="p", uniqueId="u")["pipelineId"]
        with pytest.raises(dp.exceptions.PipelineNotFoundException):
            dp.describe_pipelines(pipelineIds=["df-NOPE"])
        dp.delete_pipeline(pipelineId=pipeline_id)
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
    events = [json.loads(line)["event"] for line in out.splitlines()]
    requests = [e for e in events if e.startswith("localservice_request")]
    assert [r.split()[1:4] for r in requests] == [
        ["operation=CreatePipeline", "pipeline=-", "outcome=ok"],
        [
            "operation=DescribePipelines",
            "pipeline=-",
            "outcome=PipelineNotFoundException",
        ],
        ["operation=DeletePipeline", f"pipeline={pipeline_id}", "outcome=ok"],
    ]
    assert all(re.fullmatch(r"ms=\d+\.\d", r.split()[4]) for r in requests)
