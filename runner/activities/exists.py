"""The ``Exists`` precondition: does the S3 data node it guards exist?

Owns: turning an ``Exists`` task into a ``Command`` with ``check="s3-exists"``. The
check itself is an S3 call, which activities must not make: the execution runs it
through ``staging.exists_precondition`` instead of starting a process.

Why a Command at all: every task goes through one registry and one lifecycle (ack,
heartbeat, final status), so a check that runs in-process is judged and reported
exactly like a ShellCommandPrecondition: holds -> FINISHED, else FALSE.
"""

from __future__ import annotations

from runner.activities.context import ActivityContext
from runner.activities.periods import attempt_timeout_s
from runner.taskmodel import Command, Task

S3_EXISTS = "s3-exists"


class ExistsPrecondition:
    """``Exists`` on an S3DataNode: the key, or a key under the folder, exists."""

    type_name = "Exists"

    def prepare(self, task: Task, ctx: ActivityContext) -> Command:
        del ctx  # nothing to write: the check runs in the runner
        return Command(
            argv=(),
            timeout_s=attempt_timeout_s(task),
            false_on_failure=True,
            check=S3_EXISTS,
        )
