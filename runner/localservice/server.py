"""`LocalService`: the HTTP front of the local Data Pipeline service.

Owns: the listener (stdlib ThreadingHTTPServer, HTTP/1.1 keep-alive, TCP_NODELAY
on every accepted socket, each response written in one `sendall`), the dispatch
from `X-Amz-Target` to an operation, fault injection (a dropped connection and a
cut answer are carried out here), the call log, the filter that keeps masked
parameter values out of the service's log lines (`parameters.RedactingFilter`, on
the package's loggers while it runs), the scheduler thread, the thread that checks
S3 preconditions (`preconditions`;
`s3_endpoint_url` None means boto3's own configuration: AWS_ENDPOINT_URL_S3,
profile, real S3), and start/stop/serve_forever.

Must not: implement operations (taskops, pipelineops, objectops do) or import
anything from the rest of `runner` (this package is an island).

Why: boto3 and the AWS CLI must work unchanged against it, and the task API
must add no latency of its own: a response split over two writes on a socket
with Nagle on stalls 40 ms on the client's delayed ACK.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from runner.localservice import lifecycle, preconditions, schedule
from runner.localservice.engine import Engine
from runner.localservice.faults import CUTS, CallLog, Fault, Faults, RecordedCall
from runner.localservice.objectops import ObjectApi
from runner.localservice.parameters import RedactingFilter
from runner.localservice.pipelineops import PipelineApi
from runner.localservice.preconditions import Checker
from runner.localservice.protocol import (
    JSON_CONTENT_TYPE,
    ServiceError,
    decode,
    validate,
)
from runner.localservice.store import Store
from runner.localservice.taskops import TaskApi

log = logging.getLogger(__name__)
# Every logger of the package (a logger's filters apply to its own records only).
_LOGGERS = (log, preconditions.log)
Operation = Callable[[dict[str, Any]], dict[str, Any]]
_REASONS = {
    200: "OK",
    400: "Bad Request",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class LocalService:
    """The local Data Pipeline service. `start()` serves on daemon threads."""

    def __init__(  # noqa: PLR0917 - the CLI passes these positionally (design §6)
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        state_path: str | os.PathLike[str] | None = None,
        time_scale: float = 1.0,
        poll_hold_s: float = 90.0,
        runs_on_worker_group: str = "local",
        s3_endpoint_url: str | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.s3_endpoint_url = s3_endpoint_url  # None: boto3's own configuration
        self.faults = Faults()
        self._log = CallLog()
        self._store = Store(state_path)
        self.engine = Engine(
            self._store,
            time_scale=time_scale,
            runs_on_worker_group=runs_on_worker_group,
        )
        lifecycle.register(self.engine)
        schedule.register(self.engine)
        with self.engine.cond:
            self.engine.load()
        self._checker = Checker(self.engine, endpoint_url=s3_endpoint_url)
        self._tasks = TaskApi(self.engine, poll_hold_s=poll_hold_s)
        pipelines = PipelineApi(self.engine)
        objects = ObjectApi(self.engine)
        self.operations: dict[str, Operation] = {
            "PollForTask": self._tasks.poll_for_task,
            "ReportTaskProgress": self._tasks.report_task_progress,
            "SetTaskStatus": self._tasks.set_task_status,
            "ReportTaskRunnerHeartbeat": self._tasks.report_task_runner_heartbeat,
            **pipelines.operations(),
            **objects.operations(),
        }
        self._stopped = threading.Event()
        self._httpd: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._redacting = RedactingFilter(lambda: self.engine.masked)

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Bind and serve on daemon threads; returns once listening."""
        for logger in _LOGGERS:
            logger.addFilter(self._redacting)
        httpd = _Server((self.host, self.port), _Handler)
        httpd.service = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._threads = [
            threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.2},
                name="localservice-http",
                daemon=True,
            ),
            threading.Thread(
                target=self._scheduler, name="localservice-scheduler", daemon=True
            ),
            self._checker.thread(),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def serve_forever(self) -> None:
        """Start and block until `stop()` is called (from any thread)."""
        self.start()
        self._stopped.wait()

    def stop(self) -> None:
        """Close the listener and open connections, wake held polls, close the db."""
        if self._stopped.is_set():
            return
        with self.engine.cond:
            self.engine.stopping = True
            self.engine.cond.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.close_connections()
            self._httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        with self.engine.cond:
            self.engine.commit()
            self._store.close()
        for logger in _LOGGERS:
            logger.removeFilter(self._redacting)
        self._stopped.set()

    def __enter__(self) -> LocalService:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # ---- test surface -------------------------------------------------------------
    def calls(self, operation: str | None = None) -> list[RecordedCall]:
        return self._log.calls(operation)

    def set_terminate(
        self, flag: bool = True, taskrunner_id: str | None = None
    ) -> None:
        """ReportTaskRunnerHeartbeat answers terminate=flag (one runner, or all)."""
        self._tasks.set_terminate(flag, taskrunner_id)

    # ---- internals -------------------------------------------------------------------
    def _scheduler(self) -> None:
        engine = self.engine
        with engine.cond:
            while not engine.stopping:
                try:
                    now = time.time()
                    engine.advance(now)
                    engine.commit()
                    wait = engine.next_timer_in(time.time())
                except Exception:  # a thread body logs and goes on (style.md)
                    log.exception("localservice_scheduler_failed")
                    wait = 1.0
                engine.cond.wait(1.0 if wait is None else min(wait, 1.0))

    def handle(
        self, target: str | None, raw: bytes
    ) -> tuple[int, bytes | None, str | None]:
        """Answer one request: (status, body, cut). Body None = drop the connection;
        cut "cut" or "cut-length" = send half of the body, then close (`faults`)."""
        arrived = time.monotonic()
        operation, error, cut = "", None, None
        request: dict[str, Any] = {}
        try:
            operation, request = decode(target, raw)
            fault = self._inject(operation)
            cut = fault.error if fault is not None else None
            if cut == "drop":
                error = "drop"
                return 0, None, None
            validate(operation, request)
            answer = self.operations[operation](request)
            error = cut  # committed; only its answer is cut
            if fault is not None and fault.rewrite is not None:
                answer, error = fault.rewrite(answer), "rewrite"
        except ServiceError as exc:
            error = exc.code
            return exc.status, exc.body(), None
        except Exception as exc:  # any bug answers 500, as AWS would, and is logged
            log.exception("localservice_operation_failed")
            error = "InternalServiceError"
            return 500, ServiceError(error, f"internal error: {exc}").body(), None
        finally:
            self._log.append(
                RecordedCall(operation, request, error, arrived, time.monotonic())
            )
        return 200, _json(answer), cut

    def _inject(self, operation: str) -> Fault | None:
        """Apply a scripted fault: wait, raise its error, or return it for what
        the answer must undergo: "drop" before the operation, a cut or a rewrite
        after it."""
        fault = self.faults.take(operation)
        if fault is None:
            return None
        if fault.latency_s:
            self._stopped.wait(fault.latency_s)
        if fault.error is None or fault.error == "drop" or fault.error in CUTS:
            return fault
        raise ServiceError(fault.error, f"injected fault: {fault.error}")


def _json(answer: dict[str, Any]) -> bytes:
    return json.dumps(answer, separators=(",", ":")).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    service: LocalService

    def __init__(self, address: tuple[str, int], handler: type[_Handler]) -> None:
        super().__init__(address, handler)
        self._sockets: set[socket.socket] = set()
        self._sockets_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = self.socket.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._sockets_lock:
            self._sockets.add(conn)
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        with self._sockets_lock:
            self._sockets.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._sockets_lock:
            sockets = list(self._sockets)
        for conn in sockets:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, body, cut = self.server.service.handle(
            self.headers.get("X-Amz-Target"), raw
        )
        if body is None:
            self._close()
            return
        head = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
            f"Content-Type: {JSON_CONTENT_TYPE}",
            # "cut": no length, so the body ends where the connection does
            "Connection: close" if cut == "cut" else f"Content-Length: {len(body)}",
            f"x-amzn-RequestId: {os.urandom(16).hex()}",
        ]
        sent = body[: len(body) // 2] if cut else body
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + sent)
        if cut:
            self._close()

    def _close(self) -> None:
        """End the connection now: a dropped or cut answer is never followed."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr line."""
