"""Tests of ``runner.logs``: what a line looks like on the stream, for our own
events and for stdlib loggers such as botocore's."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from runner import logs
from runner.errors import ConfigError

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+Z$")


class FakeTTY(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure() changes process-wide state; put it back for the next test."""
    root = logging.getLogger()
    level = root.level
    noisy = {name: logging.getLogger(name).level for name in logs.NOISY_LOGGERS}
    yield
    logs.remove_file_log()
    for handler in [h for h in root.handlers if h.get_name() == "dp-runner"]:
        root.removeHandler(handler)
    root.setLevel(level)
    for name, old in noisy.items():
        logging.getLogger(name).setLevel(old)
    structlog.reset_defaults()


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_shape() -> None:
    stream = io.StringIO()
    logs.configure(log_format="json", stream=stream)
    logs.get_logger("runner.worker").info("task_received", task_id="abc123", slot=2)
    (line,) = _lines(stream)
    assert line["event"] == "task_received"
    assert line["level"] == "info"
    assert line["logger"] == "runner.worker"
    assert line["task_id"] == "abc123"
    assert line["slot"] == 2
    assert ISO_UTC.match(line["timestamp"])


def test_auto_is_json_when_not_a_tty() -> None:
    stream = io.StringIO()
    logs.configure(stream=stream)
    logs.get_logger().info("hello")
    (line,) = _lines(stream)
    assert line["event"] == "hello"
    assert line["logger"] == __name__  # the caller's module, not runner.logs


def test_auto_is_console_on_a_tty() -> None:
    stream = FakeTTY()
    logs.configure(stream=stream)
    logs.get_logger().info("hello_console", pid=42)
    out = stream.getvalue()
    assert "hello_console" in out
    assert "pid" in out
    assert not out.lstrip().startswith("{")


def test_json_can_be_forced_on_a_tty() -> None:
    stream = FakeTTY()
    logs.configure(log_format="json", stream=stream)
    logs.get_logger().info("hello")
    assert _lines(stream)[0]["event"] == "hello"


def test_level_filters_our_lines() -> None:
    stream = io.StringIO()
    logs.configure(level="warning", stream=stream)
    log = logs.get_logger()
    log.info("dropped")
    log.warning("kept")
    assert [line["event"] for line in _lines(stream)] == ["kept"]


def test_exceptions_are_rendered_into_the_line() -> None:
    stream = io.StringIO()
    logs.configure(stream=stream)
    try:
        raise ValueError("boom")  # noqa: TRY301 - raised to be logged
    except ValueError:
        logs.get_logger().exception("thread_failed")
    (line,) = _lines(stream)
    assert line["level"] == "error"
    assert "ValueError: boom" in line["exception"]


def test_stdlib_loggers_are_routed_as_json() -> None:
    stream = io.StringIO()
    logs.configure(stream=stream)
    botocore_log = logging.getLogger("botocore.endpoint")
    botocore_log.info("chatty %s", "detail")  # below WARNING for botocore: dropped
    botocore_log.warning("retry needed for %s", "PollForTask")
    logging.getLogger("somelib").info("plain stdlib line")
    lines = _lines(stream)
    assert [line["event"] for line in lines] == [
        "retry needed for PollForTask",
        "plain stdlib line",
    ]
    assert lines[0]["logger"] == "botocore.endpoint"
    assert lines[0]["level"] == "warning"
    assert ISO_UTC.match(lines[0]["timestamp"])


def test_debug_never_lets_botocore_debug_lines_through() -> None:
    """botocore's DEBUG lines carry request headers (the session token) and bodies
    (every *-field of a task): never shown, at any level; its INFO lines are."""
    stream = io.StringIO()
    logs.configure(level="debug", stream=stream)
    logging.getLogger("botocore.endpoint").debug("wire detail with a token")
    logging.getLogger("urllib3.connectionpool").debug("a header")
    logging.getLogger("botocore.credentials").info("Found credentials")
    logs.get_logger("dp-runner").debug("the runner's own debug line")
    assert [line["event"] for line in _lines(stream)] == [
        "Found credentials",
        "the runner's own debug line",
    ]


def test_secret_keys_are_redacted() -> None:
    stream = io.StringIO()
    logs.configure(stream=stream)
    secret_keys = ["aws_secret_access_key", "password", "session_token", "*dbUser"]
    values = {key: f"value-of-{n}" for n, key in enumerate(secret_keys)}
    logs.get_logger().info(
        "oops", **values, nested={"Credentials": "c", "ok": 1}, worker_group="wg"
    )
    (line,) = _lines(stream)
    assert not any(value in stream.getvalue() for value in values.values())
    assert {key: line[key] for key in secret_keys} == dict.fromkeys(
        secret_keys, logs.REDACTED
    )
    assert line["nested"] == {"Credentials": logs.REDACTED, "ok": 1}
    assert line["worker_group"] == "wg"


def test_masked_values_are_blanked_out_of_every_line(tmp_path: Path) -> None:
    """Values no key name gives away (a ``*my`` parameter's), in our events, in
    botocore's bodies, in tracebacks, in the console and the file log alike."""
    # a quote and a backslash: escaped in JSON, in reprs, and twice over
    secret = 'masked-"value\\-9f3e'  # noqa: S105 - the value the test looks for
    logs.mask_values([secret, ""])
    for log_format, stream in (("json", io.StringIO()), ("console", FakeTTY())):
        logs.configure(log_format=log_format, level="debug", stream=stream)
        logs.add_file_log(tmp_path / log_format)
        log = logs.get_logger()
        log.info("task_fields", fields=[{"key": "command", "value": f"x {secret}"}])
        body = json.dumps({"stringValue": secret}).encode()
        logging.getLogger("botocore.endpoint").debug("Response body:\n%r", body)
        try:
            raise ValueError(f"boom {secret}")  # noqa: TRY301 - raised to be logged
        except ValueError:
            log.exception("thread_failed")
        written = (
            stream.getvalue() + (tmp_path / log_format / "dp-runner.log").read_text()
        )
        assert "boom " in written
        assert logs.REDACTED in written
        assert "9f3e" not in written, (log_format, written)  # in no form at all
        logs.remove_file_log()


def test_configure_is_idempotent() -> None:
    first, second = io.StringIO(), io.StringIO()
    logs.configure(stream=first)
    logs.configure(stream=second)
    logs.get_logger().info("once")
    logging.getLogger("somelib").warning("stdlib once")
    assert first.getvalue() == ""
    assert [line["event"] for line in _lines(second)] == ["once", "stdlib once"]


def test_capture_logs_works_after_configure() -> None:
    stream = io.StringIO()
    logs.configure(stream=stream)
    log = logs.get_logger(
        "runner.aws.client"
    )  # created before the capture, as modules do
    with capture_logs() as captured:
        log.warning("client_retry_scheduled", attempt=1)
    assert captured == [
        {"event": "client_retry_scheduled", "attempt": 1, "log_level": "warning"}
    ]
    assert stream.getvalue() == ""


@pytest.mark.parametrize(("fmt", "level"), [("xml", "info"), ("json", "loud")])
def test_bad_settings_are_config_errors(fmt: str, level: str) -> None:
    with pytest.raises(ConfigError):
        logs.configure(log_format=fmt, level=level, stream=io.StringIO())


def _file_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_file_log_is_json_when_stdout_is_console(tmp_path: Path) -> None:
    stream = FakeTTY()
    logs.configure(log_format="console", stream=stream)
    handler = logs.add_file_log(tmp_path / "logs")
    logs.get_logger("runner.worker").info("task_received", slot=1)
    logging.getLogger("botocore.endpoint").warning("retry needed")
    handler.flush()
    assert not stream.getvalue().lstrip().startswith("{")  # stdout stays console
    lines = _file_lines(tmp_path / "logs" / logs.FILE_LOG_NAME)
    assert [line["event"] for line in lines] == ["task_received", "retry needed"]
    assert lines[0]["logger"] == "runner.worker"
    assert lines[0]["slot"] == 1
    assert ISO_UTC.match(lines[1]["timestamp"])
    assert logs.file_log() is handler


def test_json_stream_and_file_log_carry_the_same_lines(tmp_path: Path) -> None:
    stream = io.StringIO()
    logs.configure(log_format="json", stream=stream)
    handler = logs.add_file_log(tmp_path)
    secret = {"password": "pw"}
    logs.get_logger("runner.worker").info("task_received", slot=1, **secret)
    logging.getLogger("botocore.endpoint").warning("retry needed")
    try:
        raise ValueError("boom")  # noqa: TRY301 - raised to be logged
    except ValueError:
        logs.get_logger().exception("crashed")
    handler.flush()
    file_lines = (tmp_path / logs.FILE_LOG_NAME).read_text().splitlines()
    assert stream.getvalue().splitlines() == file_lines
    parsed = [json.loads(line) for line in file_lines]
    assert [p["event"] for p in parsed] == ["task_received", "retry needed", "crashed"]
    assert parsed[0]["password"] == logs.REDACTED
    assert "ValueError: boom" in parsed[2]["exception"]


def test_file_log_masks_secrets(tmp_path: Path) -> None:
    logs.configure(log_format="json", stream=io.StringIO())
    handler = logs.add_file_log(tmp_path)
    secrets = {"password": "hunter2", "nested": {"*dbPass": "pw2"}}
    logs.get_logger().info("oops", **secrets)
    handler.flush()
    text = (tmp_path / logs.FILE_LOG_NAME).read_text()
    assert not any(secret in text for secret in ("hunter2", "pw2"))
    line = _file_lines(tmp_path / logs.FILE_LOG_NAME)[0]
    assert line["password"] == logs.REDACTED
    assert line["nested"] == {"*dbPass": logs.REDACTED}


def test_file_log_rotates_with_the_hourly_suffix_and_keeps_a_bounded_number(
    tmp_path: Path,
) -> None:
    logs.configure(log_format="json", stream=io.StringIO())
    handler = logs.add_file_log(tmp_path, backup_count=2)
    log = logs.get_logger()
    start = 1_577_836_800  # 2020-01-01T00:00:00Z
    for n in range(4):
        log.info("line", n=n)
        # The file is named for the hour its period started: as if hour n had passed.
        handler.rolloverAt = start + (n + 1) * 3600
        handler.doRollover()
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == [  # the two oldest deleted by the handler
        "dp-runner.log",
        "dp-runner.log.2020-01-01-02",
        "dp-runner.log.2020-01-01-03",
    ]
    assert _file_lines(tmp_path / "dp-runner.log.2020-01-01-03")[0]["n"] == 3
    assert (tmp_path / logs.FILE_LOG_NAME).read_text() == ""
    assert handler.rolloverAt > time.time()  # back on the real clock


def test_file_log_appends_to_a_former_file_and_replaces_a_former_handler(
    tmp_path: Path,
) -> None:
    (tmp_path / logs.FILE_LOG_NAME).write_text('{"event": "former_run"}\n')
    logs.configure(log_format="json", stream=io.StringIO())
    first = logs.add_file_log(tmp_path)
    second = logs.add_file_log(tmp_path)
    logs.get_logger().info("this_run")
    second.flush()
    root = logging.getLogger()
    assert first not in root.handlers
    assert first.stream is None  # closed
    assert logs.file_log() is second
    events = [line["event"] for line in _file_lines(tmp_path / logs.FILE_LOG_NAME)]
    assert events == ["former_run", "this_run"]
    logs.remove_file_log()
    assert logs.file_log() is None


def test_file_log_in_an_unusable_dir_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(ConfigError, match="cannot open"):
        logs.add_file_log(tmp_path / "taken" / "logs")


def test_a_short_secret_is_masked_only_where_a_whole_value_equals_it() -> None:
    stream = io.StringIO()
    logs.configure(stream=stream)
    with capture_logs() as warnings:
        masking = logs.mask_values(["e", '"'])
        logs.mask_values(["x"]).close()  # a second short one: no second warning
    log = logs.get_logger()
    log.info("event_e", value="e", other='"', text='say "e"', nested={"e": ["e"]})
    masking.close()
    log.info("after", value="e")
    first, after = _lines(stream)
    assert first == first | {"event": "event_e", "value": "***", "other": "***"}
    assert first["text"] == 'say "e"'
    assert first["nested"] == {"e": ["***"]}  # keys are never masked
    assert after["value"] == "e"  # closed: no longer masked
    assert [w["event"] for w in warnings] == ["secret_too_short_to_mask"]


def test_a_long_secret_is_masked_inside_values_until_closed() -> None:
    stream = io.StringIO()
    logs.configure(stream=stream)
    secret = "long-secret-value"  # noqa: S105 - the value the test looks for
    with logs.mask_values([secret]), logs.mask_values([secret]) as twice:
        twice.close()  # another registration of the same value keeps it masked
        logs.get_logger().info("x", text=f"a {secret} b", n=1, flag=True)
    logs.get_logger().info("y", text=secret)
    masked, after = _lines(stream)
    assert masked["text"] == "a *** b"
    assert (masked["n"], masked["flag"]) == (1, True)
    assert after["text"] == secret


def test_console_lines_drop_null_fields_and_put_the_task_first() -> None:
    stream = FakeTTY()
    logs.configure(log_format="console", stream=stream)
    logs.get_logger().info(
        "task_finished",
        zeta=1,
        detail=None,
        outcome="failed",
        signal=None,
        task_id="abc123",
    )
    line = re.sub(r"\x1b\[[0-9;]*m", "", stream.getvalue())
    assert "None" not in line
    assert line.index("task_id=abc123") < line.index("outcome=failed")
    assert line.index("outcome=failed") < line.index("zeta=1")


def test_priorities_prefix_lines_when_stdout_is_the_journal_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "journal").open("w") as journal:
        stat = os.fstat(journal.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
        logs.configure(stream=journal)
        log = logs.get_logger()
        log.error("e")
        log.warning("w")
        log.info("i")
        logging.getLogger("somelib").warning("stdlib")
        monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino + 1}")
        logs.configure(stream=journal)  # another stream's: no prefix
        log.info("plain")
    lines = (tmp_path / "journal").read_text().splitlines()
    assert [line[:3] for line in lines[:4]] == ["<3>", "<4>", "<6>", "<4>"]
    assert json.loads(lines[2][3:])["event"] == "i"
    assert json.loads(lines[4])["event"] == "plain"


def test_an_open_masking_covers_lines_from_every_thread() -> None:
    stream = io.StringIO()
    logs.configure(stream=stream)
    secret = "attempt-secret-4471"  # noqa: S105 - the value the test looks for
    with logs.mask_values([secret]):
        worker = threading.Thread(
            target=lambda: logs.get_logger("other").info("beat", text=secret)
        )
        worker.start()
        worker.join(10)
        logging.getLogger("botocore.hooks").warning("body %s", secret)
    assert [line["text" if "text" in line else "event"] for line in _lines(stream)] == [
        "***",
        "body ***",
    ]
