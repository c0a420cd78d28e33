"""How ``dp-runner exec`` learns the end of its one instance, and what it exits with.

Owns: ``Verdict`` (the instance's end as an exit code: 0 FINISHED, 3 a
precondition FALSE, 4 FAILED with its errorId and message, 5 stopped by a
signal), ``Answer`` (the verdict, committed once: a later stop never rewrites
it) and ``start_slot_watch``, the ``exec-watch`` thread that reads the slot's
instance and attempts over QueryObjects and DescribeObjects, as ``run --local``'s
watch does (it reuses ``localwatch``'s rows and events), and queues
``LOCAL_RUN_ENDED`` in the dispatcher's inbox once the verdict is known.

For an activity, the verdict is its instance's end (``maximumRetries`` is 0: one
attempt). For a precondition, it is the first check's answer: the service would
check again until ``preconditionTimeout``, but a scheduler asks "does it hold
now?", and re-checks on its own clock (exit 3: not yet).

Must not: import the local service (it reads it over the wire, as it would read
AWS) or click.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from runner.aws.client import Client
from runner.execslot import Slot
from runner.localevent import Event
from runner.localview import (
    ATTEMPT_ENDINGS,
    TERMINAL,
    AttemptRow,
    Definitions,
    InstanceRow,
    Watch,
)
from runner.localwatch import attempt_rows, event_sink, instance_rows
from runner.signals import LOCAL_RUN_ENDED, STOP_SIGNALS, Request

EXIT_FINISHED = 0
EXIT_FALSE = 3
EXIT_FAILED = 4
EXIT_SIGNALED = 5
#: How often the slot's instance is read (over loopback).
LOOK_S = 0.2
SIGNALED = "SIGNALED"


@dataclass(frozen=True, slots=True)
class Verdict:
    """How the slot ended: the instance's (or the first check's) status, and the
    error the runner reported with it."""

    status: str
    error_id: str = ""
    error_message: str = ""

    @property
    def code(self) -> int:
        """The exit code of ``exec`` (design.md §2)."""
        if self.status == "FINISHED":
            return EXIT_FINISHED
        if self.status == "FALSE":
            return EXIT_FALSE
        if self.status == SIGNALED:
            return EXIT_SIGNALED
        return EXIT_FAILED

    def line(self) -> str:
        """The verdict as one line for stderr."""
        error = ": ".join(e for e in (self.error_id, self.error_message) if e)
        if self.status == "FALSE" and not error:
            error = "the precondition does not hold"
        return f"{self.status}: {error}" if error else self.status


def signaled(reason: str | None) -> Verdict | None:
    """The verdict of a run a stop signal ended (``reason``: the shutdown's)."""
    names = {stop.name for stop in STOP_SIGNALS}
    return Verdict(SIGNALED, error_message=reason or "") if reason in names else None


class Answer:
    """The verdict, once known. Thread-safe; the first commit wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.verdict: Verdict | None = None

    def commit(self, verdict: Verdict) -> bool:
        with self._lock:
            if self.verdict is not None:
                return False
            self.verdict = verdict
            return True


def verdict_of(
    slot: Slot,
    rows: Sequence[InstanceRow],
    attempts: Sequence[AttemptRow],
    errors: dict[str, AttemptRow],
) -> Verdict | None:
    """The slot's verdict from one look, or None while it is not known.
    ``errors``: the last ended attempt seen of each instance, kept across looks."""
    for attempt in attempts:
        if attempt.status in ATTEMPT_ENDINGS:
            errors[attempt.instance_id] = attempt
    ended = errors.get(slot.instance_id)
    if slot.precondition and ended is not None:
        return Verdict(ended.status, ended.error_id, ended.error_message)
    for row in rows:
        if row.instance_id == slot.instance_id and row.status in TERMINAL:
            if ended is None:
                return Verdict(row.status, row.error)
            return Verdict(row.status, ended.error_id, ended.error_message)
    return None


def watch_slot(
    client: Client,
    pipeline_id: str,
    slot: Slot,
    stop: threading.Event,
    on_events: Callable[[list[Event], int], None],
) -> Verdict | None:
    """Read the slot until its verdict is known (returned) or ``stop`` is set
    (None). Each look's events go to ``on_events``, but retries: ``exec``
    never retries, and a precondition is not checked again."""
    watch = Watch(1.0, Definitions(retry_delays={}, max_retries={}))
    errors: dict[str, AttemptRow] = {}
    while not stop.is_set():
        rows = instance_rows(client, pipeline_id)
        attempts = attempt_rows(client, pipeline_id, watch)
        verdict = verdict_of(slot, rows, attempts, errors)
        events = [e for e in watch.look(rows, attempts) if e.kind != "retry"]
        if events:
            on_events(events, watch.width)
        if verdict is not None:
            return verdict
        stop.wait(LOOK_S)
    return None


def start_slot_watch(  # noqa: PLR0917 - the watch's one composition point
    client: Client,
    pipeline_id: str,
    slot: Slot,
    stop: threading.Event,
    inbox: queue.SimpleQueue[Request],
    log: structlog.typing.FilteringBoundLogger,
    say: Callable[[str], None] | None,
    answer: Answer,
) -> None:
    """Watch the slot on an ``exec-watch`` thread: each event is said (on a
    terminal) or logged; the verdict is committed to ``answer`` before
    ``LOCAL_RUN_ENDED`` goes to ``inbox`` (also when ``stop`` is set or the
    watch failed, without a verdict)."""
    on_events = event_sink(log, say)

    def watch() -> None:
        try:
            verdict = watch_slot(client, pipeline_id, slot, stop, on_events)
            if verdict is not None and answer.commit(verdict):
                log.info(
                    "exec_verdict",
                    instance_id=slot.instance_id,
                    status=verdict.status,
                    error_id=verdict.error_id,
                    exit_code=verdict.code,
                )
        except Exception:
            log.exception("exec_watch_failed")
        finally:
            inbox.put(LOCAL_RUN_ENDED)

    threading.Thread(target=watch, name="exec-watch", daemon=True).start()
