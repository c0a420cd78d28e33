"""Shared by several test modules (moved here: no test module imports another)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.runners import REPO

UNIT = REPO / "systemd" / "dp-runner.service"


def unit_with_exec_start(tmp_path: Path) -> Path:
    """A copy of the unit whose ExecStart runs this checkout's dp-runner."""
    dp_runner = Path(sys.executable).parent / "dp-runner"
    text = UNIT.read_text().replace("/opt/dp-runner/bin/dp-runner", str(dp_runner))
    copy = tmp_path / "dp-runner.service"
    copy.write_text(text)
    return copy


def verified_exposure(unit: Path) -> float:
    """``systemd-analyze verify`` passes on ``unit``; its offline exposure level."""
    verified = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    assert found is not None, security.stdout + security.stderr
    return float(found.group(1))
