"""The checks of ``run --local``'s and ``dp-runner local``'s own flags.

Owns: which ``run`` flags ``run --local`` has no use for, the bounds of
``dp-runner local``'s numbers (port, time scale, poll hold), the local flags'
defaults, the shape of ``exec --pipeline-id``, and how ``--parameter-values``
takes several values after one flag.

Must not: import click (the CLI turns these into its errors) or start anything.

Why here, in a module that imports almost nothing: the CLI builds its options from
these at import time, and a command that does not run the daemon (``--version``,
``doctor``, ``export``) must not import it to learn a default.

Why the checks: a flag that is silently ignored, or a port the OS refuses with a 35-line
traceback, costs a person more than one line naming the flag.
"""

from __future__ import annotations

import re
from typing import Any

from runner.errors import ConfigError

#: The worker group that the local service's ``runsOn`` objects are served on.
RUNS_ON_GROUP = "dp-runner-local"
#: The local service's clock: a hundredth, so a 2-minute retryDelay is about 1 s.
DEFAULT_TIME_SCALE = 0.01
VALUES_FLAG = "--parameter-values"
MAX_PORT = 65535
#: ``dp-runner local``'s bounds: a clock a thousand times slower is already a week
#: per ten-minute retry, and AWS holds an empty poll at most 90 s.
MAX_TIME_SCALE = 1000.0
MAX_POLL_HOLD_S = 90.0
#: ``exec --pipeline-id``: it names the attempts' folder (``attempts/<pipelineId>/``)
#: and the log path under ``pipelineLogUri``, so one safe path component.
PIPELINE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


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


def spread_run_values(args: list[str]) -> list[str]:
    """``--parameter-values a b --x`` as ``--parameter-values a --parameter-values b
    --x``: the AWS CLI takes several values after the one flag, a click option one.
    ``run`` has no positional argument, so every plain word after the flag's own
    value, up to the next option, is one more value."""
    out: list[str] = []
    state = ""  # "value": the flag's own value is next; "more": spread the words
    for arg in args:
        if state == "value":
            state = "more"
        elif state == "more" and not arg.startswith("-"):
            out.append(VALUES_FLAG)
        elif arg == VALUES_FLAG:
            state = "value"
        else:  # --parameter-values=myX=v carries its own value
            state = "more" if arg.startswith(f"{VALUES_FLAG}=") else ""
        out.append(arg)
    return out


def spread_exec_values(args: list[str]) -> list[str]:
    """``--parameter-values a=1 b=2`` as ``--parameter-values a=1
    --parameter-values b=2``, as the AWS CLI takes them. ``exec`` has a
    positional argument, so only words with ``=`` after the flag's own value are
    more values; the first word without one ends them (the definition)."""
    out: list[str] = []
    state = ""  # "value": the flag's own value is next; "more": spread the words
    for arg in args:
        if state == "value":
            state = "more"
        elif state == "more" and "=" in arg and not arg.startswith("-"):
            out.append(VALUES_FLAG)
        elif arg == VALUES_FLAG:
            state = "value"
        else:  # --parameter-values=a=1 carries its own value
            state = "more" if arg.startswith(f"{VALUES_FLAG}=") else ""
        out.append(arg)
    return out
