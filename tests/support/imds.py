"""A loopback stand-in for the EC2 instance metadata service (IMDSv2).

``imds`` starts it on an OS-chosen port and points ``AWS_EC2_METADATA_SERVICE_ENDPOINT``
at it (and unsets ``AWS_EC2_METADATA_DISABLED``), so nothing ever reaches
169.254.169.254. It requires the session token on every GET, as IMDSv2 does, and
serves the identity document and signature, and the spot and Auto Scaling notices
that a test sets.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

DOCUMENT = json.dumps(
    {"instanceId": "i-0123456789abcdef0", "availabilityZone": "us-east-1a",
     "region": "us-east-1", "accountId": "123456789012"}
)  # fmt: skip
SIGNATURE = "c2lnbmVkIGJ5IHRoZSBzdGFuZC1pbg=="


class StandIn:
    """What the stand-in serves, and what it was asked."""

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex
        self.spot_action: str | None = None
        self.lifecycle = "InService"
        self.requests: list[tuple[str, str]] = []
        self.endpoint = ""

    def answer(self, method: str, path: str, token: str | None) -> tuple[int, str]:
        self.requests.append((method, path))
        if method == "PUT" and path == "/latest/api/token":
            return 200, self.token
        if token != self.token:
            return 401, ""
        pages = {
            "/latest/dynamic/instance-identity/document": DOCUMENT,
            "/latest/dynamic/instance-identity/signature": SIGNATURE,
            "/latest/meta-data/spot/instance-action": self.spot_action,
            "/latest/meta-data/autoscaling/target-lifecycle-state": self.lifecycle,
        }
        page = pages.get(path)
        return (404, "") if page is None else (200, page)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self) -> None:
        token = self.headers.get("X-aws-ec2-metadata-token")
        status, body = self.server.stand_in.answer(self.command, self.path, token)
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = _answer  # noqa: N815 - the stdlib's names

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stand_in: StandIn


@pytest.fixture
def imds(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIn]:
    stand_in = StandIn()
    server = _Server(("127.0.0.1", 0), _Handler)
    server.stand_in = stand_in
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stand_in.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", stand_in.endpoint)
    yield stand_in
    server.shutdown()
    server.server_close()
