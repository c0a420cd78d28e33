"""The Data Pipeline API wrapper: the only module that talks to the service.

Owns: the two boto3 clients (a long-poll one, a short one), which retry policy each
operation uses and what its errors mean for the caller. Every botocore/urllib3 error
is translated into ``runner.errors`` here, once (rules in ``translate``), and every
call runs through ``retries.call_with_retries``.

Must not: parse task objects (``taskmodel``), decide what a task's outcome is
(``execution``), sleep with ``time.sleep``, or log a full task id, a request body or
anything about credentials but their absence.

Why this shape (peers.md §5, combination A): botocore's own retries are off
(``total_max_attempts=1``): its sleeps ignore our shutdown events, and two retry
layers multiply the attempts. Only ``TransientServiceError`` is retried, with
jittered backoff capped by attempts, a budget and the shutdown events. Only
PollForTask uses the long read timeout (> the service's 90 s hold), so a hung
connection can never eat the 2-minute ack window (design.md §5).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

import botocore.exceptions
from botocore import xform_name  # PutPipelineDefinition -> put_pipeline_definition
from structlog.typing import FilteringBoundLogger

from runner.aws.calls import Caller
from runner.aws.callstats import ClientStatistics as ClientStatistics  # noqa: PLC0414 - re-export
from runner.aws.pollanswer import MALFORMED
from runner.aws.retries import RetryPolicies as RetryPolicies  # noqa: PLC0414 - re-export
from runner.aws.retries import RetryPolicy as RetryPolicy  # noqa: PLC0414 - re-export
from runner.aws.session import credential_secrets, datapipeline_client, new_session
from runner.aws.translate import THROTTLING_CODES
from runner.errors import (
    ConfigError,
    ServiceError,
    TaskNotFoundError,
    TransientServiceError,
)
from runner.liveness import Liveness
from runner.taskmodel import FinalStatus, digest

T = TypeVar("T")

POLL_READ_TIMEOUT_S = 100.0  # above the service's 90 s long-poll hold
POLL_CONNECT_TIMEOUT_S = 10.0
SHORT_READ_TIMEOUT_S = 20.0
SHORT_CONNECT_TIMEOUT_S = 5.0
#: The longest one try of any call but the poll can take.
CALL_TIMEOUT_S = SHORT_CONNECT_TIMEOUT_S + SHORT_READ_TIMEOUT_S
DESCRIBE_BATCH = 25  # DescribeObjects takes at most 25 ids per call
ONE_TRY = RetryPolicy(1, CALL_TIMEOUT_S, 0.0, 0.0)


class Client:
    """Data Pipeline calls with translation and retries. Thread-safe.

    ``stop`` (the first shutdown signal) cuts short the backoff of the poll and the
    runner heartbeat; ``abort`` (the second) cuts short every backoff, SetTaskStatus
    included; a cut-short call raises the last ``TransientServiceError``. Every
    method may raise the ``ServiceError`` subclasses, and ``ConfigError`` when no
    credentials are found.

    Region: ``region``, else ``AWS_REGION``, else boto3's chain (AWS_DEFAULT_REGION,
    the profile); none and no ``endpoint_url`` raises ``ConfigError``. Credentials
    are boto3's chain, untouched. ``poll_read_timeout_s`` exists for tests.
    ``liveness``: the calling thread's watch is ticked before and after every try
    (``runner.liveness``), so errors and backoffs count as iterations.
    """

    def __init__(
        self,
        *,
        region: str | None,
        endpoint_url: str | None,
        stop: threading.Event,
        abort: threading.Event,
        policies: RetryPolicies | None = None,
        log: FilteringBoundLogger,
        session: Any = None,
        poll_read_timeout_s: float = POLL_READ_TIMEOUT_S,
        liveness: Liveness | None = None,
    ) -> None:
        self._abort = abort
        self._both = (stop, abort)  # what cuts short the poll and the runner heartbeat
        self.policies = self._policies = policies or RetryPolicies.default()
        self._log = log
        self._calls = Caller(log, liveness)
        self.liveness = liveness
        #: A watched poller's bound is this plus the poll's longest backoff: the
        #: liveness ticks before and after each try, so the two never add up.
        self.poll_read_timeout_s = poll_read_timeout_s
        try:
            # boto3 ignores AWS_REGION (boto/boto3#3620); the CLI and the other SDKs
            # read it first, and design.md promises it works, so it comes first here
            region = region or os.environ.get("AWS_REGION") or None
            session = session or new_session(region)
            found = region or session.region_name
            if not found and endpoint_url is None:
                raise ConfigError(
                    "region: no AWS region found; set --region or AWS_REGION"
                )
            # SigV4 needs a region, even for an endpoint that ignores it (local service)
            self.region: str = found or "us-east-1"
            make = partial(datapipeline_client, session, self.region, endpoint_url)
            self._poll = make(POLL_CONNECT_TIMEOUT_S, poll_read_timeout_s)
            self._short = make(SHORT_CONNECT_TIMEOUT_S, SHORT_READ_TIMEOUT_S)
            #: The secret key and session token this client signs with, for the
            #: log's mask (``logs.mask_values``); the session itself is dropped.
            self.secrets = credential_secrets(session)
            #: Where the calls go: ``endpoint_url``, or the one botocore resolved.
            self.endpoint_url: str = self._short.meta.endpoint_url
        except botocore.exceptions.BotoCoreError as exc:  # a bad profile, a bad region
            raise ConfigError(f"Data Pipeline client: {exc}") from exc

    # -- the worker's operations ------------------------------------------------

    def poll_for_task(
        self,
        worker_group: str,
        hostname: str,
        instance_identity: Mapping[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """Long-poll (up to ~90 s) for a task; the raw ``taskObject`` or ``None``.
        ``instance_identity``: the EC2 document and signature, sent when known.
        A read timeout on the long poll means no task, not an error. A task whose
        shape botocore could not parse comes without objects, and with the problem
        under ``pollanswer.MALFORMED``."""
        request: dict[str, Any] = {"workerGroup": worker_group, "hostname": hostname}
        if instance_identity is not None:
            request["instanceIdentity"] = dict(instance_identity)

        def poll() -> dict[str, Any] | None:
            try:
                answer = self._calls.one_try(
                    "PollForTask", self._poll.poll_for_task, request
                )
            except TransientServiceError as exc:
                if exc.code == "ReadTimeoutError":
                    return None
                raise
            task: dict[str, Any] | None = answer.get("taskObject") or None
            if MALFORMED in answer:  # mended by pollanswer: the problem goes along
                self._log.warning("poll_answer_malformed", problem=answer[MALFORMED])
                if task is not None:
                    task[MALFORMED] = answer[MALFORMED]
            return task

        policy = self._policies.poll
        return self._calls.retried(
            "PollForTask", poll, policy, self._both, retry_on=ServiceError
        )

    def report_task_progress(
        self,
        task_id: str,
        *,
        first: bool = False,
        deadline_s: float | None = None,
        fields: Sequence[tuple[str, str]] = (),
    ) -> bool:
        """Acknowledge (``first``: the ack policy) or keep a task alive; returns
        ``canceled``. Retries end by ``deadline_s`` when that is sooner than the
        policy's budget, so a heartbeat retry never overruns the next beat. The
        ack's retries end at the first stop signal, as the poll's do: a task not
        yet acknowledged is left for the service to offer again, never started
        during a drain."""
        request: dict[str, Any] = {"taskId": task_id}
        if fields:
            request["fields"] = [{"key": k, "stringValue": v} for k, v in fields]
        policy = self._policies.ack if first else self._policies.progress
        answer = self.call(
            "ReportTaskProgress",
            request,
            policy,
            self._both if first else None,
            deadline_s=deadline_s,
            task=task_id,
        )
        return bool(answer.get("canceled", False))

    def set_task_status(
        self,
        task_id: str,
        status: FinalStatus,
        *,
        until: Callable[[], float | None] = lambda: None,
        wake: Sequence[threading.Event] = (),
    ) -> None:
        """Send the final status, with the longest budget (the commit point), but
        never past ``until()`` (a ``time.monotonic()`` deadline, or None); setting
        an event of ``wake`` means ``until`` may have moved closer.

        A try that failed in transit (a 5xx, a cut answer or a broken connection, not
        throttling) may have landed. If a later try gets TaskNotFound, the status
        counts as delivered: return and log ``task_status_assumed_delivered``.
        TaskNotFound with no such try before it raises ``TaskNotFoundError``.
        """
        request = {"taskId": task_id, **status.to_api()}
        in_doubt: list[str] = []

        def send() -> bool:
            try:
                self._calls.one_try(
                    "SetTaskStatus", self._short.set_task_status, request
                )
            except TransientServiceError as exc:
                if exc.code not in THROTTLING_CODES:
                    in_doubt.append(exc.code)
                raise
            except TaskNotFoundError:
                if not in_doubt:
                    raise
                return True
            return False

        delivered = self._calls.retried(
            "SetTaskStatus",
            send,
            self._policies.status,
            (),
            task=task_id,
            until=until,
            wake=wake,
        )
        if delivered:
            self._log.warning(
                "task_status_assumed_delivered",
                task_id=digest(task_id),
                status=status.status.value,
                earlier_error=in_doubt[-1],
            )

    def report_task_runner_heartbeat(
        self, taskrunner_id: str, group: str, hostname: str, *, once: bool = False
    ) -> bool:
        """Tell the service this runner is alive; returns ``terminate``. ``once``:
        one try, no retry (the start-up check, before signals are read)."""
        request = {
            "taskrunnerId": taskrunner_id,
            "workerGroup": group,
            "hostname": hostname,
        }
        policy = ONE_TRY if once else self._policies.runner_heartbeat
        answer = self.call("ReportTaskRunnerHeartbeat", request, policy, self._both)
        return bool(answer.get("terminate", False))

    def describe_objects(
        self,
        pipeline_id: str,
        object_ids: Sequence[str],
        evaluate_expressions: bool = True,
        *,
        interrupt: tuple[threading.Event, ...] = (),
    ) -> list[dict[str, Any]]:
        """Every object asked for, in batches of 25 ids, each paged on ``marker``.
        ``interrupt``: events that end a retry backoff, besides ``abort``."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(object_ids), DESCRIBE_BATCH):
            request = {
                "pipelineId": pipeline_id,
                "objectIds": list(object_ids[start : start + DESCRIBE_BATCH]),
                "evaluateExpressions": evaluate_expressions,
            }
            pages = self.pages("DescribeObjects", request, (self._abort, *interrupt))
            for page in pages:
                found.extend(page.get("pipelineObjects", []))
        return found

    def statistics(self) -> ClientStatistics:
        return self._calls.statistics()

    # -- machinery ---------------------------------------------------------------

    def call(
        self,
        operation: str,
        request: Mapping[str, Any],
        policy: RetryPolicy | None = None,
        interrupt: tuple[threading.Event, ...] | None = None,
        *,
        deadline_s: float | None = None,
        task: str | None = None,
    ) -> dict[str, Any]:
        """One operation on the short client, retried; the answer sans metadata.
        For operations without a method here (``management.py``)."""
        method = getattr(self._short, xform_name(operation))
        answer = self._calls.retried(
            operation,
            lambda: self._calls.one_try(operation, method, request),
            policy or self._policies.other,
            interrupt or (self._abort,),
            deadline_s=deadline_s,
            task=task,
        )
        answer.pop("ResponseMetadata", None)
        return answer

    def pages(
        self,
        operation: str,
        request: Mapping[str, Any],
        interrupt: tuple[threading.Event, ...] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Each page of a ``marker``-paged operation, each page retried on its own."""
        page = self.call(operation, request, interrupt=interrupt)
        yield page
        while page.get("hasMoreResults") and page.get("marker"):
            marked = {**request, "marker": str(page["marker"])}
            page = self.call(operation, marked, interrupt=interrupt)
            yield page
