"""``verdict.final_status``: every way an attempt ends, and the call it gets."""

from __future__ import annotations

import signal

import pytest

from runner.task.verdict import final_status
from runner.taskmodel import Command, FinalStatus, Outcome, StopReason, TaskStatus

SHELL = Command(argv=("bash", "x"), env={}, timeout_s=None)
PRECONDITION = Command(
    argv=("bash", "x"), env={}, timeout_s=None, false_on_failure=True
)
OK = Outcome(returncode=0, signal=None, duration_s=0.1)
EXIT_3 = Outcome(returncode=3, signal=None, duration_s=0.1)
KILLED = Outcome(returncode=None, signal=signal.SIGKILL, duration_s=0.1, killed=True)


@pytest.mark.parametrize("reason", [StopReason.CANCELED, StopReason.LOST])
def test_canceled_or_lost_gets_no_call(reason: StopReason) -> None:
    assert final_status(reason, KILLED, SHELL, "tail", []) is None


@pytest.mark.parametrize(
    ("reason", "error_id"),
    [(StopReason.TIMEOUT, "AttemptTimeout"), (StopReason.SHUTDOWN, "RunnerShutdown")],
)
def test_killed_by_the_runner_is_failed_with_its_cause(
    reason: StopReason, error_id: str
) -> None:
    status = final_status(reason, KILLED, SHELL, "last words", [])
    assert status is not None
    assert (status.status, status.error_id) == (TaskStatus.FAILED, error_id)
    assert status.error_stack_trace == "last words"


def test_success_and_a_check_without_a_process_are_finished() -> None:
    assert final_status(None, OK, SHELL, "", []) == FinalStatus(TaskStatus.FINISHED)
    assert final_status(None, None, None, "", []) == FinalStatus(TaskStatus.FINISHED)


def test_a_precondition_that_does_not_hold_is_false() -> None:
    status = final_status(None, EXIT_3, PRECONDITION, "", [])
    assert status == FinalStatus(TaskStatus.FALSE)


def test_exit_code_and_signal_name_the_error_and_hide_secrets() -> None:
    by_code = final_status(None, EXIT_3, SHELL, "pw=hunter2", ["hunter2"])
    assert by_code is not None
    assert by_code.error_id == "ExitCode:3"
    assert "exited with code 3" in (by_code.error_message or "")
    assert "hunter2" not in (by_code.error_stack_trace or "")
    by_signal = final_status(None, KILLED, SHELL, "", [])
    assert by_signal is not None
    assert by_signal.error_id == "Signal:SIGKILL"
