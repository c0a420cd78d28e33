"""Tests of ``runner.logship``: the runner's file log shipped to a real S3 endpoint
(moto's standalone server over HTTP), on rotation and at close."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from runner import logs, logship
from runner.aws.retries import RetryPolicy
from runner.aws.s3 import S3
from runner.logship import LogShipper

FAST = RetryPolicy(attempts=3, budget_s=5.0, wait_initial_s=0.01, wait_max_s=0.02)
FINAL = re.compile(r"dp-runner\.log\.\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}\.final")


@pytest.fixture
def stdout() -> Iterator[io.StringIO]:
    """Logs configured as ``run`` does (JSON to a stream); put back afterwards."""
    root = logging.getLogger()
    level = root.level
    noisy = {name: logging.getLogger(name).level for name in logs.NOISY_LOGGERS}
    stream = io.StringIO()
    logs.configure(log_format="json", stream=stream)
    yield stream
    logs.remove_file_log()
    for handler in [h for h in root.handlers if h.get_name() == "dp-runner"]:
        root.removeHandler(handler)
    root.setLevel(level)
    for name, old in noisy.items():
        logging.getLogger(name).setLevel(old)
    structlog.reset_defaults()


@pytest.fixture
def log_dir(tmp_path: Path, stdout: io.StringIO) -> Path:
    logs.add_file_log(tmp_path / "logs")
    return tmp_path / "logs"


def _handler() -> logging.handlers.TimedRotatingFileHandler:
    handler = logs.file_log()
    assert handler is not None
    return handler


MakeShipper = Callable[..., LogShipper]


@pytest.fixture
def make_shipper(log_dir: Path, s3: S3) -> Iterator[MakeShipper]:
    """Started shippers on the file log; each closed (briefly) at teardown."""
    made: list[LogShipper] = []

    def make(log_uri: str, policy: RetryPolicy = FAST) -> LogShipper:
        shipper = LogShipper(
            _handler(),
            s3=s3,
            log_uri=log_uri,
            runner_id="tr-1",
            log=logs.get_logger("runner.logship"),
            policy=policy,
        )
        shipper.start()
        made.append(shipper)
        return shipper

    yield make
    for shipper in made:
        shipper.close(0.1)


def _wait_for(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        threading.Event().wait(0.05)


def _objects(admin: Any, bucket: str, prefix: str = "") -> dict[str, str]:
    listed = admin.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {
        item["Key"]: admin.get_object(Bucket=bucket, Key=item["Key"])["Body"]
        .read()
        .decode()
        for item in listed
    }


def _events(text: str) -> list[str]:
    return [json.loads(line)["event"] for line in text.splitlines()]


def test_rotation_ships_the_rotated_file(
    log_dir: Path, make_shipper: MakeShipper, s3_bucket: str, s3_admin: Any
) -> None:
    shipper = make_shipper(f"s3://{s3_bucket}/runner-logs/")
    logs.get_logger().info("before_rotation", **{"*password": "hunter2"})
    _handler().doRollover()
    _wait_for(lambda: shipper.statistics().shipped == 1)
    (rotated,) = [p for p in log_dir.iterdir() if p.name != logs.FILE_LOG_NAME]
    key = f"runner-logs/tr-1/{rotated.name}"
    assert re.fullmatch(r"dp-runner\.log\.\d{4}-\d{2}-\d{2}-\d{2}", rotated.name)
    body = _objects(s3_admin, s3_bucket)[key]
    assert _events(body) == ["before_rotation"]
    assert "hunter2" not in body
    assert body == rotated.read_text()  # the local file stays
    head = s3_admin.head_object(Bucket=s3_bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    assert shipper.close(5.0)


def test_rotation_inside_emit_does_not_reenter(
    log_dir: Path, make_shipper: MakeShipper, s3_bucket: str, s3_admin: Any
) -> None:
    """The real path: a line logged after the hour is over rotates inside ``emit``
    under the handler's lock; the shipper's own ``log_shipped`` then lands in the
    new file without another rotation."""
    shipper = make_shipper(f"s3://{s3_bucket}/logs")
    log = logs.get_logger()
    log.info("old_hour")
    _handler().rolloverAt = int(time.time()) - 1  # the hour is over
    log.info("new_hour")
    _wait_for(lambda: shipper.statistics().shipped == 1)
    _handler().flush()
    current = (log_dir / logs.FILE_LOG_NAME).read_text()
    # s3_transfer is logged by S3 itself, log_shipped by the shipper's thread
    assert _events(current) == ["new_hour", "s3_transfer", "log_shipped"]
    rotated = [p for p in log_dir.iterdir() if p.name != logs.FILE_LOG_NAME]
    assert len(rotated) == 1
    (body,) = _objects(s3_admin, s3_bucket, "logs/tr-1/").values()
    assert _events(body) == ["old_hour"]
    assert shipper.close(5.0)


def test_close_ships_the_current_file_as_final(
    log_dir: Path, make_shipper: MakeShipper, s3_bucket: str, s3_admin: Any
) -> None:
    shipper = make_shipper(f"s3://{s3_bucket}")
    logs.get_logger().info("runner_stopped")
    assert shipper.close(5.0)
    assert not any(t.name == logship.THREAD_NAME for t in threading.enumerate())
    (key,) = _objects(s3_admin, s3_bucket)
    assert key.startswith("tr-1/")
    assert FINAL.fullmatch(key.removeprefix("tr-1/"))
    assert "runner_stopped" in _events(_objects(s3_admin, s3_bucket)[key])
    assert (log_dir / logs.FILE_LOG_NAME).is_file()
    assert shipper.statistics() == logship.ShipperStatistics(1, 0, 0)
    # Unhooked: a later rotation only renames.
    _handler().doRollover()
    assert len(list(log_dir.iterdir())) == 2
    assert len(_objects(s3_admin, s3_bucket)) == 1
    assert shipper.close(1.0)  # idempotent


def test_a_bad_bucket_is_logged_not_raised_and_files_stay(
    log_dir: Path, stdout: io.StringIO, make_shipper: MakeShipper
) -> None:
    shipper = make_shipper("s3://no-such-bucket-for-dp-runner/logs")
    logs.get_logger().info("kept_locally")
    _handler().doRollover()
    _wait_for(lambda: shipper.statistics().failed == 1)
    assert not shipper.close(5.0)
    assert shipper.statistics() == logship.ShipperStatistics(0, 2, 0)
    assert shipper.error is None
    rotated = [p for p in log_dir.iterdir() if p.name != logs.FILE_LOG_NAME]
    assert _events(rotated[0].read_text()) == ["kept_locally"]
    lines = [json.loads(line) for line in stdout.getvalue().splitlines()]
    failed = [line for line in lines if line["event"] == "log_ship_failed"]
    prefix = "s3://no-such-bucket-for-dp-runner/logs/tr-1/"
    assert failed[0]["uri"] == prefix + rotated[0].name
    assert FINAL.fullmatch(failed[1]["uri"].removeprefix(prefix))
    assert [line["error_id"] for line in failed] == ["S3NoSuchBucket"] * 2
    retries = [line for line in lines if line["event"] == "s3_retry_scheduled"]
    assert retries == []  # a missing bucket is not a passing condition


def test_close_gives_up_at_its_timeout(
    log_dir: Path,
    make_shipper: MakeShipper,
    s3: S3,
    monkeypatch: pytest.MonkeyPatch,
    stdout: io.StringIO,
) -> None:
    with socket.socket() as closed:  # a port nobody listens on: refused, transient
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv(
            "AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{closed.getsockname()[1]}"
        )
    slow = RetryPolicy(attempts=20, budget_s=60.0, wait_initial_s=5.0, wait_max_s=5.0)
    shipper = make_shipper("s3://some-bucket/logs", slow)
    logs.get_logger().info("line")
    _handler().doRollover()

    def retried() -> bool:
        lines = [json.loads(line) for line in stdout.getvalue().splitlines()]
        return any(line["event"] == "s3_retry_scheduled" for line in lines)

    _wait_for(retried, 10.0)  # now in a 5 s backoff
    started = time.monotonic()
    assert not shipper.close(0.3)
    _wait_for(lambda: shipper.statistics().pending == 0)
    assert time.monotonic() - started < 3.0  # the backoff was cut short
    assert shipper.statistics().shipped == 0


def test_start_needs_a_log_uri_and_a_file_log(stdout: io.StringIO, s3: S3) -> None:
    log = logs.get_logger()
    assert logship.start("s3://b/p", s3=s3, runner_id="x", log=log) is None
    assert logship.start(None, s3=s3, runner_id="x", log=log) is None


@pytest.mark.parametrize(
    ("uri", "runner_id", "expected"),
    [
        ("s3://b/p/", "tr-1", "s3://b/p/tr-1"),
        ("s3://b", "host.example.com", "s3://b/host.example.com"),
        ("s3://b/p", "../../etc", "s3://b/p/_.._etc"),
        ("s3://b/p", "..", "s3://b/p/runner"),
    ],
)
def test_runner_prefix_is_one_safe_segment(
    uri: str, runner_id: str, expected: str
) -> None:
    assert logship.runner_prefix(uri, runner_id) == expected
