"""S3's errors, translated into ``StagingError`` once, at the edge.

Owns: which S3 answers are transient (throttling, 5xx, a broken connection, a
timeout: worth another try), which name a missing key or bucket or a refused access,
and ``translate``, which applies them to whatever botocore, boto3's wrappers,
s3transfer or the disk raised during a transfer.

Must not: call S3 (``s3.py`` does, and tells ``translate`` whether a bucket exists),
retry, or log.

Why apart from ``translate.py``: that module's rules are the Data Pipeline API's;
these are S3's, and ``s3.py`` stays about the transfers.
"""

from __future__ import annotations

from collections.abc import Callable

from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.exceptions import (
    RetriesExceededError,
    S3DownloadFailedError,
    S3UploadFailedError,
)

from runner.errors import StagingError, TransientStagingError

#: Error codes S3 answers for a passing condition (worth another try).
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "503",
        "500",
    }
)

NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
#: What botocore, boto3's wrappers (``S3UploadFailedError`` keeps the ``ClientError``
#: as its context), s3transfer and the disk raise during a transfer.
TRANSFER_ERRORS = (
    ClientError,
    BotoCoreError,
    Boto3Error,
    RetriesExceededError,
    S3DownloadFailedError,
    S3UploadFailedError,
    OSError,
)
NO_BUCKET = NOT_FOUND | {"NoSuchBucket"}
ACCESS_DENIED = frozenset({"403", "AccessDenied", "AllAccessDisabled", "Forbidden"})


def client_error(exc: BaseException) -> tuple[str, str] | None:
    """The (code, message) of the ``ClientError`` in ``exc``'s chain, if any.
    boto3 wraps upload errors in ``S3UploadFailedError`` raised inside ``except``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ClientError):
            error = current.response.get("Error", {})
            return str(error.get("Code", "")), str(error.get("Message", ""))
        current = current.__cause__ or current.__context__
    return None


def code_of(exc: BaseException) -> str:
    """The S3 error code in ``exc``'s chain, or ``""``."""
    return (client_error(exc) or ("", ""))[0]


def translate(  # noqa: PLR0911 - one return per class of S3 error
    uri: str, bucket: str, exc: BaseException, no_bucket: Callable[[], bool]
) -> StagingError:
    """``exc`` as a ``StagingError`` naming ``uri`` (in ``bucket``); ``no_bucket()``
    tells a missing bucket from a missing key (S3 answers a bare 404 for both)."""
    found = client_error(exc)
    if found is None:
        if isinstance(exc, OSError) and not isinstance(exc, BotoCoreError):
            return StagingError("StagingIOError", f"{uri}: local file error: {exc}")
        # a broken connection, a timeout, a streaming error: worth another try
        return TransientStagingError("S3Error", f"{uri}: {exc}")
    code, message = found
    if code in TRANSIENT_CODES:
        return TransientStagingError("S3Error", f"{uri}: {code}: {message}")
    if code == "NoSuchBucket" or (code in NOT_FOUND and no_bucket()):
        return StagingError(
            "S3NoSuchBucket", f"{uri}: bucket {bucket!r} does not exist"
        )
    if code in NOT_FOUND:
        return StagingError("S3NoSuchKey", f"{uri}: no such key")
    if code in ACCESS_DENIED:
        return StagingError("S3AccessDenied", f"{uri}: access denied ({message})")
    return StagingError("S3Error", f"{uri}: {code}: {message or exc}")
