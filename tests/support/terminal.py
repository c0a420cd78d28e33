"""Shared by several test modules (moved here: no test module imports another)."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support.runners import REPO

EXAMPLES = REPO / "examples"


class Terminal:
    """``dp-runner`` with a pseudo-terminal for stdout and stderr; what it wrote is
    collected by a thread (``text``)."""

    def __init__(self, args: list[str], tmp_path: Path) -> None:
        master, slave = pty.openpty()
        env = {
            **os.environ,
            "TMPDIR": str(tmp_path),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runner", "run", *args],
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=slave,
            cwd=REPO,
            env=env,
        )
        os.close(slave)
        self._master = master
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 4096)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not chunk:
                break
            with self._lock:
                self._chunks.append(chunk)
        os.close(self._master)

    @property
    def text(self) -> str:
        with self._lock:
            return b"".join(self._chunks).decode(errors="replace").replace("\r\n", "\n")

    def wait_for(self, pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text, re.MULTILINE)
            if found:
                return found
            if self.process.poll() is not None:
                self._reader.join(5)
                found = re.search(pattern, self.text, re.MULTILINE)
                assert found, f"{pattern!r} never came:\n{self.text}"
                return found
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not within {DEADLINE_S} s:\n{self.text}")

    def finish(self) -> tuple[int, str]:
        code = self.process.wait(DEADLINE_S)
        self._reader.join(10)
        return code, self.text


def definition(tmp_path: Path, *objects: dict[str, object]) -> Path:
    path = tmp_path / "pipeline.json"
    default = {
        "id": "Default",
        "name": "Default",
        "scheduleType": "ondemand",
        "failureAndRerunMode": "CASCADE",
        "role": "DataPipelineDefaultRole",
        "resourceRole": "DataPipelineDefaultResourceRole",
        "workerGroup": "terminal-workers",
    }
    path.write_text(json.dumps({"objects": [default, *objects]}))
    return path


def made_dirs(tmp_path: Path) -> list[Path]:
    return list(tmp_path.glob("dp-runner-local-*"))


DEADLINE_S = 60.0
