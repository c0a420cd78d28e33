"""EC2: ``instanceIdentity`` with PollForTask, and the spot and Auto Scaling watch,
against the loopback metadata stand-in (``tests/support/imds.py``); nothing here reaches
169.254.169.254."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from runner.localservice import LocalService
from tests.support.imds import DOCUMENT, SIGNATURE, StandIn
from tests.support.runners import RunnerProcess
from tests.support.waiting import wait_for

Spawn = Callable[..., RunnerProcess]


def test_poll_for_task_carries_the_instance_identity(
    service: LocalService, spawn_runner: Spawn, imds: StandIn
) -> None:
    runner = spawn_runner()
    started = runner.wait_event("worker_started")
    assert started["instance_id"] == "i-0123456789abcdef0"
    wait_for(lambda: service.calls("PollForTask"), 15, "a poll")
    for call in service.calls("PollForTask"):
        assert call.request["instanceIdentity"] == {
            "document": DOCUMENT,
            "signature": SIGNATURE,
        }
    assert runner.events("instance_identity_skipped") == []


def test_disabled_metadata_is_skipped_with_one_warning(
    service: LocalService, spawn_runner: Spawn
) -> None:
    runner = spawn_runner()  # conftest: AWS_EC2_METADATA_DISABLED=true
    runner.wait_event("worker_started")
    wait_for(lambda: len(service.calls("PollForTask")) >= 2, 15, "two polls")
    assert all(
        "instanceIdentity" not in c.request for c in service.calls("PollForTask")
    )
    (skipped,) = runner.events("instance_identity_skipped")
    assert skipped["level"] == "warning"
    assert skipped["reason"] == "AWS_EC2_METADATA_DISABLED is set"


def test_unreachable_metadata_costs_a_second_at_most(
    service: LocalService, spawn_runner: Spawn, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()  # accepts, never answers: the probe's 1 s timeout decides
        monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
        monkeypatch.setenv(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            f"http://127.0.0.1:{sock.getsockname()[1]}",
        )
        began = time.monotonic()
        runner = spawn_runner()
        runner.wait_event("worker_started")
        assert time.monotonic() - began < 15
        (skipped,) = runner.events("instance_identity_skipped")
        assert "did not answer" in skipped["reason"]
        wait_for(lambda: service.calls("PollForTask"), 15, "a poll")
        assert "instanceIdentity" not in service.calls("PollForTask")[0].request


@pytest.mark.parametrize(
    ("notice", "says"),
    [
        ("spot", "spot interruption"),
        ("lifecycle", "auto scaling: target lifecycle state Terminated"),
    ],
)
def test_an_end_notice_drains_the_runner(
    spawn_runner: Spawn, imds: StandIn, notice: str, says: str
) -> None:
    runner = spawn_runner()
    runner.wait_event("worker_started")
    wait_for(
        lambda: ("GET", "/latest/meta-data/spot/instance-action") in imds.requests,
        15,
        "the watch's first question",
    )
    if notice == "spot":
        imds.spot_action = '{"action": "terminate", "time": "2026-12-01T12:00:00Z"}'
    else:
        imds.lifecycle = "Terminated"
    ending = runner.wait_event("instance_ending", timeout=15)
    assert ending["notice"].startswith(says)
    assert runner.wait_event("worker_draining")["reason"] == "instance-ending"
    assert runner.wait_exit() == 0
