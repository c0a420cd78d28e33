"""The ``Exists`` precondition: does the S3 data node it guards exist?

Owns: turning an ``Exists`` task into a plan whose main step is an in-process
``Check``: a HeadObject (or a listing, for a folder) on the node's S3 location.

Why a plan at all: every task goes through one registry and one lifecycle (ack,
heartbeat, stop flag, final status), so a check that runs in-process is judged,
stopped and reported exactly like a ShellCommandPrecondition: holds -> FINISHED,
else FALSE. The check runs on a thread that a stop abandons, like every transfer.
"""

from __future__ import annotations

from runner.activities import staging
from runner.activities.context import ActivityContext
from runner.activities.periods import attempt_timeout_s
from runner.activities.plan import Check, Plan
from runner.taskmodel import Task


class ExistsPrecondition:
    """``Exists`` on an S3DataNode: the key, or a key under the folder, exists."""

    type_name = "Exists"

    def plan(self, task: Task, ctx: ActivityContext) -> Plan:
        uri = staging.guarded_node(task).uri
        s3, stop = ctx.s3, ctx.stop
        return Plan(
            main=Check("exists", lambda: s3.exists(uri, stop=stop)),
            timeout_s=attempt_timeout_s(task),
            precondition=True,
        )
