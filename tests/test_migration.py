"""Coming from the Java Task Runner: each of its flags gets a one-line answer that
names dp-runner's equivalent (or says there is none, and why), a ``run`` option
given without ``run`` points to ``run``, and the migration table in the docs
covers every Java option. The runner starts as a real process each time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runner import migration
from tests.support.runners import REPO

#: Every option of TaskRunner-1.0.jar (its --help and the Developer Guide's
#: "Task Runner configuration options" page).
JAVA_OPTIONS = (
    "--help", "--config", "--accessId", "--secretKey", "--endpoint", "--workerGroup",
    "--taskrunnerId", "--output", "--region", "--logUri", "--tasks", "--proxyHost",
    "--proxyPort", "--proxyUsername", "--proxyPassword", "--proxyDomain",
    "--proxyWorkstation", "--s3NoProxy", "--jdbcDriverS3Path",
)  # fmt: skip


def docs() -> str:
    """Every page of the docs (the table moves from docs/incoming/ into a page)."""
    return "\n".join(p.read_text() for p in sorted((REPO / "docs").rglob("*.md")))


def dp_runner(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        capture_output=True, text=True, timeout=60, check=False, cwd=REPO,
    )  # fmt: skip


def test_every_java_option_has_an_answer_and_a_row_in_the_table() -> None:
    table = docs()
    for option in JAVA_OPTIONS:
        assert option in migration.JAVA_FLAGS or option in migration.SAME_NAME
        assert f"`{option}" in table, option
    assert "us-east-1" in table  # the Java runner's default region
    assert set(migration.JAVA_FLAGS) | set(migration.SAME_NAME) == set(JAVA_OPTIONS)


@pytest.mark.parametrize("flag", sorted(migration.JAVA_FLAGS))
def test_a_java_flag_gets_one_line_naming_the_equivalent(flag: str) -> None:
    done = dp_runner("run", flag, "x")

    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line == (
        f"dp-runner: {flag} is the Java Task Runner's flag; "
        f"in dp-runner: {migration.JAVA_FLAGS[flag]}"
    )


def test_the_mistyped_proxy_user_names_the_proxy_variable() -> None:
    done = dp_runner("run", "--proxyUsername", "x")

    assert done.returncode == 2
    assert "HTTPS_PROXY=http://USER:PASSWORD@HOST:PORT" in done.stderr
    assert "--hostname" not in done.stderr


def test_java_flags_are_known_with_a_value_and_in_any_case() -> None:
    done = dp_runner("run", "--taskRunnerId=tr-1", "--worker-group", "wg")

    assert done.returncode == 2
    assert "--taskRunnerId is the Java Task Runner's flag" in done.stderr
    assert "--taskrunner-id ID" in done.stderr


def test_a_run_option_without_run_points_to_run() -> None:
    done = dp_runner("--worker-group", "wg", "--max-tasks", "3")

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "dp-runner: --worker-group is an option of run: "
        "dp-runner run --worker-group wg --max-tasks 3"
    ]


def test_the_java_credentials_json_as_config_says_what_it_becomes(
    tmp_path: Path,
) -> None:
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"access-id": "AKIA", "private-key": "s3cr3t"}))

    done = dp_runner("run", "--config", str(credentials), "--worker-group", "wg")

    assert done.returncode == 78
    assert "as the Java Task Runner's credentials.json is" in done.stderr
    assert "standard chain" in done.stderr
    assert "s3cr3t" not in done.stderr
    assert "invalid TOML" not in done.stderr


def test_dp_runners_own_options_are_still_click_s() -> None:
    done = dp_runner("run", "--max-task", "3")

    assert done.returncode == 2
    assert "Java" not in done.stderr
    assert dp_runner("--version").returncode == 0
