"""What ``run --local`` says about its pipeline: events, their wording, the closing.

Owns: the instance and attempt rows (as the service describes them), ``Watch``,
which turns each look at them into ``Event``s in the order they happened (by the
service's event times, an ending before what it caused), and what each event
says. Its wording is ``localevent``'s; the closing table is ``localsummary``'s.

Must not: read the service or a file (``localwatch`` reads both and hands rows
and output tails in), import click, or decide when the run ends.

Why: a person watching the run reads a story: what ran, in what order, why an
attempt failed (its error first, then its stderr, without the work dir's long
prefix), what it printed, how long it took, and what the service does next (each
retry it schedules, the last one included). The same events go to JSON log
lines, so a machine reads the same story.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from runner.activities.periods import parse_period_s
from runner.localevent import Event

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
#: Attempt statuses that end an attempt without success.
BAD_ENDINGS = frozenset({"FAILED", "TIMEDOUT", "CANCELED", "FALSE", "ERROR"})
ATTEMPT_ENDINGS = BAD_ENDINGS | {"FINISHED"}
#: The service's defaults (Developer Guide): retryDelay 10 minutes, 2 retries.
DEFAULT_RETRY_DELAY_S = 600.0
#: How many lines of an attempt's stderr (failed) or stdout (finished) are shown.
TAIL_LINES = 5
#: An error is cut here, after the work dir's prefix is taken out of it.
ERROR_CHARS = 400
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
# Rank of an instance's events in one look: an ending, the retry it caused,
# then its status.
_RANKS = {"attempt": 0, "retry": 1}


@dataclass(frozen=True, slots=True)
class InstanceRow:
    """One instance, as DescribeObjects gives it; one line of the closing table."""

    instance_id: str
    status: str
    attempts: str
    error: str
    tries_left: int = 0
    component: str = ""
    start: str = ""
    end: str = ""


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
    start: str = ""
    end: str = ""


@dataclass(frozen=True, slots=True)
class Definitions:
    """What the watch takes from the definition file, per component: its
    ``retryDelay`` and ``maximumRetries`` as written (an expression is left to
    the service's own count), how deep it is in the graph (what it waits on
    comes first), and the paths to take out of messages."""

    retry_delays: Mapping[str, str]
    max_retries: Mapping[str, str]
    prefixes: Sequence[str] = ()
    depth: Mapping[str, int] = dataclasses.field(default_factory=dict)


class Watch:
    """The instances and attempts seen so far; ``look`` turns a new look into
    the events since the last one. ``time_scale``: the service's clock scale,
    which the retry waits are given in. ``output_of``: the stdout tail of a
    finished attempt (None: not shown)."""

    def __init__(
        self,
        time_scale: float,
        known: Definitions,
        output_of: Callable[[AttemptRow], list[str]] | None = None,
    ) -> None:
        self._time_scale = time_scale
        self._known = known
        self._output_of = output_of
        self.width = 0
        self._statuses: dict[str, tuple[str, str]] = {}
        self._ended: set[str] = set()

    def unfinished(self, attempt_ids: Iterable[str]) -> list[str]:
        """The attempts worth describing: those not yet seen ended."""
        return [a for a in attempt_ids if a not in self._ended]

    def look(
        self, instances: Sequence[InstanceRow], attempts: Sequence[AttemptRow]
    ) -> list[Event]:
        """The events between the last look and this one, in the order they
        happened (``_in_order``)."""
        by_id = {row.instance_id: row for row in instances}
        self.width = max([self.width, *(len(i) for i in by_id)])
        events, retrying = self._endings(by_id, attempts)
        for row in instances:
            seen = (row.status, row.attempts)
            if self._statuses.get(row.instance_id) == seen:
                continue
            self._statuses[row.instance_id] = seen
            if (row.instance_id, row.attempts) in retrying:
                continue  # WAITING_FOR_RUNNER again: the retry line says it
            when = row.end if row.status in TERMINAL else row.start
            events.append(
                Event("status", row.instance_id, row.status, row.attempts, when=when)
            )
        return _in_order(events, by_id, self._known.depth)

    def _endings(
        self, by_id: Mapping[str, InstanceRow], attempts: Sequence[AttemptRow]
    ) -> tuple[list[Event], set[tuple[str, str]]]:
        """The attempts that ended since the last look, and the retries they
        caused; the (instance, attempt) pairs that are retried."""
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
            events.append(self._ending(attempt))
            if attempt.status == "FINISHED":
                continue
            retry = self._retry(instance, attempt)
            if retry is not None:
                events.append(retry)
                retrying.add((attempt.instance_id, attempt.number))
        return events, retrying

    def _ending(self, attempt: AttemptRow) -> Event:
        """An ended attempt: how long it took; if it failed, its error and the
        last lines of its stderr; if it finished, the last lines of its stdout."""
        took = _seconds_between(attempt.start, attempt.end)
        if attempt.status == "FINISHED":
            output = self._output_of(attempt) if self._output_of is not None else []
            return Event(
                "attempt",
                attempt.instance_id,
                attempt.status,
                attempt.number,
                took_s=took,
                output=tuple(output[-TAIL_LINES:]),
                when=attempt.end,
            )
        error = ": ".join(e for e in (attempt.error_id, attempt.error_message) if e)
        lines = [
            self._plain(line)
            for line in attempt.stack.splitlines()
            if _meaningful(line)
        ]
        return Event(
            "attempt",
            attempt.instance_id,
            attempt.status,
            attempt.number,
            error=_cut(self._plain(error), ERROR_CHARS),
            tail=tuple(_cut(line, ERROR_CHARS) for line in lines[-TAIL_LINES:]),
            took_s=took,
            when=attempt.end,
        )

    def _plain(self, text: str) -> str:
        """text without the work dir's prefix on the paths in it."""
        for prefix in self._known.prefixes:
            # the prefix and the rest of the path up to its last "/" (ids hold ":")
            pattern = re.escape(prefix.rstrip("/")) + r"/(?:[^\s'\"]*/)?"
            text = re.sub(pattern, "", text)
        return text

    def _retry(self, instance: InstanceRow | None, attempt: AttemptRow) -> Event | None:
        """The retry the service scheduled after ``attempt``, if it did: the
        instance has not ended, and runs or waits to run a later attempt (the
        last retry included: its tries left are 0 by the time it is read)."""
        if instance is None or instance.status in TERMINAL:
            return None
        done = _number(attempt.number)
        if done is None or (_number(instance.attempts) or 0) < done:
            return None
        delay = self._known.retry_delays.get(instance.component, "")
        try:
            delay_s = parse_period_s(delay)
        except ValueError:
            delay_s = DEFAULT_RETRY_DELAY_S
        of = _number(self._known.max_retries.get(instance.component, ""))
        if of is None:
            of = done + instance.tries_left
        return Event(
            "retry",
            attempt.instance_id,
            attempt.status,
            attempt.number,
            retry=done,
            of=max(of, done),
            wait_s=delay_s * self._time_scale,
            when=attempt.end,
        )


def _in_order(
    events: list[Event], by_id: Mapping[str, InstanceRow], depth: Mapping[str, int]
) -> list[Event]:
    """By the service's time of each instance's events; one with no time of its
    own (a status such as WAITING_FOR_RUNNER) at the latest time of the look.
    The service's times are whole seconds: in the same second, what waits on
    another comes after it (``depth``). An instance's own events stay in their
    order: its attempt's end, the retry it caused, its status."""
    latest = max((e.when for e in events), default="")
    first_time: dict[str, str] = {}
    for event in events:
        when = event.when or latest
        first_time[event.instance_id] = min(
            first_time.get(event.instance_id, when), when
        )

    def key(event: Event) -> tuple[str, int, str, int]:
        row = by_id.get(event.instance_id)
        level = depth.get(row.component, 0) if row is not None else 0
        rank = _RANKS.get(event.kind, 2)
        return (first_time[event.instance_id], level, event.instance_id, rank)

    return sorted(events, key=key)


def _before(instance: InstanceRow, attempt: AttemptRow) -> bool:
    """Whether ``instance`` was read before ``attempt`` ended: it still runs it.
    (The service ends the attempt and moves its instance in one step.)"""
    return instance.status == "RUNNING" and instance.attempts == attempt.number


def _meaningful(line: str) -> bool:
    """A stderr line worth showing: not blank, not a shell trace (``+ cmd``)."""
    text = line.strip()
    return bool(text) and not text.startswith("+ ")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) < 10 else None


def _seconds_between(start: str, end: str) -> float | None:
    try:
        began = dt.datetime.strptime(start, _TIME_FORMAT)  # noqa: DTZ007 - both UTC
        ended = dt.datetime.strptime(end, _TIME_FORMAT)  # noqa: DTZ007 - both UTC
    except ValueError:
        return None
    return max(0.0, (ended - began).total_seconds())
