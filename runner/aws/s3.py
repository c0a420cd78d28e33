"""S3 transfers: the one module that talks to S3.

It owns one boto3 S3 client, created on first use (an idle runner never pays for it).
Endpoint, region and profile come from boto3's own chain (``AWS_ENDPOINT_URL_S3``,
``AWS_PROFILE``...); ``region`` only overrides it, as ``--region`` does. Nothing here
adds a second way to set what boto3 reads.

Retries: botocore's are off and s3transfer tries a download once; a transient error
(throttling, a 5xx, a broken connection, a read timeout) is retried by the one tenacity
helper (``retries.call_with_retries``) under this object's policy, and the backoff ends
at once when the caller's ``stop`` event is set. A request in flight cannot be
aborted (s3transfer has no way to), so the read timeout is short (the runner uses
max(1 s, kill_grace)) and the connect timeout at most 5 s: a caller that abandons a
hung transfer on a stop knows the thread it left behind ends soon after.

Transfers go through boto3's managed transfers (s3transfer): multipart above
``TransferConfig.multipart_threshold`` (8 MiB), parts in parallel, bounded queues, so
memory stays flat whatever the size. A prefix is moved by one transfer manager with
many files in flight, the way ``aws s3 cp --recursive`` does it.

Errors are translated once, here, into ``StagingError`` with an ``error_id`` and a
message naming the object (``s3://bucket/key``). A key that would land outside its
destination folder is refused before anything is written (``s3uri.py``: URIs and
keys as paths left this module by concept).

It must not know about tasks, data nodes or the Data Pipeline API (``staging.py`` does),
and it does not log on its own except through the logger it is given.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.subscribers import BaseSubscriber

from runner.aws import s3errors
from runner.aws.retries import RetryPolicy, call_with_retries
from runner.aws.s3uri import parse_s3_uri, relative_key_path
from runner.aws.session import new_session
from runner.errors import StagingError, TransientStagingError

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

_T = TypeVar("_T")

#: At most this long to connect; the read timeout is the caller's (``read_timeout_s``).
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0
#: Retries of transient errors: a few over about a minute, cut short by ``stop``.
DEFAULT_POLICY = RetryPolicy(
    attempts=5, budget_s=60.0, wait_initial_s=0.5, wait_max_s=10
)
#: Waited on when a caller gives no stop event: never set.
_NEVER = threading.Event()


class S3:
    """Managed S3 transfers on one lazily created client.

    Thread-safe: the client is built once under a lock, and boto3 clients may be
    shared between threads. Every method blocks until its transfer is done, retrying
    transient errors (each retry logs ``s3_retry_scheduled``) until ``policy`` gives
    up or the ``stop`` event passed to it is set; it raises ``StagingError`` on
    failure (``TransientStagingError`` when the last error was transient).
    """

    def __init__(
        self,
        *,
        region: str | None,
        log: FilteringBoundLogger,
        read_timeout_s: float = READ_TIMEOUT_S,
        policy: RetryPolicy = DEFAULT_POLICY,
        transfer_config: TransferConfig | None = None,
    ) -> None:
        self.log = log
        self._region = region
        self._policy = policy
        # one try per transfer: the retry loop is ours (stoppable), not s3transfer's
        self._config = transfer_config or TransferConfig(num_download_attempts=1)
        self._unthreaded = TransferConfig(num_download_attempts=1, use_threads=False)
        self._botocore_config = Config(
            connect_timeout=min(CONNECT_TIMEOUT_S, read_timeout_s),
            read_timeout=read_timeout_s,
            retries={"total_max_attempts": 1, "mode": "standard"},
        )
        self._lock = threading.Lock()
        self._client: Any = None  # a botocore client: untyped (no stubs installed)

    @property
    def client(self) -> Any:
        """The S3 client, created on first use (boto3 sessions are not thread-safe,
        so the session is made under the lock too)."""
        with self._lock:
            if self._client is None:
                session = new_session(self._region)
                self._client = session.client("s3", config=self._botocore_config)
            return self._client

    def download_file(
        self, uri: str, dest: Path, *, stop: threading.Event | None = None
    ) -> int:
        """Download one object to ``dest`` (parent folders are created); its size."""
        bucket, key = parse_s3_uri(uri)
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._call(
            uri,
            lambda: self.client.download_file(
                bucket, key, str(dest), Config=self._config
            ),
            stop,
            op="download",
        )
        return dest.stat().st_size

    def download_prefix(
        self, uri: str, dest_dir: Path, *, stop: threading.Event | None = None
    ) -> list[Path]:
        """Download every object under the folder ``uri`` into ``dest_dir``, keys made
        relative to it. Every key is checked before anything is written."""
        bucket, prefix = parse_s3_uri(uri)
        prefix = _as_folder(prefix)
        plan: list[tuple[str, Path, _KnownSize]] = []
        for key, known in self._list_keys(bucket, prefix, uri, stop):
            relative = relative_key_path(bucket, key, prefix)
            if relative is not None:
                plan.append((key, dest_dir.joinpath(relative), known))
        dest_dir.mkdir(parents=True, exist_ok=True)
        for _, path, _ in plan:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._call(uri, lambda: self._download_many(bucket, plan), stop, "download")
        return [path for _, path, _ in plan]

    def upload_file(
        self,
        src: Path,
        uri: str,
        *,
        sse: bool = True,
        stop: threading.Event | None = None,
        policy: RetryPolicy | None = None,
        threads: bool = True,
    ) -> None:
        """Upload one file; server-side encrypted (AES256) unless ``sse`` is false.
        ``policy`` replaces this object's retry policy for the call. ``threads``
        false: the whole upload runs on the calling thread, with no pool of
        s3transfer's (its threads are joined at the interpreter's exit, so an
        abandoned upload on them would hold the runner's exit)."""
        bucket, key = parse_s3_uri(uri)
        config = self._config if threads else self._unthreaded
        self._call(
            uri,
            lambda: self.client.upload_file(
                str(src), bucket, key, ExtraArgs=_extra(sse), Config=config
            ),
            stop,
            op="upload",
            policy=policy,
        )

    def upload_dir(
        self,
        src_dir: Path,
        uri_prefix: str,
        *,
        sse: bool = True,
        stop: threading.Event | None = None,
    ) -> list[str]:
        """Upload every file under ``src_dir`` (recursively, layout kept) below the
        folder ``uri_prefix``; the URIs written."""
        bucket, prefix = parse_s3_uri(uri_prefix)
        prefix = _as_folder(prefix)
        plan = [
            (prefix + path.relative_to(src_dir).as_posix(), path)
            for path in sorted(src_dir.rglob("*"))
            if path.is_file()
        ]
        self._call(
            uri_prefix,
            lambda: self._upload_many(bucket, plan, _extra(sse)),
            stop,
            "upload",
        )
        return [f"s3://{bucket}/{key}" for key, _ in plan]

    def exists(self, uri: str, *, stop: threading.Event | None = None) -> bool:
        """Whether the key exists or, for a URI ending in ``/``, the prefix has a key.
        A missing bucket or a refused access raises ``StagingError``."""
        bucket, key = parse_s3_uri(uri)
        if key == "" or key.endswith("/"):
            return self.prefix_not_empty(uri, stop=stop)
        return self._call(uri, lambda: self._head(uri, bucket, key), stop)

    def prefix_not_empty(
        self, uri: str, *, stop: threading.Event | None = None
    ) -> bool:
        """Whether at least one object's key starts with the URI's key."""
        bucket, prefix = parse_s3_uri(uri)
        answer = self._call(
            uri,
            lambda: self.client.list_objects_v2(
                Bucket=bucket, Prefix=prefix, MaxKeys=1
            ),
            stop,
        )
        return int(answer.get("KeyCount", 0)) > 0

    def _head(self, uri: str, bucket: str, key: str) -> bool:
        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            code = s3errors.code_of(exc)
            if code in s3errors.NOT_FOUND and not self._no_bucket(bucket):
                return False
            raise
        return True

    def _list_keys(
        self, bucket: str, prefix: str, uri: str, stop: threading.Event | None
    ) -> Iterator[tuple[str, _KnownSize]]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call(
            uri, lambda: list(paginator.paginate(Bucket=bucket, Prefix=prefix)), stop
        )
        for page in pages:
            for item in page.get("Contents", []):
                known = _KnownSize(int(item.get("Size", 0)), item.get("ETag"))
                yield str(item["Key"]), known

    def _download_many(
        self, bucket: str, plan: list[tuple[str, Path, _KnownSize]]
    ) -> None:
        """Many downloads on one manager, many files in flight; the listed sizes
        spare a HeadObject per file (as the AWS CLI does). Leaving the ``with`` on
        an error cancels what is still queued and waits for what runs."""
        with create_transfer_manager(self.client, self._config) as manager:
            futures = [
                manager.download(bucket, key, str(path), subscribers=[known])
                for key, path, known in plan
            ]
            for future in futures:
                future.result()

    def _upload_many(
        self, bucket: str, plan: list[tuple[str, Path]], extra: dict[str, str]
    ) -> None:
        """Many uploads on one manager, like ``_download_many``."""
        with create_transfer_manager(self.client, self._config) as manager:
            futures = [
                manager.upload(str(path), bucket, key, extra_args=extra)
                for key, path in plan
            ]
            for future in futures:
                future.result()

    def _call(
        self,
        uri: str,
        fn: Callable[[], _T],
        stop: threading.Event | None,
        op: str | None = None,
        policy: RetryPolicy | None = None,
    ) -> _T:
        """Run ``fn``, retrying transient errors until the policy gives up or
        ``stop`` is set; a transfer (``op``) logs one ``s3_transfer`` line."""
        started = time.monotonic()

        def on_retry(attempt: int, wait_s: float, error: BaseException) -> None:
            self.log.warning(
                "s3_retry_scheduled",
                uri=uri,
                attempt=attempt,
                wait_s=round(wait_s, 3),
                error=str(error),
            )

        result = call_with_retries(
            lambda: self._try(uri, fn),
            policy or self._policy,
            retry_on=TransientStagingError,
            interrupt=(stop or _NEVER,),
            on_retry=on_retry,
        )
        if op is not None:
            duration_s = round(time.monotonic() - started, 3)
            self.log.info("s3_transfer", op=op, uri=uri, duration_s=duration_s)
        return result

    def _try(self, uri: str, fn: Callable[[], _T]) -> _T:
        """One try; whatever S3 or the disk raises is translated, once."""
        try:
            return fn()
        except StagingError:
            raise
        except s3errors.TRANSFER_ERRORS as exc:
            raise self._translate(uri, exc) from exc

    def _translate(self, uri: str, exc: BaseException) -> StagingError:
        bucket, _ = parse_s3_uri(uri)
        return s3errors.translate(uri, bucket, exc, lambda: self._no_bucket(bucket))

    def _no_bucket(self, bucket: str) -> bool:
        """A HEAD answers a bare 404 for a missing key and a missing bucket alike;
        ask the bucket to tell them apart (only on the error path)."""
        try:
            self.client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            return s3errors.code_of(exc) in s3errors.NO_BUCKET
        except BotoCoreError:
            return False
        return False


class _KnownSize(BaseSubscriber):  # type: ignore[misc]  # s3transfer has no stubs
    """Tells s3transfer an object's size and ETag from the listing, so it skips
    HeadObject (the ETag also pins the version being read, through IfMatch)."""

    def __init__(self, size: int, etag: str | None) -> None:
        self.size, self.etag = size, etag

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        future.meta.provide_transfer_size(self.size)
        # s3transfer 0.11+ also HEADs for the ETag (it pins reads with IfMatch).
        if self.etag and hasattr(future.meta, "provide_object_etag"):
            future.meta.provide_object_etag(self.etag)


def _as_folder(prefix: str) -> str:
    return prefix if prefix == "" or prefix.endswith("/") else prefix + "/"


def _extra(sse: bool) -> dict[str, str]:
    return {"ServerSideEncryption": "AES256"} if sse else {}
