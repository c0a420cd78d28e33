"""``OutageLog``: retry warnings at a bounded cadence, on a clock the test turns."""

from __future__ import annotations

from structlog.testing import capture_logs

from runner import logs
from runner.aws.outage import OutageLog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_warning_a_minute_per_operation_with_the_count_between() -> None:
    clock = Clock()
    outages = OutageLog(logs.get_logger("test"), every_s=60.0, clock=clock)
    with capture_logs() as logged:
        for _ in range(30):  # a retry every 5 s for 150 s
            outages.retrying("PollForTask", 1, 5.0, "ConnectionError")
            outages.retrying("ReportTaskRunnerHeartbeat", 1, 5.0, "ConnectionError")
            clock.now += 5.0
        outages.answered("PollForTask")
    warned = [e for e in logged if e["log_level"] == "warning"]
    polls = [e for e in warned if e["operation"] == "PollForTask"]
    assert [e["failing_for_s"] for e in polls] == [0.0, 60.0, 120.0]
    assert [e.get("retries_since_last_warning") for e in polls] == [None, 11, 11]
    assert len(warned) == 6  # the heartbeat's outage is its own
    (again,) = [e for e in logged if e["event"] == "service_answers_again"]
    assert (again["operation"], again["retries"], again["failed_for_s"]) == (
        "PollForTask",
        30,
        150.0,
    )
    with capture_logs() as later:
        outages.answered("PollForTask")  # no outage open: nothing to say
        outages.retrying("PollForTask", 1, 1.0, "ThrottlingException")
    assert [e["log_level"] for e in later] == ["warning"]  # a new outage warns at once
