"""The system-managed preconditions that the service checks itself: S3KeyExists and
S3PrefixNotEmpty.

Owns: the `localservice-preconditions` thread, which takes the attempts of these
preconditions from the engine's `service_checks` queue (lifecycle queues them there
instead of on a worker group), asks S3, and ends each attempt: FINISHED when the
key exists (or the prefix has a key), FALSE when not (lifecycle then retries it
after `retryDelay` until `preconditionTimeout`, as for a runner's precondition),
FAILED with errorId `S3PreconditionError` and a message naming the URI when S3
cannot answer (no credentials, no such bucket, access denied, unreachable); a
failed check is retried like any failed attempt (`maximumRetries`), except for
missing credentials, which no retry mends.

Must not: hold the engine lock during network I/O, or run on the request path.
The only S3 calls are HeadObject, HeadBucket and ListObjectsV2.

Why: AWS evaluates these preconditions in the service, with no runner and no
compute, so a pipeline guarded by `S3KeyExists` runs locally unchanged. The S3
client is boto3's, created on the first check: with `endpoint_url` when the
service was given one (`dp-runner local --s3-endpoint-url`), else wherever boto3's
own configuration points (`AWS_ENDPOINT_URL_S3`, profile, region, real S3), so
that the service and the runner see the same S3 with no setting of our own. One
thread checks one attempt at a time; a check is a request or two, and botocore's
connect and read timeouts bound a hung endpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from runner.localservice import lifecycle
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
ERROR_ID = "S3PreconditionError"
# The pipeline's own retries (maximumRetries, retryDelay) do the long waiting.
_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 2},
    connect_timeout=5,
    read_timeout=10,
)
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})


@dataclass(frozen=True, slots=True)
class Check:
    """One attempt to check, read under the lock."""

    pipeline_id: str
    attempt_id: str
    kind: str  # S3KeyExists | S3PrefixNotEmpty
    uri: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """`met` True/False, or None with `error` when S3 could not answer."""

    met: bool | None
    error: str = ""
    retry: bool = True


def s3_location(uri: str) -> tuple[str, str] | None:
    """(bucket, key) of an `s3://bucket/key` URI, None for anything else."""
    if not uri.startswith("s3://"):
        return None
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return (bucket, key) if bucket else None


class Checker:
    """Runs service-side precondition checks on its own thread. Thread-safe."""

    def __init__(self, engine: Engine, *, endpoint_url: str | None) -> None:
        self.engine = engine
        self.endpoint_url = endpoint_url
        self._client: Any = None  # a botocore S3 client: untyped (no stubs)

    def thread(self) -> threading.Thread:
        return threading.Thread(
            target=self.run, name="localservice-preconditions", daemon=True
        )

    def run(self) -> None:
        """Thread body: take a check, ask S3 without the lock, apply, repeat."""
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
        uri = fields.get(SERVICE_PRECONDITIONS.get(kind, ""), "")
        return Check(pipeline_id, attempt_id, kind, uri)

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
                attempt.error_id, attempt.error_message = ERROR_ID, verdict.error
                lifecycle.end_attempt(engine, attempt, FAILED, now, retry=verdict.retry)
            else:
                lifecycle.end_attempt(
                    engine, attempt, FINISHED if verdict.met else FALSE, now
                )
            engine.commit()

    # ---- without the lock -------------------------------------------------------
    def evaluate(self, check: Check) -> Verdict:
        """Ask S3 whether the precondition holds. Blocks on the network."""
        where = s3_location(check.uri)
        field = SERVICE_PRECONDITIONS.get(check.kind, "s3Key")
        if where is None or (check.kind == "S3KeyExists" and not where[1]):
            return Verdict(None, f"{field} {check.uri!r} is not an s3://bucket/key URI")
        bucket, key = where
        try:
            if check.kind == "S3KeyExists":
                return Verdict(self._key_exists(bucket, key))
            answer = self.client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
            return Verdict(int(answer.get("KeyCount", 0)) > 0)
        except NoCredentialsError:
            return Verdict(
                None,
                f"{check.kind} {check.uri}: the local service found no AWS "
                "credentials for S3 (set them as for boto3)",
                retry=False,
            )
        except (BotoCoreError, ClientError) as exc:
            return Verdict(None, f"{check.kind} {check.uri}: {_describe(exc)}")

    @property
    def client(self) -> Any:
        """The S3 client, made on first use (only this thread calls it)."""
        if self._client is None:
            session = boto3.session.Session()
            self._client = session.client(
                "s3", endpoint_url=self.endpoint_url, config=_CONFIG
            )
        return self._client

    def _key_exists(self, bucket: str, key: str) -> bool:
        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _code(exc) not in _NOT_FOUND:
                raise
            # HEAD answers a bare 404 for a missing bucket too: tell them apart.
            self.client.head_bucket(Bucket=bucket)
            return False
        return True


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe(exc: BotoCoreError | ClientError) -> str:
    if isinstance(exc, ClientError):
        code = _code(exc)
        if code in _NOT_FOUND | {"NoSuchBucket"}:
            return "no such bucket"
        if code in {"403", "AccessDenied"}:
            return "access denied"
        message = exc.response.get("Error", {}).get("Message", "")
        return f"S3 answered {code or 'an error'}" + (f": {message}" if message else "")
    return f"S3 could not be reached: {exc}"
