"""``Watch``: what a look at the instances and attempts becomes, whatever order the
service's answers were read in."""

from __future__ import annotations

from runner.localwatch import AttemptRow, InstanceRow, Watch

ID = "@Step_2026-12-01T00:00:00"


def instance(status: str, attempts: str, tries_left: int) -> InstanceRow:
    return InstanceRow(ID, status, attempts, "", tries_left, component="Step")


def failed(number: str) -> AttemptRow:
    return AttemptRow(
        f"{ID}_Attempt={number}",
        ID,
        number,
        "FAILED",
        "ExitCode:1",
        "exited 1",
        "line 1\nline 2\n",
    )


def test_an_attempt_read_after_its_instance_waits_for_the_next_look() -> None:
    watch = Watch(0.01, {"Step": "2 minutes"})
    first = watch.look([instance("RUNNING", "1", 2)], [failed("1")])
    assert [e.kind for e in first] == ["status"]  # RUNNING; the failure not yet
    second = watch.look([instance("WAITING_FOR_RUNNER", "1", 1)], [failed("1")])
    assert [e.kind for e in second] == ["attempt", "retry"]
    assert second[0].line() == f"{ID}  attempt 1 FAILED: ExitCode:1: exited 1\n" + (
        "    | line 1\n    | line 2"
    )
    assert second[1].line() == f"{ID}  retry 1 of 2 in 1.2 s"
    # said once: a later look at the same ended attempt says nothing
    assert watch.look([instance("WAITING_FOR_RUNNER", "1", 1)], [failed("1")]) == []


def test_the_last_try_fails_the_instance_without_a_retry_line() -> None:
    watch = Watch(0.01, {})
    events = watch.look([instance("FAILED", "3", 0)], [failed("3")])
    assert [e.kind for e in events] == ["attempt", "status"]
    assert events[1].line(30).split() == [ID, "FAILED", "attempt", "3"]


def test_without_a_retry_delay_the_service_default_is_used() -> None:
    watch = Watch(0.01, {})
    events = watch.look([instance("WAITING_FOR_RUNNER", "1", 1)], [failed("1")])
    assert events[1].line().endswith("retry 1 of 2 in 6.0 s")  # 10 minutes x0.01
