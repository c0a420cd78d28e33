"""The final status of one attempt, decided in one place.

Owns: ``final_status``, the one mapping from how an attempt ended (a ``StopReason``,
or none when the process ended by itself, and its ``Outcome``) to the final call:
FINISHED, FALSE, FAILED with an errorId that names the cause, or no call at all.

Must not: make the call, or do any I/O: ``execution.py`` sends what it returns. Pure,
so every row of the table in ``execution.py``'s docstring is a plain unit test.
"""

from __future__ import annotations

import signal

from runner.taskmodel import Command, FinalStatus, Outcome, StopReason, TaskStatus


def final_status(
    reason: StopReason | None,
    outcome: Outcome | None,
    command: Command | None,
    stderr_tail: str,
    secrets: list[str],
) -> FinalStatus | None:
    """The ONE mapping from how a task ended to its final call (``None``: no call).

    Canceled and lost tasks get no status: the service has moved on, and a status
    would at best be rejected and at worst overwrite a newer attempt's.
    """
    if reason in (StopReason.CANCELED, StopReason.LOST):
        return None
    if reason is StopReason.TIMEOUT:
        return FinalStatus.failed(
            "AttemptTimeout",
            "the attempt ran past its attemptTimeout and was killed",
            stderr_tail,
            secrets,
        )
    if reason is StopReason.SHUTDOWN:
        return FinalStatus.failed(
            "RunnerShutdown",
            "the runner shut down before the task finished; the task was killed",
            stderr_tail,
            secrets,
        )
    if outcome is None or outcome.succeeded:
        return FinalStatus(TaskStatus.FINISHED)
    if command is not None and command.false_on_failure:
        return FinalStatus(TaskStatus.FALSE)
    if outcome.signal is not None:
        name = signal.Signals(outcome.signal).name
        error_id, message = f"Signal:{name}", f"the command was killed by {name}"
    else:
        code = outcome.returncode
        error_id, message = f"ExitCode:{code}", f"the command exited with code {code}"
    return FinalStatus.failed(error_id, message, stderr_tail, secrets)
