"""One attempt's logs: the runner's own lines for it, and shipping them to S3.

Owns: ``AttemptLog``, which tees every runner log line about one attempt into
``<attempt>/TaskRunner.log`` (JSON lines, after the secret-masking processors), and
``finish``, which runs at the end of every attempt, whatever its outcome: deliver
``StdOutput``/``StdError`` where the task's ``stdout``/``stderr`` fields say, upload
the attempt's logs to ``pipelineLogUri/<pipelineId>/<componentId>/<instanceId>/
<attemptId>/``, and clean the staging folders.

Must not: change the task's status, or hold it back for longer than its deadline.
A failed upload is retried, logged and given up; the local files stay.

Why this way: the Java runner uploads logs hourly, so the logs of a failed attempt
are often missing when someone looks. Uploading at the end of each attempt, on a
bounded thread, gives every attempt its logs (also after a cancel or a timeout)
without letting a slow S3 delay the commit point.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import structlog
from structlog.typing import FilteringBoundLogger

from runner.activities import component_ids, safe_path_part
from runner.aws.s3 import S3
from runner.errors import ActivityError, StagingError
from runner.task import staging
from runner.taskmodel import AttemptPaths, Task

RUNNER_LOG_NAME = "TaskRunner.log"
#: The attempt's log uploads may hold the final status back this long at most.
UPLOAD_BUDGET_S = 30.0
_RETRY_CAP_S = 2.0


class AttemptLog:
    """Writes the runner's log lines about one attempt into its folder. Thread-safe
    (the progress heartbeat logs from its own thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        # Opened by the first line: usually ``task_started``, written while the
        # task's process already runs, so the open is off the way to the spawn.
        self._file: TextIO | None = None
        self._closed = False

    def bind(self, log: FilteringBoundLogger) -> FilteringBoundLogger:
        """``log`` with the same context and one more processor, which copies each
        line here just before the configured renderer."""
        config = structlog.get_config()
        processors = list(config["processors"])
        processors.insert(max(0, len(processors) - 1), self._processor)
        tee: FilteringBoundLogger = structlog.wrap_logger(
            None,
            processors=processors,
            wrapper_class=config["wrapper_class"],
            context_class=config["context_class"],
        )
        return tee.bind(**structlog.get_context(log))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._file is not None:
                self._file.close()

    def _processor(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        line = json.dumps(
            {k: v for k, v in event_dict.items() if not k.startswith("_")},
            default=str,
        )
        with self._lock:
            if self._closed:
                return event_dict
            if self._file is None:
                try:
                    self._file = self.path.open("a", encoding="utf-8")
                except OSError:
                    self._closed = True  # the folder is gone: stdout still has it
                    return event_dict
            self._file.write(line + "\n")
            self._file.flush()
        return event_dict


def finish(
    task: Task,
    plan: staging.StagingPlan,
    s3: S3,
    paths: AttemptPaths,
    *,
    log: FilteringBoundLogger,
    deadline_s: float = UPLOAD_BUDGET_S,
) -> None:
    """Deliver the output, upload the logs, clean up. Never raises."""
    try:
        staging.deliver_output(plan, s3, paths.stdout, paths.stderr)
    except ActivityError as exc:
        log.warning(
            "task_output_not_delivered", error_id=exc.error_id, error=exc.message
        )
    if plan.log_uri:
        component, instance, attempt = component_ids(task)
        files = [paths.stdout, paths.stderr, paths.root / RUNNER_LOG_NAME]
        upload_attempt_logs(
            plan,
            s3,
            files,
            pipeline_id=task.pipeline_id,
            component_id=component,
            instance_id=instance,
            attempt_id=attempt,
            deadline_s=deadline_s,
            log=log,
        )
    staging.cleanup(paths.root / "staging")


def upload_attempt_logs(
    plan: staging.StagingPlan,
    s3: S3,
    files: Sequence[Path],
    *,
    pipeline_id: str,
    component_id: str,
    instance_id: str,
    attempt_id: str,
    deadline_s: float,
    log: FilteringBoundLogger | None = None,
) -> bool:
    """Upload ``files`` to ``pipelineLogUri/<pipelineId>/<componentId>/<instanceId>/
    <attemptId>/<name>`` (each part made safe). Retries ``S3Error`` with jittered
    backoff; blocks at most ``deadline_s``; logs failures and never raises. True when
    every existing file landed, or when there is no ``pipelineLogUri``."""
    log = log or s3.log
    if plan.log_uri is None:
        return True
    parts = (pipeline_id, component_id, instance_id, attempt_id)
    base = plan.log_uri.rstrip("/") + "".join("/" + safe_path_part(p) for p in parts)
    uploads = [(p, f"{base}/{safe_path_part(p.name)}") for p in files if p.is_file()]
    job = _LogUpload(s3, uploads, log, time.monotonic() + deadline_s)
    thread = threading.Thread(target=job.run, name="attempt-log-upload", daemon=True)
    thread.start()
    thread.join(deadline_s)
    if thread.is_alive():
        job.give_up.set()
        log.warning("attempt_logs_upload_timed_out", uri=base, deadline_s=deadline_s)
        return False
    return job.ok


class _LogUpload:
    """The body of the log-upload thread; ``ok`` is read after ``join``."""

    def __init__(
        self,
        s3: S3,
        uploads: list[tuple[Path, str]],
        log: FilteringBoundLogger,
        deadline: float,
    ) -> None:
        self.s3, self.uploads, self.log, self.deadline = s3, uploads, log, deadline
        self.give_up = threading.Event()
        self.ok = False

    def run(self) -> None:
        try:
            results = [
                self._upload(path, uri)
                for path, uri in self.uploads
                if not self.give_up.is_set()
            ]
            self.ok = all(results) and len(results) == len(self.uploads)
        except Exception:
            self.log.exception("attempt_logs_upload_crashed")

    def _upload(self, path: Path, uri: str) -> bool:
        for attempt in range(1, 100):
            try:
                self.s3.upload_file(path, uri)
            except StagingError as exc:
                delay = random.uniform(0, min(_RETRY_CAP_S, 0.1 * 2**attempt))  # noqa: S311 - jitter, not crypto
                left_s = self.deadline - time.monotonic()
                if exc.error_id != "S3Error" or left_s <= delay:
                    self.log.warning(
                        "attempt_log_upload_failed",
                        uri=uri,
                        error_id=exc.error_id,
                        error=exc.message,
                        attempts=attempt,
                    )
                    return False
                self.log.info(
                    "attempt_log_upload_retry_scheduled", uri=uri, attempt=attempt
                )
                if self.give_up.wait(delay):
                    return False
            else:
                return True
        return False


def stderr_tail(paths: AttemptPaths, size: int = 4096) -> str:
    """The last ``size`` bytes of the attempt's StdError, decoded leniently."""
    try:
        with paths.stderr.open("rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - size))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
