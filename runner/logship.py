"""Shipping the runner's own log file to ``--log-uri``.

Owns: ``LogShipper``, which uploads each file the file log (``logs.add_file_log``)
rotates out to ``<log_uri>/<runner id>/<file name>``, on its own thread, and at
``close`` the current file as ``<log_uri>/<runner id>/dp-runner.log.<UTC
YYYY-MM-DD-HH-MM-SS>.final``. The runner id is ``taskrunner_id`` (or the hostname),
so that several runners can share one ``log_uri``.

Must not: block the logging call path on S3, delete or move a local file (the
handler's ``backupCount`` owns deletion; a failed upload leaves the file where it
is), raise out of a failed upload, or log from the rotation hook.

Why this way: the Java runner pushes its log hourly and once more at shutdown
(reference/datapipeline.md §2.6); we do the same, but the push is triggered by the
handler's own rotation rather than by a timer, so the object holds exactly one
hour. The hook is the handler's ``rotator``: it runs inside ``emit`` with the
handler's lock held, so it only renames and queues a path. Were it to log, that
line would re-enter the same handler mid-rollover (its ``rolloverAt`` not yet
moved on) and roll over again, recursively. The ``log-shipper`` thread does the
uploads and may log (``log_shipped``): a line it logs can at most trigger the next
hour's rotation, which queues one more file; it cannot loop. Retries are S3's own
(the shared ``retries.call_with_retries``: transient errors only) under this
shipper's policy, with an ``Event.wait`` backoff that ``close`` cuts short when its
time is up. A permanent error (no such bucket, access denied) is not retried; the
file stays where it is. The ``.final`` object is a snapshot of the current hour so
far: the hourly object uploaded when that hour rotates (also after a restart, when
the next run rotates the file it finds) is the complete one.
"""

from __future__ import annotations

import contextlib
import logging.handlers
import os
import queue
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from structlog.typing import FilteringBoundLogger

from runner import logs
from runner.aws.retries import RetryPolicy
from runner.aws.s3 import S3
from runner.errors import StagingError

#: A few tries over about a minute, for an outage as much as a dropped connection.
DEFAULT_POLICY = RetryPolicy(
    attempts=4, budget_s=60.0, wait_initial_s=2.0, wait_max_s=20.0
)
#: How long ``close`` waits for the last uploads by default.
CLOSE_TIMEOUT_S = 15.0
FINAL_STAMP = "%Y-%m-%d-%H-%M-%S"
FINAL_SUFFIX = ".final"
THREAD_NAME = "log-shipper"

_UNSAFE = re.compile(r"[^A-Za-z0-9._=@+-]")


@dataclass(frozen=True, slots=True)
class ShipperStatistics:
    shipped: int
    failed: int
    pending: int


@dataclass(frozen=True, slots=True)
class _Job:
    path: Path
    name: str


def runner_prefix(log_uri: str, runner_id: str) -> str:
    """``<log_uri>/<runner id>``, the id made one safe key segment."""
    segment = _UNSAFE.sub("_", runner_id).strip(".") or "runner"
    return f"{log_uri.rstrip('/')}/{segment}"


class LogShipper:
    """Uploads the file log's rotated files, and its last file at ``close``.

    ``start`` and ``close`` are for the main thread; the rotation hook may run on
    any thread that logs. Nothing here raises on a failed upload.
    """

    def __init__(
        self,
        handler: logging.handlers.TimedRotatingFileHandler,
        *,
        s3: S3,
        log_uri: str,
        runner_id: str,
        log: FilteringBoundLogger,
        policy: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        self.log = log
        self.prefix = runner_prefix(log_uri, runner_id)
        self.error: BaseException | None = None
        self._handler = handler
        self._s3 = s3
        self._policy = policy
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._abort = threading.Event()
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._closed = False
        self._count_lock = threading.Lock()  # the hook counts from any thread
        self._shipped = 0
        self._failed = 0
        self._queued = 0

    def start(self) -> None:
        """Hook the handler's rotation and start the ``log-shipper`` thread."""
        self._thread.start()
        with _handler_lock(self._handler):
            self._handler.rotator = self._rotate

    def uri_for(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def ship_nowait(self, path: Path, name: str | None = None) -> None:
        """Queue one file for upload as ``name`` (its own name by default)."""
        with self._count_lock:
            self._queued += 1
        self._jobs.put(_Job(path, name or path.name))

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
        """Unhook the rotation, queue the current file as the ``.final`` object and
        wait at most ``timeout_s`` for the queue to be shipped. Past that, a backoff
        in progress is cut short and what is still queued is given up (an upload in
        flight ends on its own: the thread is a daemon). True when every queued
        file landed. Idempotent."""
        if self._closed or not self._thread.is_alive():
            return self._failed == 0 and not self._thread.is_alive()
        self._closed = True
        with _handler_lock(self._handler):
            self._handler.rotator = None  # later rotations only rename
            self._handler.flush()
        current = Path(self._handler.baseFilename)
        stamp = time.strftime(FINAL_STAMP, time.gmtime())
        self.ship_nowait(current, f"{current.name}.{stamp}{FINAL_SUFFIX}")
        self._jobs.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._abort.set()
            self.log.warning(
                "log_ship_timeout", timeout_s=timeout_s, **self._stats_fields()
            )
            return False
        return self._failed == 0 and self.error is None

    def statistics(self) -> ShipperStatistics:
        with self._count_lock:
            done = self._shipped + self._failed
            return ShipperStatistics(self._shipped, self._failed, self._queued - done)

    def _stats_fields(self) -> dict[str, int]:
        stats = self.statistics()
        return {
            "shipped": stats.shipped,
            "failed": stats.failed,
            "pending": stats.pending,
        }

    def _count(self, *, shipped: int = 0, failed: int = 0) -> None:
        with self._count_lock:
            self._shipped += shipped
            self._failed += failed

    def _rotate(self, source: str, dest: str) -> None:
        """The handler's ``rotator``: runs inside ``emit``, under the handler's lock.
        Rename and queue, nothing else: no logging here (see the module docstring)."""
        if os.path.exists(source):
            os.rename(source, dest)
            self.ship_nowait(Path(dest))

    def _run(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                self._ship(job)
        except Exception as exc:
            self.log.exception("log_shipper_failed")
            self.error = exc

    def _ship(self, job: _Job) -> None:
        """Upload one file with retries. Each outcome is logged before it is
        counted, so ``statistics`` never runs ahead of the log."""
        uri = self.uri_for(job.name)
        if self._abort.is_set() or not job.path.is_file():
            reason = "abandoned" if self._abort.is_set() else "missing"
            self.log.warning(
                "log_ship_skipped", path=str(job.path), uri=uri, reason=reason
            )
            self._count(failed=1)
            return
        started = time.monotonic()
        try:
            self._s3.upload_file(
                job.path, uri, sse=True, stop=self._abort, policy=self._policy
            )
        except StagingError as exc:
            self.log.warning(
                "log_ship_failed",
                path=str(job.path),
                uri=uri,
                error_id=exc.error_id,
                error=str(exc),
            )
            self._count(failed=1)
            return
        duration_s = round(time.monotonic() - started, 3)
        self.log.info("log_shipped", path=str(job.path), uri=uri, duration_s=duration_s)
        self._count(shipped=1)


def start(
    log_uri: str | None, *, s3: S3, runner_id: str, log: FilteringBoundLogger
) -> LogShipper | None:
    """A started ``LogShipper`` on the installed file log, or ``None`` when there is
    no ``log_uri`` or no file log. For ``cli/``: call it after ``add_file_log``."""
    handler = logs.file_log()
    if log_uri is None or handler is None:
        return None
    shipper = LogShipper(handler, s3=s3, log_uri=log_uri, runner_id=runner_id, log=log)
    shipper.start()
    return shipper


@contextlib.contextmanager
def _handler_lock(handler: logging.Handler) -> Iterator[None]:
    """Hold the handler's own (re-entrant) lock, the one ``emit`` holds."""
    handler.acquire()
    try:
        yield
    finally:
        handler.release()
