"""``Durations``: a tally of how long things took, in fixed buckets.

Owns: the bucket bounds of the runner's histograms (a Data Pipeline call, a task,
a task's queue wait) and ``Durations``, which counts observations into them and
keeps their sum.
A snapshot (``DurationsSnapshot``) is what ``/metrics`` renders as a Prometheus
histogram.

Must not: import prometheus-client, take a lock, or read a clock. The owner
(``aws/client.py``, ``worker.py``) already holds its own lock where it counts, and
measures the duration itself.

Why not prometheus-client's ``Histogram`` in the hot path: the daemon imports
prometheus-client (and the HTTP server it pulls in) only when ``http_address`` is
set, so an idle runner without metrics keeps its RSS; and a ``bisect`` into a list
of a dozen floats costs a task or a call nothing that shows. ``/metrics`` reads
snapshots when it is scraped, never the other way round.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

#: A Data Pipeline call: milliseconds on a good day, up to the long poll's 100 s.
CALL_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 100)
#: A task's queue wait: seconds when the fleet keeps up, hours when it is too small.
QUEUE_WAIT_BUCKETS_S = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
#: A task: a no-op in milliseconds, an ETL step in hours.
TASK_BUCKETS_S = (0.1, 1, 5, 10, 30, 60, 300, 600, 1800, 3600, 7200, 21600, 86400)


@dataclass(frozen=True, slots=True)
class DurationsSnapshot:
    """``counts[i]`` observations were ≤ ``bounds[i]`` and above the bound before
    it; ``counts[-1]`` (one more than ``bounds``) were above every bound."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum_s: float

    @property
    def count(self) -> int:
        return sum(self.counts)


class Durations:
    """Observations in buckets. Not thread-safe: the owner counts under its lock."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)
        self._sum_s = 0.0

    def observe(self, seconds: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, seconds)] += 1
        self._sum_s += seconds

    def snapshot(self) -> DurationsSnapshot:
        return DurationsSnapshot(self._bounds, tuple(self._counts), self._sum_s)
