"""One attempt's logs: the runner's own lines about it, and shipping them to S3.

Owns: ``AttemptLog``, which copies every runner log line about one attempt into
``<attempt>/TaskRunner.log`` (JSON lines, after the secret-masking processors), the
attempt's log location (``pipelineLogUri``), and ``upload``, which puts ``StdOutput``,
``StdError`` and ``TaskRunner.log`` under ``pipelineLogUri/<pipelineId>/<componentId>/
<instanceId>/<attemptId>/``.

Must not: change the task's status, or decide how long an upload may take: the
execution runs ``upload`` as a transfer step, with a budget, under the stop flag.
A failed upload is logged and given up; the local files stay.

Why this way: the Java runner uploads logs hourly, so the logs of a failed attempt
are often missing when someone looks. Uploading at the end of each attempt gives
every attempt its logs (also after a cancel or a timeout). The copy into
``TaskRunner.log`` is a key bound to the attempt's logger (``logs.TEE_KEY``), so every
line keeps the name of the logger that wrote it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from structlog.typing import FilteringBoundLogger

from runner import logs
from runner.activities import component_ids, safe_path_part
from runner.attempt import AttemptPaths
from runner.aws.s3 import S3
from runner.aws.s3uri import parse_s3_uri
from runner.errors import ActivityError, StagingError
from runner.taskmodel import Task

RUNNER_LOG_NAME = "TaskRunner.log"
#: The attempt's log uploads may hold the final status back this long at most.
UPLOAD_BUDGET_S = 30.0
#: ``TaskRunner.log``: appended to, mode 0600, never through a symlink (design.md §3).
_APPEND_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC


class AttemptLog:
    """Writes the runner's log lines about one attempt into its folder. Thread-safe
    (the progress heartbeat logs from its own thread). Each line is one ``write``
    on the file's descriptor (``O_APPEND``), as a flushed line was before, without
    a text and a buffer layer on top."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        # Opened by the first line, so that an attempt that logs nothing costs no file.
        self._fd: int | None = None
        self._closed = False

    def bind(self, log: FilteringBoundLogger) -> FilteringBoundLogger:
        """``log``, also copying each of its lines here."""
        return log.bind(**{logs.TEE_KEY: self.write})

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def write(self, event_dict: Mapping[str, Any]) -> None:
        """Append one line; after ``close``, or when the folder is gone, nothing."""
        with self._lock:
            if self._closed:
                return
            line = json.dumps(
                {k: v for k, v in event_dict.items() if not k.startswith("_")},
                default=str,
            )
            data = (line + "\n").encode()  # ASCII: json.dumps escapes the rest
            if self._fd is None:
                try:
                    self._fd = os.open(self.path, _APPEND_FLAGS, 0o600)
                except OSError:
                    # the folder is gone, or a symlink was planted: stdout has it
                    self._closed = True
                    return
            try:
                while data:  # a regular file takes it whole, short of a full disk
                    data = data[os.write(self._fd, data) :]
            except OSError:
                return  # a full disk: the runner's own log still has the line


def log_uri(task: Task, log: FilteringBoundLogger) -> str | None:
    """The task's ``pipelineLogUri``, or None. One that is not an s3:// URI skips
    the upload with a warning: a log location must never stop the task's work."""
    try:
        value = (task.get_str("pipelineLogUri") or "").strip()
        if value:
            parse_s3_uri(value)
    except ActivityError as exc:
        log.warning("pipeline_log_uri_invalid", error=exc.message)
        return None
    return value or None


def upload(
    task: Task,
    s3: S3,
    paths: AttemptPaths,
    uri: str,
    stop: threading.Event,
    *,
    hurry: threading.Event | None = None,
) -> None:
    """Upload the attempt's log files that exist to ``uri/<pipelineId>/<componentId>/
    <instanceId>/<attemptId>/<name>`` (each part made safe). Every file is tried
    (``stop`` ends retry backoffs, never the first try: the logs of a stopped attempt
    are wanted most) until ``hurry`` is set (the second signal); the first
    ``StagingError`` is raised after the last. Each file goes up on the calling
    thread (the step's, a daemon thread): an abandoned upload never holds the
    runner's exit."""
    parts = (task.pipeline_id, *component_ids(task))
    base = uri.rstrip("/") + "".join("/" + safe_path_part(p) for p in parts)
    files = [paths.stdout, paths.stderr, paths.root / RUNNER_LOG_NAME]
    failed: list[StagingError] = []
    for path in files:
        if hurry is not None and hurry.is_set():
            break
        if path.is_file():
            try:
                key = f"{base}/{safe_path_part(path.name)}"
                s3.upload_file(path, key, stop=stop, threads=False)
            except StagingError as exc:
                failed.append(exc)
    if failed:
        raise failed[0]


def stderr_tail(paths: AttemptPaths, size: int = 4096) -> str:
    """The last ``size`` bytes of the attempt's StdError, decoded leniently."""
    try:
        with paths.stderr.open("rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - size))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
