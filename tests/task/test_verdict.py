"""``verdict.final_status``: every way an attempt ends, and the call it gets."""

from __future__ import annotations

import signal

import pytest

from runner.attempt import ProcessExit
from runner.errors import ActivityError, SpawnError, StagingError
from runner.task.verdict import final_status, signal_name
from runner.taskmodel import FinalStatus, StopReason, TaskStatus

OK = ProcessExit(returncode=0, signal=None, duration_s=0.1)
EXIT_3 = ProcessExit(returncode=3, signal=None, duration_s=0.1)
KILLED = ProcessExit(
    returncode=None, signal=signal.SIGKILL, duration_s=0.1, killed=True
)


@pytest.mark.parametrize(
    "reason", [StopReason.CANCELED, StopReason.LOST, StopReason.LEASE_EXPIRED]
)
def test_canceled_lost_or_lease_expired_gets_no_call(reason: StopReason) -> None:
    assert final_status(reason, KILLED, stderr_tail="tail") is None
    assert final_status(reason, None, error=StagingError("S3Error", "x")) is None


@pytest.mark.parametrize(
    ("reason", "error_id"),
    [
        (StopReason.TIMEOUT, "AttemptTimeout"),
        (StopReason.DRAIN_EXPIRED, "RunnerShutdown"),
        (StopReason.FAST_STOP, "RunnerShutdown"),
    ],
)
def test_stopped_by_the_runner_is_failed_with_its_cause(
    reason: StopReason, error_id: str
) -> None:
    status = final_status(reason, KILLED, stderr_tail="last words")
    assert status is not None
    assert (status.status, status.error_id) == (TaskStatus.FAILED, error_id)
    assert status.error_stack_trace == "last words"
    # a stop during a transfer (no outcome at all) is reported the same way
    during_a_step = final_status(reason, None)
    assert during_a_step is not None
    assert during_a_step.error_id == error_id


def test_success_is_finished() -> None:
    assert final_status(None, OK) == FinalStatus(TaskStatus.FINISHED)


def test_no_outcome_is_never_finished() -> None:
    status = final_status(None, None)
    assert status is not None
    assert (status.status, status.error_id) == (TaskStatus.FAILED, "NoOutcome")


def test_an_error_names_the_failure_even_after_a_successful_process() -> None:
    stage_out = StagingError("S3AccessDenied", "s3://b/out/: access denied")
    status = final_status(None, OK, error=stage_out)
    assert status is not None
    assert (status.status, status.error_id) == (TaskStatus.FAILED, "S3AccessDenied")
    spawn = final_status(None, None, error=SpawnError("cannot start 'x'"))
    assert spawn is not None
    assert spawn.error_id == "SpawnError"
    secret = final_status(
        None,
        None,
        error=ActivityError("MissingField", "pw hunter2"),
        secrets=["hunter2"],
    )
    assert secret is not None
    assert "hunter2" not in (secret.error_message or "")


def test_a_precondition_that_does_not_hold_is_false() -> None:
    status = final_status(None, EXIT_3, precondition=True)
    assert status == FinalStatus(TaskStatus.FALSE)


def test_exit_code_and_signal_name_the_error_and_hide_secrets() -> None:
    by_code = final_status(None, EXIT_3, stderr_tail="pw=hunter2", secrets=["hunter2"])
    assert by_code is not None
    assert by_code.error_id == "ExitCode:3"
    assert "exited with code 3" in (by_code.error_message or "")
    assert "hunter2" not in (by_code.error_stack_trace or "")
    by_signal = final_status(None, KILLED)
    assert by_signal is not None
    assert by_signal.error_id == "Signal:SIGKILL"


def test_a_real_time_signal_is_named_not_a_crash() -> None:
    # signal.Signals(40) raises ValueError: the old verdict crashed into RunnerError
    rtmin = int(signal.SIGRTMIN)
    status = final_status(None, ProcessExit(None, rtmin + 6, 0.1))
    assert status is not None
    assert status.error_id == "Signal:SIGRTMIN+6"
    assert signal_name(int(signal.SIGTERM)) == "SIGTERM"
    assert signal_name(rtmin) == "SIGRTMIN"
    assert signal_name(200) == "200"
