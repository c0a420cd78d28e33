"""The checks of ``run --local``'s and ``dp-runner local``'s own flags.

Owns: which ``run`` flags ``run --local`` has no use for, and the bounds of
``dp-runner local``'s numbers (port, time scale, poll hold).

Must not: import click (the CLI turns these into its errors) or start anything.

Why: a flag that is silently ignored, or a port the OS refuses with a 35-line
traceback, costs a person more than one line naming the flag.
"""

from __future__ import annotations

from typing import Any

from runner.errors import ConfigError

MAX_PORT = 65535
#: ``dp-runner local``'s bounds: a clock a thousand times slower is already a week
#: per ten-minute retry, and AWS holds an empty poll at most 90 s.
MAX_TIME_SCALE = 1000.0
MAX_POLL_HOLD_S = 90.0


#: ``run`` options that ``run --local`` has no use for: it serves the
#: definition's own worker groups, on its own embedded endpoint.
UNUSED_WITH_LOCAL = {
    "worker_groups": "--worker-group",
    "endpoint_url": "--endpoint-url",
}


def unused_flags(overrides: dict[str, Any]) -> list[str]:
    """The flags given that ``run --local`` would ignore."""
    return [flag for key, flag in UNUSED_WITH_LOCAL.items() if key in overrides]


def check_service_flags(port: int, time_scale: float, poll_hold: float) -> None:
    """``dp-runner local``'s numbers, each checked before anything starts;
    ``ConfigError`` (exit 78) naming the flag."""
    if not 0 <= port <= MAX_PORT:
        raise ConfigError(f"--port {port}: must be from 0 to {MAX_PORT}")
    if not 0 < time_scale <= MAX_TIME_SCALE:
        raise ConfigError(
            f"--time-scale {time_scale:g}: must be above 0 and at most "
            f"{MAX_TIME_SCALE:g}"
        )
    if not 0 <= poll_hold <= MAX_POLL_HOLD_S:
        raise ConfigError(
            f"--poll-hold {poll_hold:g}: must be from 0 to {MAX_POLL_HOLD_S:g} s"
        )
