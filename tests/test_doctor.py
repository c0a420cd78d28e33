"""``dp-runner doctor`` as a process: against the local service (STS from moto's
server), against a stopped endpoint, and against one that refuses everything."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from runner.localservice import LocalService
from tests.support.imds import StandIn
from tests.support.pipelines import REGION, default_object, shell, submit
from tests.support.runners import REPO


def doctor(
    endpoint_url: str, tmp_path: Path, *args: str, sts: str | None = None
) -> tuple[int, dict[str, str], str]:
    """Run the doctor; its exit code, each check's line by name, and stdout."""
    env = dict(os.environ)
    if sts is not None:
        env["AWS_ENDPOINT_URL_STS"] = sts
    done = subprocess.run(
        [
            sys.executable, "-m", "runner", "doctor",
            "--endpoint-url", endpoint_url, "--region", REGION,
            "--work-dir", str(tmp_path / "work"), *args,
        ],
        capture_output=True, text=True, timeout=60, check=False, cwd=REPO, env=env,
    )  # fmt: skip
    lines = {}
    for line in done.stdout.splitlines():
        verdict, _, rest = line.partition(" ")
        if verdict and not line.startswith(" "):
            name = rest.strip()[:26].strip()
            lines[name] = line
    return done.returncode, lines, done.stdout


def test_a_healthy_setup_passes_every_check(
    service: LocalService, dp: Any, tmp_path: Path, moto_server: str
) -> None:
    submit(dp, [default_object("etl-prod"), shell("A", "true")])
    code, lines, out = doctor(
        service.endpoint_url,
        tmp_path,
        "--worker-group",
        "etl-prod",
        "--probe-poll",
        sts=moto_server,
    )
    assert code == 0, out
    assert lines["credentials"].startswith("ok    credentials")
    assert "arn:aws:" in lines["credentials"]
    assert "(direct) answered HTTP" in lines["endpoint"]
    assert lines["clock"].startswith("ok")
    for operation in ("ReportTaskProgress", "SetTaskStatus"):
        assert "allowed (a made-up task id: TaskNotFound)" in lines[operation]
    assert lines["ReportTaskRunnerHeartbeat"].startswith("ok")
    assert lines["PollForTask"].startswith("ok")
    assert lines["worker groups"].startswith("ok")
    assert lines["IMDS"].startswith("skip")  # AWS_EC2_METADATA_DISABLED
    assert lines["work dir"].startswith("ok")
    heartbeats = service.calls("ReportTaskRunnerHeartbeat")
    assert heartbeats[0].request["taskrunnerId"].startswith("doctor-")
    (poll,) = service.calls("PollForTask")
    assert poll.request["workerGroup"].startswith("doctor-")  # never a real group
    assert service.calls("SetTaskStatus")[0].error == "TaskNotFoundException"


def test_a_misspelt_worker_group_is_named_with_the_closest(
    service: LocalService, dp: Any, tmp_path: Path, moto_server: str
) -> None:
    submit(dp, [default_object("etl-prod"), shell("A", "true")])
    code, lines, out = doctor(
        service.endpoint_url, tmp_path, "--worker-group", "etl_prod", sts=moto_server
    )
    assert code == 1
    assert lines["worker groups"].startswith("FAIL")
    assert "did you mean 'etl-prod'?" in lines["worker groups"]
    assert "fix: worker_groups must be spelled" in out
    assert lines["PollForTask"].startswith("skip")


def test_a_stopped_endpoint_fails_with_a_fix(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening
        code, lines, out = doctor(url, tmp_path, "--worker-group", "wg")
    assert code == 1
    assert lines["endpoint"].startswith("FAIL")
    assert "Connection refused" in lines["endpoint"]
    assert "fix: check the network, HTTPS_PROXY/NO_PROXY, or endpoint_url" in out
    assert lines["ReportTaskProgress"].startswith("FAIL")
    assert lines["worker groups"].startswith("skip")
    assert lines["work dir"].startswith("ok")


class _Refuses(BaseHTTPRequestHandler):
    """Every Data Pipeline call: AccessDeniedException, as IAM answers it."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        body = json.dumps(
            {
                "__type": "AccessDeniedException",
                "message": f"not authorized to perform: datapipeline:{operation}",
            }
        ).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def refusing_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refuses)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_access_denied_names_the_missing_permission(
    refusing_endpoint: str, tmp_path: Path
) -> None:
    code, lines, out = doctor(refusing_endpoint, tmp_path, "--worker-group", "wg")
    assert code == 1
    assert lines["ReportTaskProgress"].startswith("FAIL")
    assert "AccessDeniedException: not authorized" in lines["ReportTaskProgress"]
    assert "datapipeline:SetTaskStatus alone" in out
    assert "skipped: needs datapipeline:ListPipelines" in lines["worker groups"]


def test_imds_is_checked_against_the_stand_in(
    service: LocalService, tmp_path: Path, imds: StandIn
) -> None:
    _, lines, _ = doctor(service.endpoint_url, tmp_path)
    assert lines["IMDS"].startswith("ok")
    assert "i-0123456789abcdef0 in us-east-1a" in lines["IMDS"]
    assert ("PUT", "/latest/api/token") in imds.requests


def test_unreachable_imds_is_a_warning(
    service: LocalService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
        monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint)
        _, lines, out = doctor(service.endpoint_url, tmp_path)
    assert lines["IMDS"].startswith("warn")
    assert "HttpPutResponseHopLimit to 2" in out


def test_without_credentials_every_check_still_runs(tmp_path: Path) -> None:
    """As the docs' example sets worker groups, on a host with no credentials:
    every check prints its line (none ends the doctor), and no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ACCESS")}
    env.pop("AWS_SECRET_ACCESS_KEY", None)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{sock.getsockname()[1]}"
        env["AWS_ENDPOINT_URL_STS"] = refused
        done = subprocess.run(
            [sys.executable, "-m", "runner", "doctor", "--endpoint-url", refused,
             "--region", REGION, "--work-dir", str(tmp_path / "work"),
             "--worker-group", "etl-a", "--worker-group", "etl-b"],
            capture_output=True, text=True, timeout=60, check=False, cwd=REPO,
            env=env,
        )  # fmt: skip
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.returncode == 1
    names = [line[6:32].strip() for line in done.stdout.splitlines() if line[:1] != " "]
    assert names == EVERY_CHECK, done.stdout
    assert "no AWS credentials found" in done.stdout


EVERY_CHECK = [
    "credentials", "region", "endpoint", "clock", "ReportTaskProgress",
    "SetTaskStatus", "ReportTaskRunnerHeartbeat", "PollForTask", "worker groups",
    "IMDS", "work dir",
]  # fmt: skip


class _Garbage(BaseHTTPRequestHandler):
    """An STS that answers 200 with a body that is not STS's XML."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"<html>\x00garbage {not xml"
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def garbage_sts() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_garbage_from_sts_is_a_failed_check_not_a_crash(
    service: LocalService, tmp_path: Path, garbage_sts: str
) -> None:
    code, lines, out = doctor(service.endpoint_url, tmp_path, sts=garbage_sts)
    assert list(lines) == EVERY_CHECK, out
    assert lines["credentials"].startswith("FAIL")
    assert lines["ReportTaskProgress"].startswith("ok")
    assert code == 1


@pytest.fixture
def silent_port() -> Iterator[str]:
    """A port that accepts connections and never answers (the backlog accepts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_an_endpoint_that_never_answers_ends_the_doctor_within_15_s(
    tmp_path: Path, silent_port: str
) -> None:
    """STS and the endpoint both silent: 4 s each, asked at once, then one 2 s
    deadline for the checks that need the endpoint; every line printed."""
    began = time.monotonic()
    code, lines, out = doctor(
        silent_port, tmp_path, "--worker-group", "wg", sts=silent_port
    )
    took = time.monotonic() - began
    assert took < 15, (took, out)
    assert code == 1
    assert list(lines) == EVERY_CHECK, out
    assert lines["endpoint"].startswith("FAIL")
    assert "timed out" in lines["endpoint"]
    assert "no answer within the 2 s these checks share" in lines["worker groups"]
    assert lines["work dir"].startswith("ok")


def test_against_dp_runner_local_the_expected_failures_are_named(
    service: LocalService, tmp_path: Path
) -> None:
    """The local service has no STS: the credentials check fails, says that this
    is expected there, and does not count; the rest pass, so the exit is 0."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{sock.getsockname()[1]}"
        code, lines, out = doctor(service.endpoint_url, tmp_path, sts=refused)
    assert lines["credentials"].startswith("FAIL")
    assert "expected here: an endpoint on loopback, as dp-runner local is" in out
    assert lines["ReportTaskProgress"].startswith("ok")
    assert code == 0, out
