"""Who the runner's credentials are, and what the endpoint says the time is:
what ``dp-runner doctor`` asks of AWS besides the Data Pipeline probes.

Owns: the STS GetCallerIdentity call (an STS client made here, only for the
doctor: the daemon never loads STS's model), and one plain HTTP GET of an endpoint
(through the proxy boto3 would use) for its reachability and its ``Date`` header.

Must not: retry (a diagnosis reports what it met), or be imported by the daemon.

Why a plain GET for the clock: every AWS endpoint answers one (often 404) with a
``Date`` header, and it needs no permission; SigV4 refuses a request whose clock is
more than 5 minutes off, which reads as a credentials problem unless the skew is
shown.
"""

from __future__ import annotations

import email.utils
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

import botocore.config

from runner.aws.session import new_session
from runner.aws.translate import FOREIGN_ERRORS, translate

CONNECT_TIMEOUT_S = 4.0
#: A diagnosis waits this long for one answer: the doctor as a whole ends within
#: 15 s even when STS and the endpoint both accept and never answer.
READ_TIMEOUT_S = 4.0


def caller_identity(region: str | None) -> str:
    """The ARN the credentials belong to. Raises ``ConfigError`` (no
    credentials) or a ``ServiceError`` (refused, unreachable)."""
    session = new_session(region)
    config = botocore.config.Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"total_max_attempts": 1, "mode": "standard"},
    )
    sts = session.client("sts", region_name=region or "us-east-1", config=config)
    try:
        return str(sts.get_caller_identity()["Arn"])
    except FOREIGN_ERRORS as exc:
        raise translate("GetCallerIdentity", exc) from exc


@dataclass(frozen=True, slots=True)
class Reach:
    """How a GET of an endpoint went: its HTTP status, the seconds it took, and
    the server's clock less ours (None without a ``Date`` header)."""

    status: int
    elapsed_s: float
    skew_s: float | None


def reach(url: str) -> Reach:
    """GET ``url`` once, through ``HTTPS_PROXY``/``HTTP_PROXY`` unless
    ``NO_PROXY`` says otherwise (as botocore). ``OSError`` when it cannot."""
    began = time.monotonic()
    sent = time.time()
    try:
        with urllib.request.urlopen(url, timeout=READ_TIMEOUT_S) as answer:  # noqa: S310 - an http(s) endpoint
            status, date = answer.status, answer.headers.get("Date")
    except urllib.error.HTTPError as exc:  # an answer all the same
        status, date = exc.code, exc.headers.get("Date")
    elapsed_s = time.monotonic() - began
    skew_s = None
    if date:
        server = email.utils.parsedate_to_datetime(date).timestamp()
        skew_s = server - (sent + elapsed_s / 2)
    return Reach(status, elapsed_s, skew_s)


def proxy_for(url: str) -> str | None:
    """The proxy a request to ``url`` goes through, or None (direct)."""
    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)
