"""``/healthz``, ``/readyz``, ``/metrics`` and ``dp-runner healthcheck``, over HTTP,
against the real runner process and the local service."""

from __future__ import annotations

import io
import json
import socket
import struct
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from runner import logs
from runner.health import HealthServer
from runner.localservice import LocalService
from tests.support.pipelines import default_object, shell, submit, wait_instances
from tests.support.runners import REPO, RunnerProcess
from tests.support.waiting import wait_for

Spawn = Callable[..., RunnerProcess]
#: No proxy, whatever the machine's environment says.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(address: str, path: str) -> tuple[int, str]:
    try:
        with OPENER.open(f"http://{address}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name, sorted labels) -> value."""
    status, text = get(address, "/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def healthcheck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", "healthcheck", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=REPO,
    )


def start(spawn_runner: Spawn, *args: str) -> tuple[RunnerProcess, str]:
    runner = spawn_runner("--http-address", "127.0.0.1:0", *args)
    address = runner.wait_event("worker_started")["http_address"]
    assert address.startswith("127.0.0.1:")
    assert not address.endswith(":0")  # the port the OS chose
    return runner, address


def test_metrics_count_the_tasks_run(
    service: LocalService, dp: Any, spawn_runner: Spawn
) -> None:
    """Tasks on two worker groups: every task series carries its group, outcomes
    their activity type and error class, and every labelled counter is there at
    0 from the first scrape."""
    _, address = start(spawn_runner, "--worker-group", "wg2")
    at_start = samples(address)  # before any task
    first = submit(
        dp,
        [
            default_object(),
            shell("One", "true"),
            shell("Two", "echo two"),
            shell("Bad", "exit 3", maximumRetries="0"),
        ],
    )
    second = submit(
        dp,
        [
            default_object("wg2"),
            shell("Killed", "kill -9 $$", maximumRetries="0"),
        ],
    )
    wait_instances(dp, first, {"FINISHED", "FAILED"})
    wait_instances(dp, second, {"FAILED"})

    def settled() -> dict[Any, float] | None:
        found = samples(address)
        done = sum(
            v
            for (name, _), v in found.items()
            if name == "dp_runner_task_duration_seconds_count"
        )
        return found if done == 4 else None

    found = wait_for(settled, 15, "four tasks in the metrics")
    shell_type = ("activity_type", "ShellCommandActivity")

    def tasks(group: str, outcome: str, kind: tuple[str, str] = shell_type) -> float:
        labels = (kind, ("outcome", outcome), ("worker_group", group))
        return found["dp_runner_tasks_total", labels]

    def errors(group: str, error_class: str) -> float:
        labels = (shell_type, ("error_class", error_class), ("worker_group", group))
        return found["dp_runner_task_errors_total", labels]

    assert (tasks("wg", "finished"), tasks("wg", "failed")) == (2, 1)
    assert (tasks("wg2", "finished"), tasks("wg2", "failed")) == (0, 1)
    assert (errors("wg", "ExitCode"), errors("wg", "Signal")) == (1, 0)
    assert (errors("wg2", "ExitCode"), errors("wg2", "Signal")) == (0, 1)
    for group in ("wg", "wg2"):
        duration = ("dp_runner_task_duration_seconds_count", (("worker_group", group),))
        assert found[duration] == (3 if group == "wg" else 1)
        wait = ("dp_runner_task_queue_wait_seconds_count", (("worker_group", group),))
        assert found[wait] == (3 if group == "wg" else 1)
        assert found["dp_runner_tasks_in_progress", (("worker_group", group),)] == 0
    assert found["dp_runner_free_slots", ()] == 2

    # every labelled counter had its series at 0 before any task ended
    zeros = {
        key: value
        for key, value in at_start.items()
        if (key[0].startswith("dp_runner_task") and key[0].endswith("_total"))
        or (
            key[0] == "dp_runner_api_calls_total"
            and key[1] == (("operation", "SetTaskStatus"),)
        )
    }
    assert len(zeros) > 50
    assert set(zeros.values()) == {0.0}
    groups = {dict(k[1]).get("worker_group") for k in zeros}
    assert {"wg", "wg2"} <= groups
    for kind in ("CopyActivity", "SqlActivity", "unsupported"):
        assert tasks("wg2", "failed", ("activity_type", kind)) == 0
    kill = (
        "dp_runner_task_kills_total",
        (("reason", "timeout"), ("worker_group", "wg")),
    )
    assert at_start[kill] == 0
    assert found["dp_runner_task_errors_total", (
        ("activity_type", "SqlActivity"), ("error_class", "SqlError"),
        ("worker_group", "wg2"),
    )] == 0  # fmt: skip

    sent = service.calls("SetTaskStatus")
    assert found["dp_runner_api_calls_total", (("operation", "SetTaskStatus"),)] == len(
        sent
    )
    polls = found["dp_runner_api_calls_total", (("operation", "PollForTask"),)]
    assert polls >= 4
    assert found["dp_runner_poll_duration_seconds_count", ()] == polls
    poll_latency = (
        "dp_runner_api_latency_seconds_count",
        (("operation", "PollForTask"),),
    )
    assert poll_latency not in found  # the long poll is a series of its own
    progress = (
        "dp_runner_api_latency_seconds_count",
        (("operation", "ReportTaskProgress"),),
    )
    assert found[progress] >= 4
    assert found["dp_runner_last_poll_timestamp_seconds", ()] > 1.7e9
    for operation in ("ReportTaskProgress", "ReportTaskRunnerHeartbeat"):
        failures = ("dp_runner_heartbeat_failures_total", (("operation", operation),))
        assert at_start[failures] == 0
    build = [k for k in found if k[0] == "dp_runner_build_info"]
    assert len(build) == 1
    assert ("version", "0.1.0") in build[0][1]
    assert found["process_resident_memory_bytes", ()] > 0


def test_api_errors_are_counted_by_operation_and_code(
    service: LocalService, spawn_runner: Spawn
) -> None:
    service.faults.add("ReportTaskRunnerHeartbeat", error="ThrottlingException")
    _, address = start(spawn_runner)
    key = (
        "dp_runner_api_errors_total",
        (("code", "ThrottlingException"), ("operation", "ReportTaskRunnerHeartbeat")),
    )
    assert wait_for(lambda: samples(address).get(key), 15, "the error") == 1


def test_liveness_holds_through_an_outage_that_readiness_reports(
    service: LocalService, spawn_runner: Spawn
) -> None:
    _, address = start(spawn_runner)
    wait_for(lambda: get(address, "/readyz")[0] == 200, 15, "ready")
    assert get(address, "/healthz") == (200, "ok: 2 threads on time\n")
    assert healthcheck("--http-address", address).returncode == 0
    assert healthcheck("--http-address", address, "--ready").returncode == 0

    service.faults.add("PollForTask", error="InternalServiceError", times=None)
    service.faults.add(
        "ReportTaskRunnerHeartbeat", error="ServiceUnavailable", times=None
    )
    _, text = wait_for(
        lambda: (answer := get(address, "/readyz"))[0] == 503 and answer,
        15,
        "not ready",
    )
    assert text == "the last call to the service failed\n"
    assert get(address, "/healthz")[0] == 200  # an outage is not a wedged thread
    # a poll that was in flight when the faults began may still land once
    done = wait_for(
        lambda: (
            (hc := healthcheck("--http-address", address, "--ready")).returncode and hc
        ),
        15,
        "healthcheck --ready to fail",
    )
    assert done.returncode == 1
    assert "503 the last call to the service failed" in done.stderr
    assert healthcheck("--http-address", address).returncode == 0

    service.faults.clear()
    wait_for(lambda: get(address, "/readyz")[0] == 200, 30, "ready again")


def test_readiness_ends_with_the_drain(
    dp: Any, spawn_runner: Spawn, tmp_path: Any
) -> None:
    flag = tmp_path / "started"
    submit(dp, [default_object(), shell("Hold", f"touch {flag}; sleep 30")])
    runner, address = start(spawn_runner)
    wait_for(flag.exists, 15, "the task")
    found = samples(address)
    assert found["dp_runner_tasks_in_progress", (("worker_group", "wg"),)] == 1
    assert found["dp_runner_free_slots", ()] == 1
    runner.signal()
    wait_for(lambda: get(address, "/readyz") == (503, "draining (SIGTERM)\n"), 10)
    assert get(address, "/healthz")[0] == 200
    assert runner.wait_exit() == 0


def test_kills_are_counted_by_reason(dp: Any, spawn_runner: Spawn) -> None:
    pipeline_id = submit(
        dp,
        [
            default_object(),
            shell("Slow", "sleep 30", attemptTimeout="1 seconds", maximumRetries="0"),
        ],
    )
    _, address = start(spawn_runner)
    wait_instances(dp, pipeline_id, {"FAILED", "TIMEDOUT"})
    key = (
        "dp_runner_task_kills_total",
        (("reason", "timeout"), ("worker_group", "wg")),
    )
    assert wait_for(lambda: samples(address).get(key), 15, "the kill") == 1


def test_an_unknown_path_is_404(spawn_runner: Spawn) -> None:
    _, address = start(spawn_runner)
    assert get(address, "/")[0] == 404


def test_healthcheck_fails_without_a_listener_or_an_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        done = healthcheck("--http-address", f"127.0.0.1:{port}")
    assert done.returncode == 1
    assert "/healthz" in done.stderr
    assert healthcheck().returncode == 78  # a configuration error, as run says it
    assert "http_address is not set" in healthcheck().stderr
    monkeypatch.setenv("DP_RUNNER_HTTP_ADDRESS", "nonsense")
    done = healthcheck()
    assert done.returncode == 78
    assert "http_address=nonsense from DP_RUNNER_HTTP_ADDRESS" in done.stderr


def test_a_taken_address_exits_78(spawn_runner: Spawn) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        runner = spawn_runner("--http-address", f"127.0.0.1:{port}")
        assert runner.wait_exit() == 78
    assert (
        f"http_address=127.0.0.1:{port}: cannot listen" in runner.log_path.read_text()
    )


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[HealthServer, str, io.StringIO]]:
    """A ``HealthServer`` in this process, its log going to a string; ``/metrics``
    fails when the file ``tmp_path/broken`` exists."""
    stream = io.StringIO()
    logs.configure(log_format="json", stream=stream)

    def metrics() -> tuple[bytes, str]:
        if (tmp_path / "broken").exists():
            raise RuntimeError("the metrics broke")
        return b"x 1\n", "text/plain"

    server = HealthServer(
        "127.0.0.1",
        0,
        live=lambda: (True, "ok"),
        ready=lambda: (True, "ok"),
        metrics=metrics,
    )
    address = server.start()
    yield server, address, stream
    server.close()
    structlog.reset_defaults()


def handlers() -> int:
    return sum(t.name == "http-handler" for t in threading.enumerate())


def connect(address: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def test_the_listener_keeps_a_backlog_of_128(
    listener: tuple[HealthServer, str, io.StringIO],
) -> None:
    port = listener[1].rsplit(":", 1)[1]
    shown = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert shown[0] == "LISTEN"
    assert int(shown[2]) >= 128  # Send-Q of a listening socket: its backlog


def test_the_seventeenth_slow_client_waits_for_a_handler(
    listener: tuple[HealthServer, str, io.StringIO],
) -> None:
    _, address, stream = listener
    slow = [connect(address) for _ in range(16)]
    wait_for(lambda: handlers() == 16, 10, "16 handlers")
    with connect(address) as waiting:
        waiting.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        waiting.settimeout(0.3)
        with pytest.raises(TimeoutError):
            waiting.recv(100)  # every handler is taken by a slow client
        assert handlers() == 16
        slow.pop().close()
        waiting.settimeout(10)
        assert waiting.recv(100).startswith(b"HTTP/1.0 200")
    for client in slow:
        client.close()
    wait_for(lambda: handlers() == 0, 10, "handlers to end")
    assert stream.getvalue() == ""


def test_clients_that_reset_early_add_no_line(
    listener: tuple[HealthServer, str, io.StringIO],
    capfd: pytest.CaptureFixture[str],
) -> None:
    _, address, stream = listener
    for n in range(100):
        client = connect(address)
        if n % 2:
            client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # linger 0: a reset, not a FIN
    assert get(address, "/metrics")[0] == 200
    wait_for(lambda: handlers() == 0, 10, "handlers to end")
    assert stream.getvalue() == ""
    assert capfd.readouterr().err == ""


def test_a_failing_request_is_one_json_line(
    listener: tuple[HealthServer, str, io.StringIO],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    _, address, stream = listener
    (tmp_path / "broken").touch()
    with connect(address) as client:
        client.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        client.settimeout(10)
        assert client.recv(100) == b""  # closed without an answer
    wait_for(lambda: handlers() == 0, 10, "handlers to end")
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["event"] == "http_request_failed"
    assert line["level"] == "error"
    assert "the metrics broke" in line["exception"]
    assert capfd.readouterr().err == ""
