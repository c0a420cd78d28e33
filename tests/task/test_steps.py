"""task/steps.py on its own: ``StepRunner`` waiting on real steps under a real stop
flag and its clocks. The steps are an S3 transfer to an endpoint that accepts and
never finishes its answer (``SilentS3``, the ``silent_s3`` fixture of
``tests/support/silents3.py``), and real process trees under a ``Supervisor``; the
clocks are the attempt's timeout and a ``Progress`` lease that no report extends.

What each test shows is that a stop (or a clock that runs out) ends the wait
promptly, however long the step would have taken, with the right ``StopReason``.
The bounds are on what happens after the stop, never on how fast the machine is
before it.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from runner import logs
from runner.activities import Transfer
from runner.aws.client import Client, RetryPolicies
from runner.aws.retries import RetryPolicy
from runner.aws.s3 import S3
from runner.errors import ActivityError
from runner.supervisor import Supervisor
from runner.task.progress import Progress
from runner.task.steps import StepRunner, Stopped
from runner.task.stopflag import StopFlag
from runner.taskmodel import StopReason
from tests.support.runners import SCRIPTS
from tests.support.silents3 import SilentS3
from tests.support.trees import assert_all_gone, wait_tree
from tests.support.waiting import wait_for

#: A stop is acted on within this long (the step is abandoned, not awaited).
STOP_BOUND_S = 2.0
LOG = structlog.get_logger()
#: Retries that only a stop ends (never given up within a test).
PATIENT = RetryPolicy(
    attempts=1000, budget_s=600.0, wait_initial_s=0.01, wait_max_s=0.05
)


def progress(lease_timeout_s: float) -> Progress:
    """A lease that only its clock ends: made (so counting from now), never
    started, so no report extends it. Its client is never called."""
    client = Client(
        region="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        stop=threading.Event(),
        abort=threading.Event(),
        policies=RetryPolicies.fast(),
        log=logs.get_logger("test"),
    )
    return Progress(
        client=client,
        task_id="t",
        name="test-progress",
        interval_s=60.0,
        lease_timeout_s=lease_timeout_s,
        on_stop=lambda reason, detail: None,
        log=LOG,
    )


def step_runner(flag: StopFlag, lease_timeout_s: float = 600.0) -> StepRunner:
    return StepRunner(
        flag=flag,
        progress=progress(lease_timeout_s),
        name="test",
        kill_grace=0.2,
        wind_down_s=0.3,
        log=LOG,
    )


def hung_upload(tmp_path: Path, flag: StopFlag) -> Transfer:
    """An upload to the silent endpoint: it hangs until the flag stops its
    retries (the stop flag's event is what the S3 retries wait on)."""
    s3 = S3(region=None, log=LOG, read_timeout_s=0.5, policy=PATIENT)
    source = tmp_path / "StdOutput"
    source.write_text("out")
    return Transfer(
        "upload", lambda: s3.upload_file(source, "s3://b/out", stop=flag.event)
    )


def set_later(flag: StopFlag, when: threading.Event, reason: StopReason) -> list[float]:
    """Set ``flag`` from another thread once ``when`` is set; the time it did."""
    stamps: list[float] = []

    def run() -> None:
        when.wait(30)
        stamps.append(time.monotonic())
        flag.set(reason, "from the test")

    threading.Thread(target=run, daemon=True).start()
    return stamps


def test_a_step_gives_back_its_value_and_its_error() -> None:
    runner = step_runner(StopFlag())
    assert runner.step("value", lambda: 42) == 42

    def broken() -> None:
        raise ActivityError("Boom", "the step broke")

    with pytest.raises(ActivityError) as info:
        runner.step("error", broken)
    assert info.value.error_id == "Boom"


def test_a_hung_transfer_is_abandoned_at_once_when_the_flag_is_set(
    silent_s3: SilentS3, tmp_path: Path
) -> None:
    flag = StopFlag()
    runner = step_runner(flag)
    connected = threading.Event()
    threading.Thread(
        target=lambda: (
            connected.set()
            if wait_for(lambda: silent_s3.held, 30, "the upload's connection")
            else None
        ),
        daemon=True,
    ).start()
    stamps = set_later(flag, connected, StopReason.CANCELED)
    upload = hung_upload(tmp_path, flag)
    with pytest.raises(Stopped):
        runner.step(upload.name, upload.run)
    assert time.monotonic() - stamps[0] < STOP_BOUND_S
    assert flag.reason is StopReason.CANCELED


def test_a_step_is_not_started_once_the_flag_is_set() -> None:
    flag = StopFlag()
    flag.set(StopReason.DRAIN_EXPIRED)
    ran = threading.Event()
    with pytest.raises(Stopped):
        step_runner(flag).step("never", ran.set)
    assert not ran.is_set()


def test_the_attempt_timeout_stops_a_hung_transfer_as_timeout(
    silent_s3: SilentS3, tmp_path: Path
) -> None:
    flag = StopFlag()
    runner = step_runner(flag)
    runner.timeout_at = time.monotonic() + 0.2
    upload = hung_upload(tmp_path, flag)
    with pytest.raises(Stopped):
        runner.step(upload.name, upload.run)
    assert flag.reason is StopReason.TIMEOUT


def spawn_tree(tmp_path: Path) -> tuple[Supervisor, dict[str, int]]:
    pid_file = tmp_path / "tree.json"
    child = Supervisor.spawn(
        ["python3", str(SCRIPTS / "task_tree.py"), str(pid_file)],
        cwd=tmp_path,
        env=dict(os.environ),
        stdout=tmp_path / "out",
        stderr=tmp_path / "err",
        marker=f"test-steps-{os.getpid()}",
        log=LOG,
    )
    return child, wait_tree(pid_file)


def test_a_stop_kills_the_whole_tree_of_a_supervised_process(tmp_path: Path) -> None:
    flag = StopFlag()
    runner = step_runner(flag)
    child, pids = spawn_tree(tmp_path)
    up = threading.Event()
    up.set()
    stamps = set_later(flag, up, StopReason.CANCELED)
    outcome = runner.supervise(child)
    assert outcome.killed
    assert time.monotonic() - stamps[0] < STOP_BOUND_S + 0.2  # TERM, grace, KILL
    assert_all_gone(pids)


def test_a_lease_that_runs_out_stops_the_process_as_lease_expired(
    tmp_path: Path,
) -> None:
    flag = StopFlag()
    runner = step_runner(flag, lease_timeout_s=0.3)
    child, pids = spawn_tree(tmp_path)
    outcome = runner.supervise(child)
    assert outcome.killed
    assert flag.reason is StopReason.LEASE_EXPIRED
    assert "0.3s" in flag.detail
    assert_all_gone(pids)


def test_a_process_that_ends_by_itself_keeps_its_own_outcome(tmp_path: Path) -> None:
    flag = StopFlag()
    child = Supervisor.spawn(
        ["sh", "-c", "exit 3"],
        cwd=tmp_path,
        env=dict(os.environ),
        stdout=tmp_path / "out",
        stderr=tmp_path / "err",
        marker=f"test-steps-{os.getpid()}",
        log=LOG,
    )
    outcome = step_runner(flag).supervise(child)
    assert (outcome.returncode, outcome.killed, flag.reason) == (3, False, None)


def test_after_a_stop_wind_down_gives_a_hung_step_its_short_budget_then_skips(
    silent_s3: SilentS3, tmp_path: Path
) -> None:
    flag = StopFlag()
    runner = step_runner(flag)
    flag.set(StopReason.CANCELED)
    later = threading.Event()
    own = StopFlag()  # the upload's own retries: stopped once the test is done
    steps = [hung_upload(tmp_path, own), Transfer("after", later.set)]
    started = time.monotonic()
    try:
        with capture_logs() as logged:
            runner.wind_down(steps, budget_s=600.0)
    finally:
        own.set(StopReason.CANCELED)
    assert time.monotonic() - started < 0.3 + STOP_BOUND_S  # wind_down_s, not 600
    names = [(e["event"], e.get("step")) for e in logged]
    assert names[0] == ("task_stopping", "upload")  # the stop is said, once
    assert ("task_step_abandoned", "upload") in names
    assert ("task_step_skipped", "after") in names
    assert not later.is_set()


def test_wind_down_runs_every_step_and_logs_a_failed_one() -> None:
    runner = step_runner(StopFlag())
    ran: list[str] = []

    def broken() -> None:
        ran.append("broken")
        raise ActivityError("S3Error", "no bucket")

    steps = [Transfer("broken", broken), Transfer("next", lambda: ran.append("next"))]
    with capture_logs() as logged:
        runner.wind_down(steps, budget_s=30.0)
    assert ran == ["broken", "next"]
    (failed,) = [e for e in logged if e["event"] == "task_step_failed"]
    assert (failed["step"], failed["error_id"]) == ("broken", "S3Error")


def test_hurry_cuts_the_grace_of_a_tree_that_ignores_term(tmp_path: Path) -> None:
    flag = StopFlag()
    runner = StepRunner(
        flag=flag,
        progress=progress(600.0),
        name="test",
        kill_grace=600.0,  # only the hurry can end the grace
        wind_down_s=0.3,
        log=LOG,
    )
    child, pids = spawn_tree(tmp_path)
    up = threading.Event()
    up.set()
    set_later(flag, up, StopReason.DRAIN_EXPIRED)

    def hurry_once_stopped() -> None:
        wait_for(flag.is_set, 30, "the stop")
        flag.hurry("second signal")

    threading.Thread(target=hurry_once_stopped, daemon=True).start()
    started = time.monotonic()
    outcome = runner.supervise(child)
    assert outcome.killed
    assert time.monotonic() - started < 30.0  # not the 600 s grace
    assert_all_gone(pids)  # the tree ignores TERM: the KILL came early
