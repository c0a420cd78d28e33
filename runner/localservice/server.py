"""`LocalService`: the HTTP front of the local Data Pipeline service.

Owns: starting and stopping the listener (`listener`: sockets and their limits),
the dispatch from `X-Amz-Target` to an operation, AWS's call rates when asked
(`throttle`, before anything else is done for the call), fault injection (a
dropped connection and a cut answer are carried out by the listener), the call
log (refusals of the listener included), the filter that keeps masked
parameter values out of the service's log lines (`parameters.RedactingFilter`, on
the package's loggers while it runs), the scheduler thread, the thread that checks
the system-managed preconditions (`preconditions`: S3 and DynamoDB;
`s3_endpoint_url` None means boto3's own configuration: AWS_ENDPOINT_URL_S3,
profile, real S3; DynamoDB always follows boto3's, AWS_ENDPOINT_URL_DYNAMODB
included), and start/stop/serve_forever.

Must not: implement operations (taskops, pipelineops, objectops do) or import
anything from the rest of `runner` (this package is an island). It raises one
exception of its own, `StartupError`, when it cannot start.

Why: boto3 and the AWS CLI must work unchanged against it, and the task API
must add no latency of its own: a response split over two writes on a socket
with Nagle on stalls 40 ms on the client's delayed ACK.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from runner.localservice import lifecycle, listener, preconditions, schedule, throttle
from runner.localservice.engine import Engine
from runner.localservice.faults import CUTS, CallLog, Fault, Faults, RecordedCall
from runner.localservice.listener import MAX_BODY_BYTES, Limits
from runner.localservice.objectops import ObjectApi
from runner.localservice.parameters import RedactingFilter
from runner.localservice.pipelineops import PipelineApi
from runner.localservice.preconditions import Checker
from runner.localservice.protocol import ServiceError, decode, validate
from runner.localservice.startup import StartupError
from runner.localservice.store import Store
from runner.localservice.taskops import TaskApi
from runner.localservice.throttle import Throttle

log = logging.getLogger(__name__)
# Every logger of the package (a logger's filters apply to its own records only).
_LOGGERS = (log, preconditions.log, listener.log, throttle.log)
Operation = Callable[[dict[str, Any]], dict[str, Any]]
THROTTLES = ("off", "aws")
#: How often a held call (`Fault.hold`) looks whether the service is stopping.
HOLD_CHECK_S = 0.1


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
        *,
        throttle: str = "off",
        request_timeout_s: float = 10.0,
        idle_timeout_s: float = 120.0,
        max_body_bytes: int = MAX_BODY_BYTES,
        refuse_old_starts: bool = True,
        lease_time_scale: float | None = None,
        pipeline_ids: Mapping[str, str] | None = None,
    ) -> None:
        """Open the state (raises StartupError); `start()` binds. `throttle`
        "aws" enforces AWS's call rates (`throttle`), in real time.
        `refuse_old_starts` False lifts AWS's refusal to activate a schedule
        that starts more than a day ago: `dp-runner exec` runs a past slot.
        `lease_time_scale` scales the lease windows (the 2-minute ack window,
        reportProgressTimeout) apart from the rest of the clock; None: `time_scale`.
        A test whose verdict must not hang on a lease lapsing passes 1.0: its
        leases then outlast the test, whatever the machine's speed.
        `pipeline_ids` maps a CreatePipeline `uniqueId` to the pipeline id it
        gets (AWS always makes one up): `dp-runner exec --pipeline-id` runs its
        slot under the id a scheduler chose."""
        if throttle not in THROTTLES:
            raise ValueError(f"throttle must be one of {THROTTLES}, not {throttle!r}")
        self.host, self.port = host, port
        self.s3_endpoint_url = s3_endpoint_url  # None: boto3's own configuration
        self.faults = Faults()
        self.throttle = Throttle() if throttle == "aws" else None
        self.limits = Limits(
            request_timeout_s=request_timeout_s,
            idle_timeout_s=idle_timeout_s,
            max_body_bytes=max_body_bytes,
        )
        self._log = CallLog()
        self._store = Store(state_path)
        self.engine = self._open_engine(
            time_scale, runs_on_worker_group, lease_time_scale
        )
        self.engine.refuse_old_starts = refuse_old_starts
        self.engine.named_pipeline_ids = dict(pipeline_ids or {})
        self._checker = Checker(self.engine, endpoint_url=s3_endpoint_url)
        self._tasks = TaskApi(self.engine, poll_hold_s=poll_hold_s)
        self.operations = self._operations()
        self._stopped = threading.Event()
        self._httpd: listener.Server | None = None
        self._threads: list[threading.Thread] = []
        self._redacting = RedactingFilter(lambda: self.engine.masked)

    def _open_engine(
        self,
        time_scale: float,
        runs_on_worker_group: str,
        lease_time_scale: float | None,
    ) -> Engine:
        """The engine over the store, loaded (the store is closed if it cannot be
        read: StartupError)."""
        engine = Engine(
            self._store,
            time_scale=time_scale,
            runs_on_worker_group=runs_on_worker_group,
            lease_time_scale=lease_time_scale,
        )
        lifecycle.register(engine)
        schedule.register(engine)
        with engine.cond:
            try:
                engine.load()
            except StartupError:
                self._store.close()
                raise
        return engine

    def _operations(self) -> dict[str, Operation]:
        return {
            "PollForTask": self._tasks.poll_for_task,
            "ReportTaskProgress": self._tasks.report_task_progress,
            "SetTaskStatus": self._tasks.set_task_status,
            "ReportTaskRunnerHeartbeat": self._tasks.report_task_runner_heartbeat,
            **PipelineApi(self.engine).operations(),
            **ObjectApi(self.engine).operations(),
        }

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Bind and serve on daemon threads; returns once listening. Raises
        StartupError when the address cannot be bound (the state is closed)."""
        try:
            httpd = listener.Server((self.host, self.port), self, self.limits)
        except OSError as exc:
            with self.engine.cond:
                self._store.close()
            raise StartupError(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from exc
        for logger in _LOGGERS:
            logger.addFilter(self._redacting)
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
            self._admit(operation)
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
            # in one line; the traceback, whose locals may hold values, at debug
            log.error(  # noqa: TRY400
                "localservice_operation_failed operation=%s error=%s",
                operation,
                f"{type(exc).__name__}: {exc}"[:500],
            )
            log.debug("localservice_operation_failed", exc_info=True)
            error = "InternalServiceError"
            return 500, ServiceError(error, f"internal error: {exc}").body(), None
        finally:
            done = time.monotonic()
            self._log.append(
                RecordedCall(operation, request, error, arrived, done), len(raw)
            )
            _log_request(operation, request, error, done - arrived)
        return 200, _json(answer), cut

    def _admit(self, operation: str) -> None:
        """With `--throttle aws`, a call over its bucket is ThrottlingException,
        before anything else is done for it (as AWS throttles)."""
        if self.throttle is not None and not self.throttle.take(operation):
            raise ServiceError("ThrottlingException", throttle.MESSAGE)

    def refuse(self, target: str | None, code: str, message: str) -> bytes:
        """Record a request the listener refused unread; its AWS error body."""
        now = time.monotonic()
        operation = (target or "").removeprefix("DataPipeline.")
        self._log.append(RecordedCall(operation, {}, code, now, now))
        return ServiceError(code, message).body()

    def _inject(self, operation: str) -> Fault | None:
        """Apply a scripted fault: wait, raise its error, or return it for what
        the answer must undergo: "drop" before the operation, a cut or a rewrite
        after it."""
        fault = self.faults.take(operation)
        if fault is None:
            return None
        if fault.latency_s:
            self._stopped.wait(fault.latency_s)
        while fault.hold is not None and not fault.hold.wait(HOLD_CHECK_S):
            if self._stopped.is_set():
                break
        if fault.error is None or fault.error == "drop" or fault.error in CUTS:
            return fault
        raise ServiceError(fault.error, f"injected fault: {fault.error}")


def _log_request(
    operation: str, request: dict[str, Any], error: str | None, took_s: float
) -> None:
    """One line per request at info: operation, pipeline, outcome, time."""
    pipeline = request.get("pipelineId")
    log.info(
        "localservice_request operation=%s pipeline=%s outcome=%s ms=%.1f",
        operation or "-",
        pipeline if isinstance(pipeline, str) else "-",
        error or "ok",
        took_s * 1000,
    )


def _json(answer: dict[str, Any]) -> bytes:
    return json.dumps(answer, separators=(",", ":")).encode()
