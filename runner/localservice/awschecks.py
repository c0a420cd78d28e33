"""The AWS calls behind the system-managed preconditions: S3 and DynamoDB.

Owns: the boto3 clients (made on first use), and one function per precondition
type that answers "met?" with True or False, or raises `CheckError` when AWS
could not answer (no credentials, no region, no such bucket, access denied,
unreachable), with a message that names what was checked:
- S3KeyExists (DG dp-object-S3KeyExists): HeadObject; a 404 is "not yet" unless
  HeadBucket says the bucket itself is missing.
- S3PrefixNotEmpty (DG dp-object-s3prefixnotempty): ListObjectsV2, one key.
- DynamoDBTableExists (DG dp-dynamodbtableexists): DescribeTable; the table
  exists once it is ACTIVE or UPDATING (a table still CREATING is "not yet");
  ResourceNotFoundException is "not yet".
- DynamoDBDataExists (DG dp-dynamodbdataexists): a one-item Scan; a missing table
  has no data yet.

Must not: touch the engine or its lock; it is called by the `preconditions`
thread without the lock, and blocks on the network.

Why: one place for the foreign errors, translated once at the edge into a verdict
the lifecycle understands. The S3 client takes `endpoint_url` when the service was
given one (`dp-runner local --s3-endpoint-url`); otherwise both clients follow
boto3's own configuration (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL_DYNAMODB`,
profile, region), so that the service sees the same AWS as the runner. botocore's
connect and read timeouts bound a hung endpoint, and two tries at most are made:
the pipeline's own retries (`maximumRetries`, `retryDelay`) do the long waiting.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
)

_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 2},
    connect_timeout=5,
    read_timeout=10,
)
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
_TABLE_READY = frozenset({"ACTIVE", "UPDATING"})


class CheckError(Exception):
    """AWS could not answer; `retry` is False when no retry can mend it."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


def s3_location(uri: str) -> tuple[str, str] | None:
    """(bucket, key) of an `s3://bucket/key` URI, None for anything else."""
    if not uri.startswith("s3://"):
        return None
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return (bucket, key) if bucket else None


class AwsChecks:
    """Clients and calls. Not thread-safe: one checker thread uses it."""

    def __init__(self, *, s3_endpoint_url: str | None) -> None:
        self.s3_endpoint_url = s3_endpoint_url
        self._clients: dict[str, Any] = {}  # botocore clients: untyped (no stubs)

    def met(self, kind: str, target: str) -> bool:
        """Whether the precondition holds. Raises CheckError."""
        label = f"{kind} {target}"
        try:
            if kind == "S3KeyExists":
                return self._key_exists(*self._where(kind, target, need_key=True))
            if kind == "S3PrefixNotEmpty":
                bucket, prefix = self._where(kind, target, need_key=False)
                answer = self._client("s3").list_objects_v2(
                    Bucket=bucket, Prefix=prefix, MaxKeys=1
                )
                return int(answer.get("KeyCount", 0)) > 0
            if kind == "DynamoDBTableExists":
                return self._table_ready(target)
            if kind == "DynamoDBDataExists":
                return self._has_data(target)
        except NoCredentialsError as exc:
            service = "S3" if kind.startswith("S3") else "DynamoDB"
            raise CheckError(
                f"{label}: the local service found no AWS credentials for "
                f"{service} (set them as for boto3)",
                retry=False,
            ) from exc
        except NoRegionError as exc:
            raise CheckError(
                f"{label}: no AWS region is configured for the local service "
                "(set AWS_DEFAULT_REGION, as for boto3)",
                retry=False,
            ) from exc
        except (BotoCoreError, ClientError) as exc:
            raise CheckError(f"{label}: {_describe(kind, exc)}") from exc
        raise CheckError(f"{label}: not a precondition the service checks", retry=False)

    # ---- S3 -----------------------------------------------------------------------
    @staticmethod
    def _where(kind: str, uri: str, *, need_key: bool) -> tuple[str, str]:
        where = s3_location(uri)
        if where is None or (need_key and not where[1]):
            field = "s3Key" if need_key else "s3Prefix"
            raise CheckError(
                f"{kind} {uri}: {field} {uri!r} is not an s3://bucket/key URI",
                retry=False,
            )
        return where

    def _key_exists(self, bucket: str, key: str) -> bool:
        s3 = self._client("s3")
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _code(exc) not in _NOT_FOUND:
                raise
            # HEAD answers a bare 404 for a missing bucket too: tell them apart.
            s3.head_bucket(Bucket=bucket)
            return False
        return True

    # ---- DynamoDB -----------------------------------------------------------------
    def _table_ready(self, table: str) -> bool:
        try:
            answer = self._client("dynamodb").describe_table(TableName=table)
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                return False
            raise
        return str(answer["Table"].get("TableStatus", "")) in _TABLE_READY

    def _has_data(self, table: str) -> bool:
        try:
            answer = self._client("dynamodb").scan(
                TableName=table, Limit=1, Select="COUNT"
            )
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                return False
            raise
        return int(answer.get("Count", 0)) > 0

    def _client(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is None:
            endpoint = self.s3_endpoint_url if service == "s3" else None
            client = boto3.session.Session().client(
                service, endpoint_url=endpoint, config=_CONFIG
            )
            self._clients[service] = client
        return client


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe(kind: str, exc: BotoCoreError | ClientError) -> str:
    service = "S3" if kind.startswith("S3") else "DynamoDB"
    if not isinstance(exc, ClientError):
        return f"{service} could not be reached: {exc}"
    code = _code(exc)
    if code in _NOT_FOUND | {"NoSuchBucket"}:
        return "no such bucket"
    if code in {"403", "AccessDenied", "AccessDeniedException"}:
        return "access denied"
    message = exc.response.get("Error", {}).get("Message", "")
    return f"{service} answered {code or 'an error'}" + (
        f": {message}" if message else ""
    )
