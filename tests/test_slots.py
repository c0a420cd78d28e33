"""Task slots go to the pollers first come, first served (``runner/slots.py``).

The runner's case: fewer free slots than worker groups. A semaphore lets the poller
that gives its slot back after an empty poll take it again at once, so the other
groups' pollers wait behind it for as long as its empty polls go on, and their
tasks are never polled.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from runner.localservice import LocalService
from runner.slots import Slots
from tests.support.pipelines import default_object, shell, submit
from tests.support.runners import RunnerProcess
from tests.support.waiting import HANG_GUARD_S, wait_for

Spawn = Callable[..., RunnerProcess]


def test_a_slot_given_back_goes_to_the_one_waiting_not_to_the_giver() -> None:
    slots = Slots(1)
    assert slots.take("a", 0)
    assert not slots.take("b", 0)  # none free: b waits in line
    slots.give_back()
    assert not slots.take("a", 0)  # the giver asks again at once: b came first
    assert slots.take("b", 0)  # b's place was kept past its wait that ran out
    slots.give_back()
    assert slots.take("a", 0)


def test_a_waiter_that_leaves_gives_back_what_was_handed_to_it() -> None:
    slots = Slots(1)
    assert slots.take("a", 0)
    assert not slots.take("b", 0)
    assert not slots.take("c", 0)
    slots.give_back()  # to b, who is not waiting on it any more
    slots.leave("b")  # b's poller ended: the slot goes on, to c
    assert slots.take("c", 0)
    slots.leave("a")  # a never waited: nothing owed
    slots.give_back()
    assert slots.take("a", 0)


def test_every_worker_group_is_polled_when_free_slots_are_fewer_than_groups(
    service: LocalService, dp: Any, spawn_runner: Spawn
) -> None:
    """Two slots, three groups: a task holds one slot, and the three pollers share
    the other, turn about (the service counts their polls)."""
    submit(dp, [default_object("wg-a"), shell("Hold", "exec sleep 600")])
    runner = spawn_runner(
        "--worker-group", "wg-b", "--worker-group", "wg-c", "--max-tasks", "2",
        worker_group="wg-a",
    )  # fmt: skip
    runner.wait_event("task_started")
    before = len(service.calls("PollForTask"))

    def polls() -> Counter[str]:
        later = service.calls("PollForTask")[before:]
        return Counter(c.request["workerGroup"] for c in later)

    wait_for(lambda: sum(polls().values()) >= 9, HANG_GUARD_S, "nine polls")
    counted = polls()
    assert min(counted[g] for g in ("wg-a", "wg-b", "wg-c")) >= 2, counted
