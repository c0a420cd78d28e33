"""The task's environment: what of the runner's own it inherits, and what not.

It owns the list of the runner's own variables (systemd's, socket activation's,
``DP_RUNNER_*``), which never reach a task (design.md §3), and hands the rest
through ``RunAs.environment`` under ``run_as``. Pure: it never reads
``os.environ`` itself (the caller passes it) and starts nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from runner.runas import RunAs

#: The runner's own variables, never handed to a task (design.md §3, peers.md §3).
_SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
_SOCKET_VARIABLES = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
_RUNNER_VARIABLES = frozenset(_SYSTEMD_VARIABLES + _SOCKET_VARIABLES)
_RUNNER_PREFIX = "DP_RUNNER_"


def task_environment(
    base: Mapping[str, str], extra: Mapping[str, str], *, run_as: RunAs | None = None
) -> dict[str, str]:
    """``base`` without the runner's own variables (systemd's and ``DP_RUNNER_*``),
    and under ``run_as`` without its AWS credentials and with the user's ``HOME``,
    ``USER`` and ``LOGNAME`` (``RunAs.environment``); updated with ``extra``. Pure."""
    env = {
        key: value
        for key, value in base.items()
        if key not in _RUNNER_VARIABLES and not key.startswith(_RUNNER_PREFIX)
    }
    if run_as is not None:
        env = run_as.environment(env)
    env.update(extra)
    return env
