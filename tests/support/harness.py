"""``dp-runner run`` below ``tests/scripts/kill9_harness.py`` (a child subreaper that
reaps what it adopts and restarts the runner after a kill -9), and the
``harnessed`` fixture that stops every harness a test started.

Loaded from the root conftest (``pytest_plugins``)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from runner.localservice import LocalService
from tests.support.runners import REPO, SCRIPTS, runner_command
from tests.support.waiting import HANG_GUARD_S, wait_for


class HarnessedRunner:
    """``dp-runner run`` below the kill -9 harness; its JSON log in one file."""

    def __init__(self, service: LocalService, tmp_path: Path, *args: str) -> None:
        self.log_path = tmp_path / "runner.log"
        self.work_dir = tmp_path / "work"
        command = runner_command(
            service.endpoint_url, self.work_dir, "--worker-group", "wg", *args
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(SCRIPTS / "kill9_harness.py"),
                "--log",
                str(self.log_path),
                "--",
                *command,
            ],
            stdout=subprocess.DEVNULL,
            cwd=REPO,
        )

    def events(self, name: str) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event.get("event") == name:
                found.append(event)
        return found

    def wait_event(self, name: str, count: int = 1) -> dict[str, Any]:
        events = wait_for(lambda: self.events(name)[count - 1 :], HANG_GUARD_S, name)
        return dict(events[0])

    def kill9_and_restart(self) -> None:
        self.process.send_signal(signal.SIGUSR1)

    def stop(self) -> None:
        if self.process.poll() is None:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                child.kill()
            self.process.kill()
        self.process.wait(10)


@pytest.fixture
def harnessed(service: LocalService, tmp_path: Path) -> Iterator[list[HarnessedRunner]]:
    started: list[HarnessedRunner] = []
    yield started
    for runner in started:
        runner.stop()
