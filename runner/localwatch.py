"""``run --local``'s eyes on its pipeline: the ``local-watch`` thread.

The thread reads the pipeline the way the AWS console does: the instances and
their attempts, through QueryObjects and DescribeObjects on the embedded service,
and hands each look to ``localview.Watch``, which turns it into events. An event
becomes a short line on a terminal (``say``) or a JSON log line (``log_event``),
never both.

Owns: reading the rows over the wire, the watch loop and its thread, and what it
hands to the inbox when the run has ended.

Must not: import the local service (it reads it over the wire, as it would read
AWS) or click (``say`` is the CLI's); word anything (``localview`` does).

An attempt is described until it has ended, then never again; instances are
described on every look. Its cost is the demo's, over loopback.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence

import structlog

from runner.aws import management
from runner.aws.client import Client
from runner.localevent import Event
from runner.localview import TERMINAL, AttemptRow, InstanceRow, Watch
from runner.signals import LOCAL_RUN_ENDED, Request

POLL_STATUS_S = 0.2


# ---- reading the service --------------------------------------------------------


def _described(
    client: Client, pipeline_id: str, ids: Sequence[str]
) -> list[tuple[str, dict[str, str]]]:
    """Each object of ``ids`` as its id and its fields (a ref as its id)."""
    return [
        (
            str(obj["id"]),
            {
                f["key"]: str(f.get("stringValue", f.get("refValue", "")))
                for f in obj.get("fields", [])
            },
        )
        for obj in (client.describe_objects(pipeline_id, ids) if ids else [])
    ]


def instance_rows(client: Client, pipeline_id: str) -> list[InstanceRow]:
    """Every instance of the pipeline, with its status, attempts and last error."""
    ids = management.query_objects(client, pipeline_id, "INSTANCE")
    rows = []
    for instance_id, fields in _described(client, pipeline_id, ids):
        tries = fields.get("@triesLeft", "0")
        error = fields.get("errorId", "") or fields.get("errorMessage", "")
        rows.append(
            InstanceRow(
                instance_id=instance_id,
                status=fields.get("@status", "?"),
                attempts=fields.get("@attemptCount", "0"),
                error=error[:60],
                tries_left=int(tries) if tries.isdigit() else 0,
                component=fields.get("@componentParent", ""),
                start=fields.get("@actualStartTime", ""),
                end=fields.get("@actualEndTime", ""),
            )
        )
    return sorted(rows, key=lambda row: row.instance_id)


def attempt_rows(client: Client, pipeline_id: str, watch: Watch) -> list[AttemptRow]:
    """The attempts ``watch`` has not yet seen end."""
    ids = watch.unfinished(management.query_objects(client, pipeline_id, "ATTEMPT"))
    return [
        AttemptRow(
            attempt_id=attempt_id,
            instance_id=fields.get("@instanceParent", ""),
            number=fields.get("@attemptCount", "?"),
            status=fields.get("@status", "?"),
            error_id=fields.get("errorId", ""),
            error_message=fields.get("errorMessage", ""),
            stack=fields.get("errorStackTrace", ""),
            start=fields.get("@actualStartTime", ""),
            end=fields.get("@actualEndTime", ""),
        )
        for attempt_id, fields in _described(client, pipeline_id, ids)
    ]


def wait_all_ended(
    client: Client,
    pipeline_id: str,
    stop: threading.Event,
    timeout_s: float,
    *,
    on_events: Callable[[list[Event], int], None],
    watch: Watch,
) -> list[InstanceRow]:
    """Watch the pipeline until every instance is terminal, ``stop`` is set or
    time runs out, handing each look's events to ``on_events`` (with the width
    of the longest instance id); returns the last rows seen."""
    deadline = time.monotonic() + timeout_s
    rows: list[InstanceRow] = []
    while not stop.is_set() and time.monotonic() < deadline:
        # instances first: an instance that has ended has no attempt left running
        rows = instance_rows(client, pipeline_id)
        attempts = attempt_rows(client, pipeline_id, watch)
        events = watch.look(rows, attempts)
        if events:
            on_events(events, watch.width)
        if rows and all(row.status in TERMINAL for row in rows):
            break
        stop.wait(POLL_STATUS_S)
    return rows


def event_sink(
    log: structlog.typing.FilteringBoundLogger, say: Callable[[str], None] | None
) -> Callable[[list[Event], int], None]:
    """Where a look's events go: a line each for a person (``say``), else a JSON
    log line each (``instance_<kind>``). Shared by ``run --local`` and ``exec``."""

    def on_events(events: list[Event], width: int) -> None:
        for event in events:
            if say is not None:
                say(event.line(width))
            else:
                log.info(f"instance_{event.kind}", **event.fields())

    return on_events


def start_watch(  # noqa: PLR0917 - the watch's one composition point
    client: Client,
    pipeline_id: str,
    stop: threading.Event,
    inbox: queue.SimpleQueue[Request],
    log: structlog.typing.FilteringBoundLogger,
    say: Callable[[str], None] | None,
    limit_s: float,
    watch: Watch,
) -> None:
    """Watch the pipeline on a ``local-watch`` thread: each event is said (on a
    terminal) or logged; ``LOCAL_RUN_ENDED`` goes to ``inbox`` once every
    instance has ended, ``stop`` is set, time runs out, or the watch failed."""

    on_events = event_sink(log, say)

    def run() -> None:
        try:
            wait_all_ended(
                client, pipeline_id, stop, limit_s, on_events=on_events, watch=watch
            )
        except Exception:
            log.exception("local_watch_failed")
        finally:
            inbox.put(LOCAL_RUN_ENDED)

    threading.Thread(target=run, name="local-watch", daemon=True).start()
