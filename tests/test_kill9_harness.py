"""tests/scripts/kill9_harness.py, exercised with a trivial command: a child that
starts a grandchild and waits. SIGUSR1 kills the child with SIGKILL and starts it
again; the orphaned grandchild is adopted by the harness and reaped when it ends;
SIGTERM is forwarded and the harness exits with the child's code."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.runners import SCRIPTS
from tests.support.waiting import wait_for

#: Starts a grandchild, writes both pids to DIR/<own pid>.json, waits; on SIGTERM
#: kills and reaps the grandchild, then exits 7.
CHILD = """
import json, os, signal, subprocess, sys
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
def stop(signum, frame):
    grandchild.kill()
    grandchild.wait()
    sys.exit(7)
signal.signal(signal.SIGTERM, stop)
path = os.path.join(sys.argv[1], f"{os.getpid()}.json")
with open(path + ".tmp", "w") as handle:
    json.dump({"grandchild": grandchild.pid}, handle)
os.replace(path + ".tmp", path)
while True:
    signal.pause()
"""


class Harness:
    """The harness process and the JSON lines it printed so far."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(SCRIPTS / "kill9_harness.py"),
                "--log",
                str(tmp_path / "command.log"),
                "--",
                sys.executable,
                "-c",
                CHILD,
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def _drain(self) -> list[dict[str, Any]]:
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return self.seen

    def event(self, key: str, **match: Any) -> dict[str, Any]:
        """The first line with ``key`` (and ``match``), waiting up to 10 s."""

        def found() -> dict[str, Any] | None:
            for line in self._drain():
                if key in line and all(line.get(k) == v for k, v in match.items()):
                    return line
            return None

        return wait_for(found, 10, f"harness line {key} {match}")

    def starts(self, count: int) -> list[int]:
        """The pids of the first ``count`` starts of the command, in order."""

        def enough() -> list[int] | None:
            pids = [line["started"] for line in self._drain() if "started" in line]
            return pids[:count] if len(pids) >= count else None

        return wait_for(enough, 10, f"{count} starts")

    def grandchild(self, child: int) -> int:
        path = self.dir / f"{child}.json"
        wait_for(path.exists, 10, f"{path}")
        return int(json.loads(path.read_text())["grandchild"])


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    started = Harness(tmp_path)
    yield started
    if started.process.poll() is None:
        for child in psutil.Process(started.process.pid).children(recursive=True):
            child.kill()
        started.process.kill()
    started.process.wait(10)
    assert started.process.stdout is not None
    started.process.stdout.close()


def gone(pid: int) -> bool:
    """No such process at all: not even a zombie waiting to be reaped."""
    return not psutil.pid_exists(pid)


def test_sigusr1_kills_and_restarts_and_orphans_are_adopted_and_reaped(
    harness: Harness,
) -> None:
    (first,) = harness.starts(1)
    orphan = harness.grandchild(first)

    harness.process.send_signal(signal.SIGUSR1)
    harness.event("killed", killed=first)
    assert gone(first)  # SIGKILLed, and reaped by the harness
    _, restarted = harness.starts(2)
    # The killed child's grandchild re-parented to the harness, not to PID 1.
    wait_for(lambda: psutil.Process(orphan).ppid() == harness.process.pid)

    os.kill(orphan, signal.SIGKILL)
    harness.event("reaped", reaped=orphan)
    assert gone(orphan)

    grandchild = harness.grandchild(restarted)
    harness.process.send_signal(signal.SIGTERM)
    last = harness.event("exited")
    assert harness.process.wait(10) == 7
    assert last == {"exited": restarted, "returncode": 7, "adopted_alive": []}
    assert gone(restarted)
    assert gone(grandchild)


def test_a_command_killed_by_a_signal_exits_128_plus_n(harness: Harness) -> None:
    (child,) = harness.starts(1)
    orphan = harness.grandchild(child)  # up, with its handler installed
    os.kill(child, signal.SIGKILL)  # not through the harness: it just ends
    last = harness.event("exited")
    assert harness.process.wait(10) == 128 + signal.SIGKILL
    assert last == {"exited": child, "returncode": -9, "adopted_alive": [orphan]}
    os.kill(orphan, signal.SIGKILL)  # left to PID 1 once the harness is gone
