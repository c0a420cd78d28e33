"""Waiting on a condition with a deadline: the one way a test waits (never a bare
sleep), so that a slow machine makes a test slower, never wrong."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_for(
    predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
