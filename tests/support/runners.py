"""The runner as a real process: ``runner_command`` (short intervals, JSON logs),
``RunnerProcess`` (its log's events, signals, exit) and ``run_local`` (``dp-runner
run --local`` as a newcomer runs it); the checkout's and tests/scripts' paths."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.pipelines import REGION
from tests.support.waiting import HANG_GUARD_S, wait_for

REPO = Path(__file__).resolve().parents[2]


SCRIPTS = REPO / "tests" / "scripts"


@dataclass
class RunnerProcess:
    """A ``dp-runner run`` process and its JSON log."""

    process: subprocess.Popen[bytes]
    log_path: Path
    work_dir: Path
    _seen: list[dict[str, Any]] = field(default_factory=list)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        parsed = []
        for line in lines:
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return [e for e in parsed if name is None or e.get("event") == name]

    def wait_event(
        self, name: str, timeout: float = HANG_GUARD_S, **match: Any
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for event in self.events(name):
                if all(event.get(k) == v for k, v in match.items()):
                    return event
            if self.process.poll() is not None:
                pytest.fail(
                    f"runner exited ({self.process.returncode}) before "
                    f"{name}:\n{self.log_path.read_text()[-3000:]}"
                )
            return None

        return wait_for(found, timeout, f"event {name} {match}")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def wait_exit(self, timeout: float = HANG_GUARD_S) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"runner did not exit:\n{self.log_path.read_text()[-3000:]}")


def runner_command(endpoint_url: str, work_dir: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "runner",
        "run",
        "--endpoint-url",
        endpoint_url,
        "--region",
        REGION,
        "--work-dir",
        str(work_dir),
        "--heartbeat-interval",
        "0.1",
        "--runner-heartbeat-interval",
        "0.5",
        "--lease-timeout",
        "2",
        "--kill-grace",
        "0.5",
        "--drain-timeout",
        "5",
        "--log-format",
        "json",
        *args,
    ]


def run_local(
    definition: Path,
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    prefix: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """``dp-runner run --local DEFINITION`` as a newcomer runs it, with the work
    dir under ``tmp_path`` and JSON logs; the finished process. ``prefix``: the
    argv the runner's command is run through (say, ``unshare``)."""
    return subprocess.run(
        [
            *prefix,
            sys.executable,
            "-m",
            "runner",
            "run",
            "--local",
            str(definition),
            "--work-dir",
            str(tmp_path / "work"),
            "--log-format",
            "json",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
        env=env,
    )
