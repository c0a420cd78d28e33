"""The final status of one attempt, decided in one place.

Owns: ``final_status``, the one mapping from how an attempt ended (the ``StopReason``
on its stop flag, or none; the main step's ``ProcessExit``, or the error that ended it
early) to the final call: FINISHED, FALSE, FAILED with an errorId that names the
cause, or no call at all.

Must not: make the call, or do any I/O: ``execution.py`` sends what it returns. Pure,
so every row of the table below is a plain unit test.

=========================================  ==========================================
how it ended                               final call
=========================================  ==========================================
CANCELED, LOST, LEASE_EXPIRED              none: the service has moved on
TIMEOUT                                    FAILED ``AttemptTimeout``
DRAIN_EXPIRED, FAST_STOP                   FAILED ``RunnerShutdown``
an error before or after the main step     FAILED with the error's errorId
main step succeeded                        FINISHED
main step failed, precondition             FALSE
main step failed                           FAILED ``ExitCode:n`` / ``Signal:NAME``
no outcome and no error (a bug)            FAILED ``NoOutcome``, never FINISHED
=========================================  ==========================================
"""

from __future__ import annotations

import signal

from runner.attempt import ProcessExit
from runner.errors import ActivityError, SpawnError
from runner.taskmodel import FinalStatus, StopReason, TaskStatus

_NO_STATUS = frozenset({StopReason.CANCELED, StopReason.LOST, StopReason.LEASE_EXPIRED})


def final_status(
    reason: StopReason | None,
    outcome: ProcessExit | None,
    *,
    error: ActivityError | SpawnError | None = None,
    precondition: bool = False,
    stderr_tail: str = "",
    secrets: list[str] | tuple[str, ...] = (),
) -> FinalStatus | None:
    """The ONE mapping from how an attempt ended to its final call (``None``: no
    call). A stop reason wins over everything else: it was set first."""
    if reason is not None:
        return _stopped(reason, stderr_tail, secrets)
    if error is not None:
        return _rejected(error, secrets)
    if outcome is None:
        return FinalStatus.failed(
            "NoOutcome", "dp-runner bug: the attempt ended without an outcome"
        )
    if outcome.succeeded:
        return FinalStatus(TaskStatus.FINISHED)
    if precondition:
        return FinalStatus(TaskStatus.FALSE)
    if outcome.signal is not None:
        name = signal_name(outcome.signal)
        error_id, message = f"Signal:{name}", f"the command was killed by {name}"
    else:
        code = outcome.returncode
        error_id, message = f"ExitCode:{code}", f"the command exited with code {code}"
    return FinalStatus.failed(error_id, message, stderr_tail, secrets)


def _stopped(
    reason: StopReason, stderr_tail: str, secrets: list[str] | tuple[str, ...]
) -> FinalStatus | None:
    if reason in _NO_STATUS:
        return None
    if reason is StopReason.TIMEOUT:
        error_id = "AttemptTimeout"
        message = "the attempt ran past its attemptTimeout and was stopped"
    else:  # DRAIN_EXPIRED, FAST_STOP
        error_id = "RunnerShutdown"
        message = "the runner shut down before the task finished; it was stopped"
    return FinalStatus.failed(error_id, message, stderr_tail, secrets)


def signal_name(signum: int) -> str:
    """``SIGKILL`` for 9; ``SIGRTMIN+6`` for a real-time signal (40 on Linux);
    the bare number for anything this platform does not name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        pass
    low, high = getattr(signal, "SIGRTMIN", None), getattr(signal, "SIGRTMAX", None)
    if low is not None and high is not None and low < signum < high:
        return f"SIGRTMIN+{signum - low}"
    return str(signum)


def _rejected(
    error: ActivityError | SpawnError, secrets: list[str] | tuple[str, ...]
) -> FinalStatus:
    """A task that could not be run, or whose transfer failed: its errorId."""
    if isinstance(error, ActivityError):
        error_id, message = error.error_id, error.message
    else:
        error_id, message = "SpawnError", str(error)
    return FinalStatus.failed(error_id, message, secrets=secrets)
