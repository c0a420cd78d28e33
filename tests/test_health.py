"""``/healthz``, ``/readyz``, ``/metrics`` and ``dp-runner healthcheck``, over HTTP,
against the real runner process and the local service."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

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
    pipeline_id = submit(
        dp,
        [
            default_object(),
            shell("One", "true"),
            shell("Two", "echo two"),
            shell("Bad", "exit 3", maximumRetries="0"),
        ],
    )
    _, address = start(spawn_runner)
    wait_instances(dp, pipeline_id, {"FINISHED", "FAILED"})

    def settled() -> dict[Any, float] | None:
        found = samples(address)
        done = found.get(("dp_runner_task_duration_seconds_count", ()), 0)
        return found if done == 3 else None

    found = wait_for(settled, 15, "three tasks in the metrics")
    assert found["dp_runner_tasks_total", (("outcome", "finished"),)] == 2
    assert found["dp_runner_tasks_total", (("outcome", "failed"),)] == 1
    assert found["dp_runner_tasks_in_progress", ()] == 0
    assert found["dp_runner_free_slots", ()] == 2
    sent = service.calls("SetTaskStatus")
    assert found["dp_runner_api_calls_total", (("operation", "SetTaskStatus"),)] == len(
        sent
    )
    polls = found["dp_runner_api_calls_total", (("operation", "PollForTask"),)]
    assert polls >= 3
    latency = ("dp_runner_api_latency_seconds_count", (("operation", "PollForTask"),))
    assert found[latency] == polls
    assert found["dp_runner_last_poll_timestamp_seconds", ()] > 1.7e9
    assert (
        found[
            "dp_runner_heartbeat_failures_total",
            (("operation", "ReportTaskProgress"),),
        ]
        == 0
    )
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
    assert found["dp_runner_tasks_in_progress", ()] == 1
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
    key = ("dp_runner_task_kills_total", (("reason", "timeout"),))
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
    assert healthcheck().returncode == 1
    assert "http_address is not set" in healthcheck().stderr
    monkeypatch.setenv("DP_RUNNER_HTTP_ADDRESS", "nonsense")
    done = healthcheck()
    assert done.returncode == 1
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
