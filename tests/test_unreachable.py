"""A runner whose endpoint does not answer: it says so at once, warns about the
retries at a bounded cadence, and a SIGTERM during the outage stops it at once."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from tests.support.runners import REPO, RunnerProcess, runner_command
from tests.support.waiting import wait_for


def test_an_unreachable_endpoint_warns_once_and_a_sigterm_ends_it_at_once(
    tmp_path: Path,
) -> None:
    with socket.socket() as sock:  # bound, never listening: refused, and kept ours
        sock.bind(("127.0.0.1", 0))
        run_against_a_closed_port(f"http://127.0.0.1:{sock.getsockname()[1]}", tmp_path)


def run_against_a_closed_port(endpoint: str, tmp_path: Path) -> None:
    log_path = tmp_path / "runner.log"
    command = runner_command(endpoint, tmp_path / "work", "--worker-group", "wg")
    env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true"}
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--log-level", "debug"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env=env,
        )
    runner = RunnerProcess(process, log_path, tmp_path / "work")
    try:
        said = runner.wait_event("service_unreachable", timeout=15)
        assert said["error"] == "EndpointConnectionError"
        runner.wait_event("worker_started")

        def poll_retries() -> list[dict[str, object]] | None:
            found = [
                e
                for e in runner.events("client_retry_scheduled")
                if e["operation"] == "PollForTask"
            ]
            return found if len(found) >= 3 else None

        retries = wait_for(poll_retries, 30, "three retries of the poll")
        # the first retry warns at once; the next ones, within the minute, are debug
        assert [e["level"] for e in retries[:3]] == ["warning", "debug", "debug"]
        runner.signal()
        began = time.monotonic()
        assert runner.wait_exit(10) == 0
        assert time.monotonic() - began < 5  # the backoff is cut short
        assert not runner.events("poll_failed")  # a shutdown is not a bug
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
