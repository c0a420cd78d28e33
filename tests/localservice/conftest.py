"""Fixtures for the local service tests: a service per test and boto3 clients.

The service listens on 127.0.0.1 with an OS-chosen port and a temp state file,
time scaled by 0.01 (so a 2-minute ack window lasts 1.2 s) and a short poll hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from runner.localservice import LocalService
from tests.support.localservice import (
    TIME_SCALE,
    make_client,
)


@pytest.fixture
def service() -> Iterator[LocalService]:
    with LocalService(time_scale=TIME_SCALE, poll_hold_s=0.3) as svc:
        yield svc


@pytest.fixture
def dp(service: LocalService) -> Any:
    return make_client(service.endpoint_url)
