"""pytest fixtures for a real S3 endpoint: moto's standalone server over HTTP.

Load it from the root conftest with ``pytest_plugins = ["tests.support.s3server"]``.

``moto_server`` (session) starts ``python -m moto.server`` as a subprocess on
127.0.0.1 with a port the OS picks, reads the port from its log and stops it at the
end. The server's log goes to a file, never a pipe, so that its access log cannot
fill a pipe and stall it. No in-process patching: the runner's boto3 reaches it through
``AWS_ENDPOINT_URL_S3`` exactly as it would reach a real endpoint.

``s3_env`` (function) points boto3 at it with dummy credentials and a region, through
environment variables only. ``s3_bucket`` is a fresh bucket per test, ``s3_admin`` a
plain boto3 client to arrange and inspect objects, ``s3`` the runner's ``S3``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import structlog

from runner.aws.s3 import S3

REGION = "us-east-1"
_RUNNING = re.compile(rb"Running on http://127\.0\.0\.1:(\d+)")


def start_moto_server(log_path: Path, timeout_s: float = 30.0) -> tuple[Any, str]:
    """Start moto's standalone server; ``(process, endpoint_url)`` once it listens."""
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log_file.close()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = _RUNNING.search(log_path.read_bytes())
        if match:
            return process, f"http://127.0.0.1:{int(match.group(1))}"
        if process.poll() is not None:
            break
        time.sleep(0.05)
    stop_moto_server(process)
    raise RuntimeError(f"moto server did not start: {log_path.read_text()[-2000:]}")


def stop_moto_server(process: Any) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint URL of a moto server shared by the session."""
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    process, endpoint = start_moto_server(log_path)
    yield endpoint
    stop_moto_server(process)


def moto_env(endpoint: str, home: Path) -> dict[str, str]:
    """The environment that points boto3 (and a task) at the moto server."""
    return {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(home / "aws-config-absent"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials-absent"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.fixture
def s3_env(
    moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, str]:
    """Point boto3 at moto through the environment, for this test only."""
    env = moto_env(moto_server, tmp_path)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def s3_admin(s3_env: dict[str, str]) -> Any:
    """A plain boto3 client for arranging and inspecting objects."""
    return boto3.session.Session().client("s3")


@pytest.fixture
def s3_bucket(s3_admin: Any) -> str:
    """A fresh, empty bucket for this test."""
    name = f"test-{uuid.uuid4().hex[:20]}"
    s3_admin.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3(s3_env: dict[str, str]) -> S3:
    """The runner's S3, on a client made inside this test's environment."""
    return S3(region=None, log=structlog.get_logger("test"))


def keys(s3_admin: Any, bucket: str, prefix: str = "") -> list[str]:
    listing = s3_admin.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for obj in listing.get("Contents", []))


def body(s3_admin: Any, bucket: str, key: str) -> str:
    return str(s3_admin.get_object(Bucket=bucket, Key=key)["Body"].read().decode())
