"""Translation of botocore and urllib3 errors into ``runner.errors``, in one place.

Owns: which AWS error codes are transient, which mean the task is gone, which mean
the credentials were refused, and ``translate`` that applies them; and
``refuse_cut_answer``, the check that an answer came whole.

Must not: call AWS, retry, or log (``client.py`` does those); import boto3.

Why: httpx's ``map_httpcore_exceptions``: foreign errors are translated once, at
the edge, so nothing above ``client.py`` ever catches a botocore type. Split from
``client.py`` so that module stays about the API's operations, and so the S3
transfer module (a later issue) classifies errors the same way.

A cut answer is a transport error, not a success. botocore's JSON parser reads a
body that is not JSON as ``{"message": body}``, and it asks urllib3 not to
enforce Content-Length, so a 200 answer cut mid-body (ended by the close, or
shorter than its Content-Length) parses as a success with no fields: a cut
DescribeObjects answer once failed a good task with MissingField.
``refuse_cut_answer`` runs on botocore's ``before-parse`` event and raises
``IncompleteAnswerError``, an ``HTTPClientError``, so it leaves the call like a
broken connection: transient, retried, and "in doubt" for SetTaskStatus.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import botocore.exceptions
import urllib3.exceptions

from runner.errors import (
    ConfigError,
    CredentialsRejectedError,
    RejectedRequestError,
    RunnerError,
    ServiceError,
    TaskNotFoundError,
    TransientServiceError,
)


def _codes(names: str) -> frozenset[str]:
    return frozenset(names.split())


THROTTLING_CODES = _codes(
    "ThrottlingException Throttling RequestLimitExceeded TooManyRequestsException"
)
TRANSIENT_CODES = THROTTLING_CODES | _codes(
    "InternalServiceError InternalServerError InternalFailure ServiceUnavailable"
    " ServiceUnavailableException RequestTimeout RequestTimeoutException"
)
GONE_CODES = _codes(
    "TaskNotFoundException PipelineNotFoundException PipelineDeletedException"
)
#: The service refused who we are: say "bad credentials", never "our bug".
CREDENTIAL_CODES = _codes(
    "ExpiredToken ExpiredTokenException UnrecognizedClientException"
    " InvalidClientTokenId InvalidSignatureException SignatureDoesNotMatch"
    " IncompleteSignature MissingAuthenticationTokenException AccessDenied"
    " AccessDeniedException RequestExpired"
)
TRANSPORT_ERRORS = (
    botocore.exceptions.HTTPClientError,  # ReadTimeout, ConnectionClosed, a cut answer
    botocore.exceptions.ConnectionError,  # EndpointConnection, ConnectTimeout, SSL
    urllib3.exceptions.HTTPError,  # ProtocolError and friends that slip through
)
NO_CREDENTIALS = (
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.PartialCredentialsError,
    botocore.exceptions.CredentialRetrievalError,
)
#: Everything ``translate`` understands; catch these around a botocore call.
FOREIGN_ERRORS = (
    botocore.exceptions.ClientError,
    botocore.exceptions.BotoCoreError,
    urllib3.exceptions.HTTPError,
)


class IncompleteAnswerError(botocore.exceptions.HTTPClientError):  # type: ignore[misc] # untyped base
    """An answer cut short in transit: fewer bytes than its Content-Length, or a
    2xx body that is neither empty nor a JSON object. Translated like any
    ``HTTPClientError``: a ``TransientServiceError`` whose code is this name."""

    fmt = "the answer was cut short: {detail}"


def refuse_cut_answer(response_dict: Mapping[str, Any], **_: Any) -> None:
    """A ``before-parse`` handler for a JSON-protocol client: raise
    ``IncompleteAnswerError`` unless the answer came whole.

    Any status: a body shorter than a Content-Length is cut. A 2xx body must be
    empty or a JSON object (so a cut before the first byte of an answer with no
    Content-Length passes: it cannot be told from an empty answer). An error
    answer that is not JSON (a proxy's HTML page) is left to botocore: its
    status decides.
    """
    body = response_dict.get("body")
    if not isinstance(body, bytes):  # a streamed body is read later, not here
        return
    promised = str(response_dict["headers"].get("content-length") or "")
    if promised.isdigit() and len(body) < int(promised):
        raise IncompleteAnswerError(detail=f"{len(body)} of {promised} bytes")
    if response_dict["status_code"] >= 300 or not body.strip():
        return
    try:
        answer = json.loads(body)
    except ValueError:  # UnicodeDecodeError too: a cut inside a character
        answer = None
    if not isinstance(answer, dict):
        raise IncompleteAnswerError(detail=f"{len(body)} bytes, not a JSON object")


def translate(operation: str, exc: BaseException) -> RunnerError:
    """Map a botocore/urllib3 error to our tree; the caller raises it ``from exc``.

    Missing credentials become ``ConfigError``; credentials the service refuses
    become ``CredentialsRejectedError``; anything unknown is a rejected request.
    """
    if isinstance(exc, botocore.exceptions.ClientError):
        return _translate_answer(operation, exc.response)
    if isinstance(exc, NO_CREDENTIALS):
        return ConfigError(
            f"no AWS credentials found: {exc}; configure boto3's chain "
            "(AWS_PROFILE, environment variables, an instance or container role)"
        )
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return ConfigError("region: no AWS region found; set --region or AWS_REGION")
    if isinstance(exc, TRANSPORT_ERRORS):
        return TransientServiceError(operation, type(exc).__name__, str(exc))
    return RejectedRequestError(operation, type(exc).__name__, str(exc))


def _translate_answer(operation: str, response: Mapping[str, Any]) -> ServiceError:
    error = response.get("Error", {})
    code = str(error.get("Code") or "Unknown")
    message = str(error.get("Message") or "")
    http_status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in GONE_CODES:
        return TaskNotFoundError(operation, code, message)
    if code in TRANSIENT_CODES or http_status >= 500:
        return TransientServiceError(operation, code, message)
    if code in CREDENTIAL_CODES:
        return CredentialsRejectedError(operation, code, message)
    return RejectedRequestError(operation, code, message)
