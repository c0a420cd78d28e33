"""Waiting on a condition with a deadline: the one way a test waits (never a bare
sleep), so that a slow machine makes a test slower, never wrong."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

#: How long a test waits for a runner or a service to get somewhere before it calls
#: it a hang: a guard, never a measure of speed. A loaded machine (four workers on
#: two cores, with another process busy) can take tens of seconds to start a runner
#: and lease it a task; a test that holds cannot pass sooner for a smaller guard,
#: and one that hangs fails a minute later. A bound the product states (a stop
#: within ``kill_grace`` + 2 s) is asserted from the runner's own log timestamps,
#: from the event the bound is about, not with this.
HANG_GUARD_S = 90.0


def wait_for(
    predicate: Callable[[], Any], timeout: float = HANG_GUARD_S, what: str = "condition"
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
