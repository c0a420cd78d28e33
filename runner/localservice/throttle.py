"""`--throttle aws`: AWS's per-account call rates, one token bucket per operation.

Owns: the rates and bursts of the Developer Guide's limits page (DG dp-limits,
"Web Service Call Limits"), a token bucket per operation that refills at the
regular rate up to the burst, in real time, and the count of calls refused per
operation, with a log line at most every `LOG_EVERY_S` per operation.

Must not: sleep, or scale with `--time-scale`: the limits are AWS's, in real
seconds, whatever the service's own clock does.

Why: a fleet of runners is only as good as its API economy. With the limits on,
a burst over a bucket is answered ThrottlingException exactly as AWS answers it,
so that a fleet owner sees locally whether the fleet's polls, heartbeats and
progress reports fit, and that every runner rides the throttling out. The limits
apply to the account, so the buckets are shared by every caller. Operations the
page does not list (AddTags, RemoveTags, DeactivatePipeline, EvaluateExpression)
are not limited.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)
LOG_EVERY_S = 10.0
MESSAGE = "Rate exceeded"

#: Operation -> (regular rate in calls per second, burst in calls). DG dp-limits.
AWS_RATES: dict[str, tuple[float, float]] = {
    "ActivatePipeline": (1.0, 100.0),
    "CreatePipeline": (1.0, 100.0),
    "DeletePipeline": (1.0, 100.0),
    "DescribeObjects": (2.0, 100.0),
    "DescribePipelines": (1.0, 100.0),
    "GetPipelineDefinition": (1.0, 100.0),
    "PollForTask": (2.0, 100.0),
    "ListPipelines": (1.0, 100.0),
    "PutPipelineDefinition": (1.0, 100.0),
    "QueryObjects": (2.0, 100.0),
    "ReportTaskProgress": (10.0, 100.0),
    "SetTaskStatus": (10.0, 100.0),
    "SetStatus": (1.0, 100.0),
    "ReportTaskRunnerHeartbeat": (1.0, 100.0),
    "ValidatePipelineDefinition": (1.0, 100.0),
}


@dataclass(frozen=True, slots=True)
class ThrottleStatistics:
    """Calls refused so far, per operation."""

    throttled: dict[str, int]


@dataclass
class _Bucket:
    rate: float
    burst: float
    tokens: float
    at: float
    throttled: int = 0
    logged_at: float = float("-inf")


class Throttle:
    """Token buckets, full at start. Thread-safe; never blocks."""

    def __init__(
        self,
        rates: dict[str, tuple[float, float]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        now = clock()
        self._buckets = {
            operation: _Bucket(rate, burst, burst, now)
            for operation, (rate, burst) in (rates or AWS_RATES).items()
        }
        self._lock = threading.Lock()

    def take(self, operation: str) -> bool:
        """Spend a token of the operation's bucket: False when there is none."""
        bucket = self._buckets.get(operation)
        if bucket is None:
            return True
        with self._lock:
            now = self._clock()
            bucket.tokens = min(
                bucket.burst, bucket.tokens + (now - bucket.at) * bucket.rate
            )
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return True
            bucket.throttled += 1
            due = now - bucket.logged_at >= LOG_EVERY_S
            if due:
                bucket.logged_at = now
            count = bucket.throttled
        if due:
            log.warning(
                "localservice_throttled operation=%s rate=%g/s burst=%g throttled=%d",
                operation,
                bucket.rate,
                bucket.burst,
                count,
            )
        return False

    def statistics(self) -> ThrottleStatistics:
        with self._lock:
            return ThrottleStatistics(
                {op: b.throttled for op, b in self._buckets.items() if b.throttled}
            )
