"""Every stop within its bound, in every phase (issue 22): a SIGTERM while the
ack keeps failing, and a SIGTERM during a start-up recovery that stalls on a
service that does not answer. The runner is a real process against the local
service; the bound asserted is far below the 30 s status budget's."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

from runner.localservice import LocalService
from tests.conftest import RunnerProcess, default_object, shell, submit, wait_for

Spawn = Callable[..., RunnerProcess]
#: What a stop may take here: drain 0, kill_grace 0.5 (conftest) and the time a
#: loaded machine takes to end a Python process.
BOUND_S = 5.0


def test_a_sigterm_while_the_ack_keeps_failing_abandons_it(
    service: LocalService, dp: Any, spawn_runner: Spawn
) -> None:
    service.faults.add("ReportTaskProgress", error="InternalServiceError", times=None)
    submit(dp, [default_object(), shell("Never", "echo ran")])
    runner = spawn_runner("--drain-timeout", "0")
    wait_for(lambda: len(service.calls("ReportTaskProgress")) >= 2, 20, "ack retries")
    stopped = time.monotonic()
    runner.signal(signal.SIGTERM)
    assert runner.wait_exit(30) == 0
    assert time.monotonic() - stopped < BOUND_S
    tries = len(service.calls("ReportTaskProgress"))
    service.faults.clear()
    assert runner.events("task_started") == []
    assert [c for c in service.calls("ReportTaskProgress") if c.error is None] == []
    assert len(service.calls("ReportTaskProgress")) == tries
    assert service.calls("SetTaskStatus") == []
