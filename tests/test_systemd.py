"""sd_notify against a real datagram socket bound in tmp_path (and an abstract one)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner import systemd
from runner.aws.client import POLL_READ_TIMEOUT_S
from runner.aws.retries import RetryPolicies
from runner.config import Settings
from runner.errors import EX_CONFIG, EX_TEMPFAIL
from runner.liveness import SLACK_S
from runner.shutdown import STATUS_BUDGET_S
from tests.support.runners import REPO
from tests.support.units import unit_with_exec_start, verified_exposure


@pytest.fixture
def notify_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_helpers_send_the_states(notify_socket: socket.socket) -> None:
    assert systemd.ready()
    assert systemd.status("2/4 slots busy\nlast poll 3 s ago")
    assert systemd.watchdog()
    assert systemd.stopping()
    received = [notify_socket.recv(4096) for _ in range(4)]
    assert received == [
        b"READY=1",
        b"STATUS=2/4 slots busy last poll 3 s ago",
        b"WATCHDOG=1",
        b"STOPPING=1",
    ]


def test_abstract_namespace_address(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"dp-runner-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.notify("READY=1")
        assert sock.recv(64) == b"READY=1"


def test_unset_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.ready() is False


def test_a_gone_socket_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert systemd.watchdog() is False


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 15.0),
        ("30000000", "self", 15.0),
        ("30000000", "1", None),  # meant for another process
        ("0", None, None),
        ("nonsense", None, None),
        (None, None, None),
    ],
)
def test_watchdog_interval(
    monkeypatch: pytest.MonkeyPatch,
    usec: str | None,
    pid: str | None,
    expected: float | None,
) -> None:
    for key, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, str(os.getpid()) if value == "self" else value)
    assert systemd.watchdog_interval_s() == expected


def test_the_unit_waits_longer_than_the_runner_bounds_its_own_exit() -> None:
    """TimeoutStopSec is derived from drain_timeout + kill_grace + the status budget
    at their defaults, so systemd never SIGKILLs a runner that is still on time."""
    unit = (Path(__file__).parent.parent / "systemd" / "dp-runner.service").read_text()
    (line,) = [x for x in unit.splitlines() if x.startswith("TimeoutStopSec=")]
    timeout_s = float(line.partition("=")[2])
    defaults = Settings(worker_groups=("wg",))
    bound_s = defaults.drain_timeout + defaults.kill_grace + STATUS_BUDGET_S
    assert bound_s < timeout_s <= bound_s + 15


def test_writable_paths_are_listed_only_under_a_read_only_root() -> None:
    sandboxed = "\n".join(
        [
            "22 27 0:21 / / ro,relatime - ext4 /dev/vda ro",
            "23 27 0:22 / /proc rw,relatime - proc proc rw",
            "24 27 0:23 / /var/lib/dp-runner rw,relatime - ext4 /dev/vda rw",
            "25 27 0:24 / /tmp rw,nosuid - tmpfs tmpfs rw",
            "26 27 0:25 / /usr ro,relatime - ext4 /dev/vda ro",
        ]
    )
    assert systemd.writable_paths(sandboxed) == ["/tmp", "/var/lib/dp-runner"]
    assert (
        systemd.writable_paths("22 27 0:21 / / rw,relatime - ext4 /dev/vda rw") is None
    )
    assert systemd.writable_paths() is None  # this test process: a writable root


def test_the_unit_watchdog_outlasts_a_poll_and_its_longest_backoff() -> None:
    """A poller ticks before and after every try: at worst a read timeout plus a
    backoff apart. The unit's WatchdogSec leaves room for that and the slack."""
    unit = (Path(__file__).parent.parent / "systemd" / "dp-runner.service").read_text()
    (line,) = [x for x in unit.splitlines() if x.startswith("WatchdogSec=")]
    poller_bound_s = (
        POLL_READ_TIMEOUT_S + RetryPolicies.default().poll.wait_max_s + SLACK_S
    )
    assert poller_bound_s < float(line.partition("=")[2]) == 300


def unit_lines(unit: str) -> list[str]:
    return [x for x in unit.splitlines() if x and not x.startswith("#")]


def test_the_unit_delegates_its_cgroup_and_leaves_it_writable() -> None:
    """Delegate=yes gives the runner its cgroup (one per attempt below it);
    ProtectControlGroups=yes would mount it read-only, and the run-as drop-in
    changes neither."""
    unit = (REPO / "systemd" / "dp-runner.service").read_text()
    lines = unit_lines(unit)
    assert "Delegate=yes" in lines
    assert "ProtectControlGroups=no" in lines
    assert "ProtectControlGroups=yes" not in lines
    drop_in = unit_lines((REPO / "systemd" / "run-as.conf").read_text())
    assert not [x for x in drop_in if x.startswith(("Delegate=", "ProtectControl"))]


def test_the_delegating_unit_verifies_with_an_exposure_of_at_most_2(
    tmp_path: Path,
) -> None:
    assert verified_exposure(unit_with_exec_start(tmp_path)) <= 2.0


def test_with_the_run_as_drop_in_the_exposure_is_at_most_3(tmp_path: Path) -> None:
    base = unit_with_exec_start(tmp_path).read_text().split("[Install]")[0]
    merged = tmp_path / "merged" / "dp-runner.service"
    merged.parent.mkdir()
    merged.write_text(base + (REPO / "systemd" / "run-as.conf").read_text())
    assert verified_exposure(merged) <= 3.0


def test_the_unit_has_journald_take_each_lines_priority_prefix() -> None:
    """On the journal stream the runner starts each line with ``<N>``
    (``runner/logstream.py``); ``SyslogLevelPrefix=yes`` is what makes journald read
    it as the line's priority, so ``journalctl -p warning`` finds failed tasks."""
    lines = unit_lines((REPO / "systemd" / "dp-runner.service").read_text())
    assert "SyslogLevelPrefix=yes" in lines
    assert not [x for x in lines if x.startswith("StandardOutput=")]  # the journal


def test_the_unit_restarts_on_75_and_never_on_78() -> None:
    """A start the host failed for now (EX_TEMPFAIL) is retried by systemd; a
    configuration error (EX_CONFIG) is not."""
    unit = (Path(__file__).parent.parent / "systemd" / "dp-runner.service").read_text()
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line[:40]
    )
    assert settings["Restart"] == "on-failure"
    assert settings["RestartForceExitStatus"].split() == [str(EX_TEMPFAIL)]
    assert settings["RestartPreventExitStatus"].split() == [str(EX_CONFIG)]
