"""``Watch``: what a look at the instances and attempts becomes, whatever order the
service's answers were read in."""

from __future__ import annotations

import pytest

from runner.localview import AttemptRow, Definitions, InstanceRow, Watch

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
    watch = Watch(0.01, Definitions({"Step": "2 minutes"}, {}))
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
    watch = Watch(0.01, Definitions({}, {}))
    events = watch.look([instance("FAILED", "3", 0)], [failed("3")])
    assert [e.kind for e in events] == ["attempt", "status"]
    assert events[1].line(30).split() == [ID, "FAILED", "attempt", "3"]


def test_without_a_retry_delay_the_service_default_is_used() -> None:
    watch = Watch(0.01, Definitions({}, {}))
    events = watch.look([instance("WAITING_FOR_RUNNER", "1", 1)], [failed("1")])
    assert events[1].line().endswith("retry 1 of 2 in 6.0 s")  # 10 minutes x0.01


def look_after_failures(max_retries: int) -> list[str]:
    """The lines of a component with ``max_retries`` whose every attempt fails,
    each look read as the service leaves it: the instance waits to run again
    (its tries left already taken down) until the last failure ends it."""
    watch = Watch(0.01, Definitions({"Step": "2 minutes"}, {"Step": str(max_retries)}))
    lines: list[str] = []
    for number in range(1, max_retries + 2):
        left = max_retries - number + 1
        status = (
            "FAILED" if left < 0 or number == max_retries + 1 else "WAITING_FOR_RUNNER"
        )
        row = instance(status, str(number), max(left - 1, 0))
        lines += [e.line() for e in watch.look([row], [failed(str(number))])]
    return lines


@pytest.mark.parametrize("max_retries", [1, 2, 3])
def test_every_retry_is_announced_the_last_included(max_retries: int) -> None:
    lines = look_after_failures(max_retries)
    retries = [line for line in lines if " retry " in line]
    assert retries == [
        f"{ID}  retry {n} of {max_retries} in 1.2 s" for n in range(1, max_retries + 1)
    ]
    assert lines[-1].split() == [ID, "FAILED", "attempt", str(max_retries + 1)]


def test_lines_come_in_the_order_things_happened() -> None:
    """@B depends on @A; B's id sorts first. A finished, then B became ready
    and started, in the same look: A's end is said before B's start."""
    watch = Watch(0.01, Definitions({}, {}))
    a = "@A_2026-12-01T00:00:00"
    b = "@B_2026-12-01T00:00:00"
    watch.look(
        [
            InstanceRow(a, "RUNNING", "1", "", start="2026-12-01T10:00:00"),
            InstanceRow(b, "WAITING_ON_DEPENDENCIES", "0", ""),
        ],
        [],
    )
    done = AttemptRow(
        f"{a}_Attempt=1",
        a,
        "1",
        "FINISHED",
        start="2026-12-01T10:00:00",
        end="2026-12-01T10:00:03",
    )
    events = watch.look(
        [
            InstanceRow(a, "FINISHED", "1", "", end="2026-12-01T10:00:03"),
            InstanceRow(b, "RUNNING", "1", "", start="2026-12-01T10:00:03"),
        ],
        [done],
    )
    assert [(e.instance_id, e.kind, e.status) for e in events] == [
        (a, "attempt", "FINISHED"),
        (a, "status", "FINISHED"),
        (b, "status", "RUNNING"),
    ]
    assert events[0].line().endswith("attempt 1 FINISHED in 3 s")


def test_a_failure_says_its_reason_first_without_the_work_dir() -> None:
    work = "/tmp/dp-runner-local-x1/attempts/df-1/S/@S_1/@S_1_Attempt=1/work"
    watch = Watch(0.01, Definitions({}, {}, prefixes=("/tmp/dp-runner-local-x1",)))
    attempt = AttemptRow(
        f"{ID}_Attempt=1",
        ID,
        "1",
        "FAILED",
        "ExitCode:127",
        f"{work}/command.sh: line 1: sqoop: command not found",
        f"+ sqoop import\n\n{work}/command.sh: line 1: sqoop: command not found\n",
    )
    (event, _) = watch.look([instance("FAILED", "1", 0)], [attempt])
    assert event.line() == (
        f"{ID}  attempt 1 FAILED: ExitCode:127: command.sh: line 1: sqoop: "
        "command not found\n    | command.sh: line 1: sqoop: command not found"
    )


def test_a_finished_attempt_shows_its_output_tail() -> None:
    shown: list[str] = []

    def output_of(attempt: AttemptRow) -> list[str]:
        shown.append(attempt.attempt_id)
        return ["hello, Data Pipeline"]

    watch = Watch(0.01, Definitions({}, {}), output_of)
    done = AttemptRow(f"{ID}_Attempt=1", ID, "1", "FINISHED")
    (event, _) = watch.look([instance("FINISHED", "1", 2)], [done])
    assert event.line() == f"{ID}  attempt 1 FINISHED\n    > hello, Data Pipeline"
    assert event.fields()["stdout_tail"] == ["hello, Data Pipeline"]
    assert shown == [done.attempt_id]
