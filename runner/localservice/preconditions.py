"""The system-managed preconditions that the service checks itself: S3KeyExists,
S3PrefixNotEmpty, DynamoDBTableExists and DynamoDBDataExists.

Owns: the `localservice-preconditions` thread, which takes the attempts of these
preconditions from the engine's `service_checks` queue (lifecycle queues them there
instead of on a worker group), asks AWS (`awschecks`), and ends each attempt:
FINISHED when the precondition holds, FALSE when not (lifecycle then retries it
after `retryDelay` until `preconditionTimeout`, as for a runner's precondition),
FAILED with errorId `S3PreconditionError` or `DynamoDBPreconditionError` and a
message naming what was checked when AWS cannot answer. A check that cannot be
made is never passed: it is retried like any failed attempt (`maximumRetries`,
`retryDelay`), except when no retry can mend it (no credentials, no region).

Must not: hold the engine lock during network I/O, or run on the request path.

Why: AWS evaluates these preconditions in the service, with no runner and no
compute (DG dp-concepts-preconditions), so a pipeline guarded by them runs locally
unchanged, against the S3 and DynamoDB that boto3's configuration names. One
thread checks one attempt at a time; a check is a request or two, bounded by
botocore's timeouts.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from runner.localservice import lifecycle
from runner.localservice.awschecks import AwsChecks, CheckError
from runner.localservice.definition import SERVICE_PRECONDITIONS
from runner.localservice.engine import Engine
from runner.localservice.model import (
    FAILED,
    FALSE,
    FINISHED,
    WAITING_FOR_RUNNER,
    wall_time,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Check:
    """One attempt to check, read under the lock."""

    pipeline_id: str
    attempt_id: str
    kind: str  # a SERVICE_PRECONDITIONS type
    target: str  # its s3Key, s3Prefix or tableName, evaluated


@dataclass(frozen=True, slots=True)
class Verdict:
    """`met` True/False, or None with `error` when AWS could not answer."""

    met: bool | None
    error: str = ""
    retry: bool = True


def error_id(kind: str) -> str:
    return (
        "S3PreconditionError" if kind.startswith("S3") else "DynamoDBPreconditionError"
    )


class Checker:
    """Runs service-side precondition checks on its own thread. Thread-safe."""

    def __init__(self, engine: Engine, *, endpoint_url: str | None) -> None:
        self.engine = engine
        self.aws = AwsChecks(s3_endpoint_url=endpoint_url)

    def thread(self) -> threading.Thread:
        return threading.Thread(
            target=self.run, name="localservice-preconditions", daemon=True
        )

    def run(self) -> None:
        """Thread body: take a check, ask AWS without the lock, apply, repeat."""
        while True:
            try:
                check = self._next()
                if check is None:
                    return
                try:
                    verdict = self.evaluate(check)
                except Exception as exc:  # a bug fails this check, never the thread
                    log.exception("localservice_precondition_check_failed")
                    verdict = Verdict(None, f"{check.kind}: internal error: {exc}")
                self._apply(check, verdict)
            except Exception:  # a thread body logs and goes on (style.md)
                log.exception("localservice_preconditions_failed")

    # ---- under the lock ---------------------------------------------------------
    def _next(self) -> Check | None:
        """Block until a check is queued (None once the service stops)."""
        engine = self.engine
        with engine.cond:
            while not engine.stopping:
                while engine.service_checks:
                    check = self._read(*engine.service_checks.popleft())
                    if check is not None:
                        return check
                engine.cond.wait(1.0)
        return None

    def _read(self, pipeline_id: str, attempt_id: str) -> Check | None:
        attempt = self.engine.run(pipeline_id, attempt_id)
        if attempt is None or attempt.status != WAITING_FOR_RUNNER:
            return None  # canceled, deleted or already answered
        fields = {key: value for key, value, is_ref in attempt.fields if not is_ref}
        kind = fields.get("type", "")
        target = fields.get(SERVICE_PRECONDITIONS.get(kind, ""), "")
        return Check(pipeline_id, attempt_id, kind, target)

    def _apply(self, check: Check, verdict: Verdict) -> None:
        engine = self.engine
        with engine.cond:
            attempt = engine.run(check.pipeline_id, check.attempt_id)
            pipeline = engine.pipelines.get(check.pipeline_id)
            if (
                engine.stopping
                or attempt is None
                or pipeline is None
                or pipeline.deleted
                or attempt.status != WAITING_FOR_RUNNER
            ):
                return
            now = time.time()
            attempt.actual_start = attempt.actual_start or wall_time(now)
            if verdict.met is None:
                attempt.error_id = error_id(check.kind)
                attempt.error_message = verdict.error
                lifecycle.end_attempt(engine, attempt, FAILED, now, retry=verdict.retry)
            else:
                lifecycle.end_attempt(
                    engine, attempt, FINISHED if verdict.met else FALSE, now
                )
            engine.commit()

    # ---- without the lock -------------------------------------------------------
    def evaluate(self, check: Check) -> Verdict:
        """Ask AWS whether the precondition holds. Blocks on the network."""
        try:
            return Verdict(self.aws.met(check.kind, check.target))
        except CheckError as exc:
            return Verdict(None, str(exc), retry=exc.retry)
