"""The EC2 instance metadata service (IMDSv2), for what the runner needs of it.

Owns: the IMDSv2 session token (a PUT, kept for its 6 hours less a margin), the
instance identity document and its signature (``instanceIdentity``, which
PollForTask sends so that the service knows the runner's instance), and the two
notices of a coming end: a spot interruption (``spot/instance-action``: 404 while
there is none) and an Auto Scaling termination
(``autoscaling/target-lifecycle-state``: ``Terminated``).

Must not: retry, wait long, go through a proxy (the metadata service is link-local
and a proxy would answer for its own host), or ever be reached when
``AWS_EC2_METADATA_DISABLED`` is true. Tests point
``AWS_EC2_METADATA_SERVICE_ENDPOINT`` at a loopback stand-in; nothing in the test
suite reaches 169.254.169.254.

Why stdlib ``http.client`` rather than botocore's ``IMDSFetcher``: what we need of
the latter is private (``_get_request``), and the protocol is three requests. The
endpoint follows botocore's settings: ``AWS_EC2_METADATA_SERVICE_ENDPOINT``, else
``AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6``, else the IPv4 address.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

IPV4_ENDPOINT = "http://169.254.169.254"
IPV6_ENDPOINT = "http://[fd00:ec2::254]"
TOKEN_TTL_S = 21600
#: A token is renewed this long before it expires.
TOKEN_MARGIN_S = 300.0
#: The start-up probe: one try, this long (a host off EC2 must not wait).
PROBE_TIMEOUT_S = 1.0
DOCUMENT = "/latest/dynamic/instance-identity/document"
SIGNATURE = "/latest/dynamic/instance-identity/signature"
SPOT_ACTION = "/latest/meta-data/spot/instance-action"
LIFECYCLE = "/latest/meta-data/autoscaling/target-lifecycle-state"


class MetadataError(Exception):
    """The metadata service could not be reached, or refused."""


@dataclass(frozen=True, slots=True)
class InstanceIdentity:
    """What PollForTask's ``instanceIdentity`` carries."""

    document: str
    signature: str

    def to_api(self) -> dict[str, str]:
        return {"document": self.document, "signature": self.signature}

    @property
    def instance_id(self) -> str | None:
        """The document's ``instanceId``, for the start-up line."""
        try:
            found = json.loads(self.document).get("instanceId")
        except (ValueError, AttributeError):
            return None
        return str(found) if found else None


def disabled(env: Mapping[str, str]) -> bool:
    """``AWS_EC2_METADATA_DISABLED`` is true (botocore's reading of it)."""
    return env.get("AWS_EC2_METADATA_DISABLED", "").strip().lower() == "true"


def endpoint(env: Mapping[str, str]) -> str:
    configured = env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "").strip()
    if configured:
        return configured.rstrip("/")
    mode = env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "").strip().lower()
    return IPV6_ENDPOINT if mode == "ipv6" else IPV4_ENDPOINT


class Metadata:
    """An IMDSv2 client. Thread-safe; every call is one try of ``timeout_s``."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.endpoint = endpoint(env)
        parts = urlsplit(self.endpoint)
        self._host = parts.hostname or ""
        self._port = parts.port or 80
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None

    def identity(self, timeout_s: float = PROBE_TIMEOUT_S) -> InstanceIdentity:
        """The identity document and its signature. ``MetadataError``."""
        document = self.get(DOCUMENT, timeout_s)
        signature = self.get(SIGNATURE, timeout_s)
        if document is None or signature is None:
            raise MetadataError("the instance identity document is missing")
        return InstanceIdentity(document, signature)

    def end_notice(self, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
        """Why this instance is about to go, or None: a spot interruption notice
        (its JSON), or Auto Scaling's ``Terminated``. ``MetadataError``."""
        action = self.get(SPOT_ACTION, timeout_s)
        if action is not None:
            return f"spot interruption: {action.strip()[:200]}"
        state = self.get(LIFECYCLE, timeout_s)
        if state is not None and state.strip() == "Terminated":
            return "auto scaling: target lifecycle state Terminated"
        return None

    def get(self, path: str, timeout_s: float) -> str | None:
        """GET ``path`` with the session token; None on a 404. ``MetadataError``."""
        token = self._session_token(timeout_s)
        status, body = self._request(
            "GET", path, {"X-aws-ec2-metadata-token": token}, timeout_s
        )
        if status == 404:
            return None
        if status == 401:  # the token expired early (a clock jump): once more
            self._token = None
            token = self._session_token(timeout_s)
            status, body = self._request(
                "GET", path, {"X-aws-ec2-metadata-token": token}, timeout_s
            )
        if status != 200:
            raise MetadataError(f"GET {path}: HTTP {status}")
        return body

    def _session_token(self, timeout_s: float) -> str:
        with self._lock:
            if self._token is not None and time.monotonic() < self._token[1]:
                return self._token[0]
        headers = {"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_S)}
        status, body = self._request("PUT", "/latest/api/token", headers, timeout_s)
        if status != 200 or not body:
            raise MetadataError(f"PUT /latest/api/token: HTTP {status}")
        with self._lock:
            self._token = (body, time.monotonic() + TOKEN_TTL_S - TOKEN_MARGIN_S)
        return body

    def _request(
        self, method: str, path: str, headers: dict[str, str], timeout_s: float
    ) -> tuple[int, str]:
        connection = http.client.HTTPConnection(
            self._host, self._port, timeout=timeout_s
        )
        try:
            connection.request(method, path, headers=headers)
            answer = connection.getresponse()
            body = answer.read(65536).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as exc:
            raise MetadataError(f"{self.endpoint}: {exc}") from exc
        finally:
            connection.close()
        return answer.status, body
