"""What ``run --local`` tells you while its pipeline runs, and the closing table.

The ``local-watch`` thread reads the pipeline the way the AWS console does: the
instances and their attempts, through QueryObjects and DescribeObjects on the
embedded service. Each look is turned into ``Event``s by ``Watch``: an instance's
new status (or new attempt), an attempt that ended badly with what the service was
told (``errorId``, ``errorMessage``, and the tail of ``errorStackTrace``, which for
a command is its stderr), and the retry the service then schedules ("retry 1 of 2
in 1.2 s", from the instance's ``@triesLeft`` and ``retryDelay`` on the service's
scaled clock). An event becomes a short line on a terminal (``say``) or a JSON log
line (``log_event``), never both.

Owns: the instance and attempt rows, the events, their one-line wording, and the
closing table.

Must not: import the local service (it reads it over the wire, as it would read
AWS) or click (``say`` is the CLI's).

An attempt is described until it has ended, then never again; instances are
described on every look. Its cost is the demo's, over loopback.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from runner.activities.periods import parse_period_s
from runner.aws import management
from runner.aws.client import Client
from runner.signals import LOCAL_RUN_ENDED, Request

#: Instance statuses after which the service will do nothing more on its own.
TERMINAL = frozenset(
    {
        "FINISHED",
        "FAILED",
        "CASCADE_FAILED",
        "CANCELED",
        "SKIPPED",
        "MARK_FINISHED",
        "TIMEDOUT",
    }
)
#: Attempt statuses that end an attempt without success: each gets its own line.
BAD_ENDINGS = frozenset({"FAILED", "TIMEDOUT", "CANCELED", "FALSE", "ERROR"})
ATTEMPT_ENDINGS = BAD_ENDINGS | {"FINISHED"}
#: The service's default ``retryDelay`` (Developer Guide: 10 minutes).
DEFAULT_RETRY_DELAY_S = 600.0
POLL_STATUS_S = 0.2
#: How many lines of a failed attempt's stderr tail are shown under its line.
TAIL_LINES = 5


@dataclass(frozen=True, slots=True)
class InstanceRow:
    """One instance, as DescribeObjects gives it; one line of the closing table."""

    instance_id: str
    status: str
    attempts: str
    error: str
    tries_left: int = 0
    component: str = ""


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One attempt of an instance."""

    attempt_id: str
    instance_id: str
    number: str
    status: str
    error_id: str = ""
    error_message: str = ""
    stack: str = ""


@dataclass(frozen=True, slots=True)
class Event:
    """Something a person watching the run wants to know. ``kind``: ``status``
    (an instance's status or attempt changed), ``attempt`` (an attempt ended
    badly), ``retry`` (the service will try again in ``wait_s``)."""

    kind: str
    instance_id: str
    status: str = ""
    attempt: str = ""
    error: str = ""
    tail: tuple[str, ...] = ()
    retry: int = 0
    of: int = 0
    wait_s: float = 0.0

    def line(self, width: int = 0) -> str:
        """The event as a person reads it: one line (the instance id padded to
        ``width``), the stderr tail under it."""
        if self.kind == "retry":
            again = "check again" if self.status == "FALSE" else "retry"
            count = "" if self.status == "FALSE" else f" {self.retry} of {self.of}"
            said = f"{again}{count} in {self.wait_s:.1f} s"
        elif self.kind == "attempt":
            error = f": {self.error}" if self.error else ""
            if self.status == "FALSE" and not error:
                error = ": the precondition does not hold yet"
            said = f"attempt {self.attempt} {self.status}{error}"
        elif self.attempt in {"", "0"}:
            said = self.status
        else:
            said = f"{self.status:<24} attempt {self.attempt}"
        head = f"{self.instance_id:<{width}}  {said}"
        return "\n".join([head, *(f"    | {text}" for text in self.tail)])

    def fields(self) -> dict[str, Any]:
        """The event as JSON log fields (what is empty is left out)."""
        out: dict[str, Any] = {
            "instance_id": self.instance_id,
            "status": self.status,
            "attempt": self.attempt,
            "error": self.error,
            "stderr_tail": list(self.tail),
        }
        if self.kind == "retry":
            out.update(retry=self.retry, of=self.of, wait_s=round(self.wait_s, 2))
        return {key: value for key, value in out.items() if value not in ("", [])}


class Watch:
    """The instances and attempts seen so far; ``look`` turns a new look into
    the events since the last one. ``time_scale``: the service's clock scale,
    which the retry waits are given in."""

    def __init__(self, time_scale: float, retry_delays: Mapping[str, str]) -> None:
        self._time_scale = time_scale
        self._retry_delays = retry_delays
        self.width = 0
        self._statuses: dict[str, tuple[str, str]] = {}
        self._ended: set[str] = set()

    def unfinished(self, attempt_ids: Iterable[str]) -> list[str]:
        """The attempts worth describing: those not yet seen ended."""
        return [a for a in attempt_ids if a not in self._ended]

    def look(
        self, instances: Sequence[InstanceRow], attempts: Sequence[AttemptRow]
    ) -> list[Event]:
        """The events between the last look and this one, attempts' ends first
        (a failure explains the status that follows it)."""
        by_id = {row.instance_id: row for row in instances}
        self.width = max([self.width, *(len(i) for i in by_id)])
        events: list[Event] = []
        retrying: set[tuple[str, str]] = set()
        for attempt in sorted(attempts, key=lambda a: (a.instance_id, a.number)):
            ended = attempt.status in ATTEMPT_ENDINGS
            if not ended or attempt.attempt_id in self._ended:
                continue
            instance = by_id.get(attempt.instance_id)
            if instance is not None and _before(instance, attempt):
                continue  # the instance was read first: next look
            self._ended.add(attempt.attempt_id)
            if attempt.status in BAD_ENDINGS:
                events.append(_ending(attempt))
                retry = self._retry(instance, attempt)
                if retry is not None:
                    events.append(retry)
                    retrying.add((attempt.instance_id, attempt.number))
        for row in instances:
            seen = (row.status, row.attempts)
            if self._statuses.get(row.instance_id) == seen:
                continue
            self._statuses[row.instance_id] = seen
            if (row.instance_id, row.attempts) in retrying:
                continue  # WAITING_FOR_RUNNER again: the retry line says it
            events.append(Event("status", row.instance_id, row.status, row.attempts))
        return events

    def _retry(self, instance: InstanceRow | None, attempt: AttemptRow) -> Event | None:
        """The retry the service scheduled after ``attempt``, if it did: the
        instance has not ended, has no newer attempt, and has tries left (a
        precondition that does not hold is checked again until its timeout)."""
        if instance is None or instance.status in TERMINAL:
            return None
        if instance.attempts != attempt.number:
            return None
        if attempt.status != "FALSE" and instance.tries_left <= 0:
            return None
        try:
            delay_s = parse_period_s(self._retry_delays.get(instance.component, ""))
        except ValueError:
            delay_s = DEFAULT_RETRY_DELAY_S
        done = int(attempt.number) if attempt.number.isdigit() else 0
        return Event(
            "retry",
            attempt.instance_id,
            attempt.status,
            attempt.number,
            retry=done,
            of=done + instance.tries_left,
            wait_s=delay_s * self._time_scale,
        )


def _before(instance: InstanceRow, attempt: AttemptRow) -> bool:
    """Whether ``instance`` was read before ``attempt`` ended: it still runs it.
    (The service ends the attempt and moves its instance in one step.)"""
    return instance.status == "RUNNING" and instance.attempts == attempt.number


def _ending(attempt: AttemptRow) -> Event:
    error = ": ".join(e for e in (attempt.error_id, attempt.error_message) if e)
    lines = [line for line in attempt.stack.splitlines() if line.strip()]
    return Event(
        "attempt",
        attempt.instance_id,
        attempt.status,
        attempt.number,
        error=error[:200],
        tail=tuple(line[:200] for line in lines[-TAIL_LINES:]),
    )


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
    time_scale: float,
    retry_delays: Mapping[str, str],
) -> list[InstanceRow]:
    """Watch the pipeline until every instance is terminal, ``stop`` is set or
    time runs out, handing each look's events to ``on_events`` (with the width
    of the longest instance id); returns the last rows seen. ``retry_delays``:
    each component's ``retryDelay``, as the definition sets it."""
    deadline = time.monotonic() + timeout_s
    watch = Watch(time_scale, retry_delays)
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


def start_watch(  # noqa: PLR0917 - the watch's one composition point
    client: Client,
    pipeline_id: str,
    stop: threading.Event,
    inbox: queue.SimpleQueue[Request],
    log: structlog.typing.FilteringBoundLogger,
    say: Callable[[str], None] | None,
    time_scale: float,
    limit_s: float,
    retry_delays: Mapping[str, str],
) -> None:
    """Watch the pipeline on a ``local-watch`` thread: each event is said (on a
    terminal) or logged; ``LOCAL_RUN_ENDED`` goes to ``inbox`` once every
    instance has ended, ``stop`` is set, time runs out, or the watch failed."""

    def on_events(events: list[Event], width: int) -> None:
        for event in events:
            if say is not None:
                say(event.line(width))
            else:
                log.info(f"instance_{event.kind}", **event.fields())

    def watch() -> None:
        try:
            wait_all_ended(
                client,
                pipeline_id,
                stop,
                limit_s,
                on_events=on_events,
                time_scale=time_scale,
                retry_delays=retry_delays,
            )
        except Exception:
            log.exception("local_watch_failed")
        finally:
            inbox.put(LOCAL_RUN_ENDED)

    threading.Thread(target=watch, name="local-watch", daemon=True).start()


def render_table(rows: list[InstanceRow]) -> str:
    """The closing table, fixed-width for a terminal."""
    header = InstanceRow("INSTANCE", "STATUS", "ATTEMPTS", "ERROR")
    width = max([len(r.instance_id) for r in [header, *rows]])
    lines = [
        f"{r.instance_id:<{width}}  {r.status:<16}  {r.attempts:>8}  {r.error}"
        for r in [header, *rows]
    ]
    return "\n".join(lines)
