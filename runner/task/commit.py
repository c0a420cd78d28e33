"""The commit point: a final status, journaled before it is sent, closed once the
service has it.

Owns: ``send``, used by the execution for a status it has just decided and by
``recovery`` for one the last run left unsent. The status is already in the
journal when ``send`` is called; ``send`` closes its row when the service confirms
it, or says the task is gone (TaskNotFound, PipelineDeleted: the service has moved
on), or refuses it as invalid (it never will take it); a transient failure leaves
the row for the next start.

Must not: decide the status, log (each caller names the outcome in its own words)
or wait on its own: the retries are the client's, until the caller's deadline.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from runner.aws.client import Client
from runner.errors import RejectedRequestError, ServiceError, TaskNotFoundError
from runner.task.journal import Journal
from runner.taskmodel import FinalStatus


@dataclass(frozen=True, slots=True)
class Sent:
    """What became of a status: ``sent`` (closed), ``dropped`` (closed: the task is
    gone), ``invalid`` (closed: refused as a bad request, our bug) or ``not_sent``
    (kept in the journal); ``error`` is the service's code when it was not sent."""

    delivery: Literal["sent", "dropped", "invalid", "not_sent"]
    error: str | None = None
    message: str | None = None


def send(
    client: Client,
    journal: Journal,
    task_id: str,
    status: FinalStatus,
    *,
    until: Callable[[], float | None],
    wake: Sequence[threading.Event] = (),
) -> Sent:
    """Send the journaled ``status``, retried until ``until()``. Never raises a
    ``ServiceError``."""
    try:
        client.set_task_status(task_id, status, until=until, wake=wake)
    except TaskNotFoundError as exc:
        result = Sent("dropped", exc.code, exc.message)
    except RejectedRequestError as exc:
        result = Sent("invalid", exc.code, exc.message)
    except ServiceError as exc:  # transient, once the deadline has passed
        return Sent("not_sent", exc.code, exc.message)  # the next start sends it
    else:
        result = Sent("sent")
    journal.attempt_closed(task_id)
    return result
