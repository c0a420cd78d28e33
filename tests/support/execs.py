"""Shared by several test modules (moved here: no test module imports another)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

from tests.support.runners import REPO

DEFINITIONS = REPO / "tests" / "exec"


def run_exec(
    definition: Path, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``dp-runner exec DEFINITION ARGS`` with the work dir under ``tmp_path``."""
    return subprocess.run(
        exec_command(definition, tmp_path, *args),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
        env=env,
    )


def slot(hours_ago: float) -> dt.datetime:
    """A slot start ``hours_ago`` before now, to the second, in UTC."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)
    return now - dt.timedelta(hours=hours_ago)


def exec_command(definition: Path, tmp_path: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "runner",
        "exec",
        str(definition),
        "--work-dir",
        str(tmp_path / "work"),
        "--log-format",
        "json",
        *args,
    ]
