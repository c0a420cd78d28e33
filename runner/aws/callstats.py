"""``CallStats``: the client's books on every try of every Data Pipeline call.

Owns: the counts of tries by operation, of errors by operation and code, the
retries scheduled, each operation's latency (``Durations``), and when the service
last answered and when a try last failed in transit. ``Client.statistics()``
returns its snapshot; ``/metrics`` and ``/readyz`` read that snapshot.

Must not: call AWS, log, or decide what an error means (``translate`` does).

Why apart from ``client.py``: that module is about the API's operations; the books
are about counting, and they grew with the metrics.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from runner.durations import CALL_BUCKETS_S, Durations, DurationsSnapshot


@dataclass(frozen=True, slots=True)
class ClientStatistics:
    """A snapshot: tries per operation, retries scheduled, errors by code (and by
    operation and code), latency per operation, and the ``time.monotonic()`` of
    the last answer (a success, or an error the service itself sent) and of the
    last try that failed in transit or was answered with a 5xx or throttling.
    ``failures``: calls (not tries) that raised, their retries spent, by operation.
    """

    calls: Mapping[str, int]
    failures: Mapping[str, int]
    retries: int
    errors: Mapping[str, int]
    operation_errors: Mapping[tuple[str, str], int]
    latency: Mapping[str, DurationsSnapshot]
    last_answer: float | None
    last_failure: float | None


class CallStats:
    """Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()
        self._errors: Counter[tuple[str, str]] = Counter()
        self._latency: dict[str, Durations] = {}
        self._retries = 0
        self._last_answer: float | None = None
        self._last_failure: float | None = None

    def tried(
        self, operation: str, began: float, code: str | None, *, answered: bool
    ) -> None:
        """One try of ``operation`` that began at ``began`` (``time.monotonic()``)
        has ended: ``code`` None for a success; ``answered`` False when it failed in
        transit (or was a 5xx or throttling: the service is not well)."""
        now = time.monotonic()
        with self._lock:
            self._calls[operation] += 1
            durations = self._latency.get(operation)
            if durations is None:
                durations = self._latency[operation] = Durations(CALL_BUCKETS_S)
            durations.observe(now - began)
            if code is not None:
                self._errors[operation, code] += 1
            if answered:
                self._last_answer = now
            else:
                self._last_failure = now

    def failed(self, operation: str) -> None:
        """A call of ``operation`` raised: every retry it had is spent."""
        with self._lock:
            self._failures[operation] += 1

    def retried(self) -> None:
        with self._lock:
            self._retries += 1

    def snapshot(self) -> ClientStatistics:
        with self._lock:
            by_code: Counter[str] = Counter()
            for (_, code), count in self._errors.items():
                by_code[code] += count
            return ClientStatistics(
                calls=dict(self._calls),
                failures=dict(self._failures),
                retries=self._retries,
                errors=dict(by_code),
                operation_errors=dict(self._errors),
                latency={op: d.snapshot() for op, d in self._latency.items()},
                last_answer=self._last_answer,
                last_failure=self._last_failure,
            )
