"""``/metrics``: the runner's counters as Prometheus text, through prometheus-client.

Owns: the names, help texts and labels of the ``dp_runner_*`` series, and the
collector that builds them from snapshots at each scrape:

================================================  =========  ==========================
``dp_runner_tasks_total{outcome}``                counter    tasks ended, by outcome
``dp_runner_task_duration_seconds``               histogram  poll's answer to status
``dp_runner_tasks_in_progress``                   gauge      tasks running now
``dp_runner_free_slots``                          gauge      max_tasks less those
``dp_runner_api_calls_total{operation}``          counter    tries, retries included
``dp_runner_api_errors_total{operation,code}``    counter    failed tries, by code
``dp_runner_api_latency_seconds{operation}``      histogram  one try
``dp_runner_heartbeat_failures_total{operation}`` counter    after their retries
``dp_runner_task_kills_total{reason}``            counter    stopped, by stop reason
``dp_runner_last_poll_timestamp_seconds``         gauge      a poll last came back
``dp_runner_build_info{version,python}``          info
================================================  =========  ==========================

plus prometheus-client's ``process_*`` series (RSS, CPU, open files).

Must not: be imported unless ``http_address`` is set (prometheus-client imports an
HTTP server); count anything itself.

Why a collector over snapshots rather than prometheus-client's ``Counter`` objects
updated in place: the counting stays in ``workerbooks.py`` and ``aws/callstats.py``
whether metrics are on or not, costs a task nothing that shows, and a scrape reads
one consistent snapshot of each. Collector-built counters carry no ``_created``
series.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from runner import __version__
from runner.aws.client import Client
from runner.durations import DurationsSnapshot
from runner.worker import Worker

HEARTBEAT_OPERATIONS = ("ReportTaskProgress", "ReportTaskRunnerHeartbeat")


def _buckets(snapshot: DurationsSnapshot) -> list[tuple[str, float]]:
    """Prometheus buckets: cumulative counts, ``+Inf`` last."""
    total, out = 0, []
    for bound, count in zip(snapshot.bounds, snapshot.counts, strict=False):
        total += count
        out.append((repr(float(bound)), float(total)))
    out.append(("+Inf", float(snapshot.count)))
    return out


def _counter(
    name: str, doc: str, labels: list[str], values: Mapping[Any, int]
) -> CounterMetricFamily:
    """A counter family; ``values`` maps a label value (or a tuple of them, in
    the order of ``labels``) to its count."""
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


class RunnerCollector(Collector):
    """Reads the worker's and the client's snapshots at each scrape."""

    def __init__(self, worker: Worker, client: Client) -> None:
        self._worker = worker
        self._client = client

    def collect(self) -> Iterator[Metric]:
        yield from self._task_series()
        yield from self._api_series()
        info = InfoMetricFamily("dp_runner_build", "The runner's version.")
        info.add_metric(
            [], {"version": __version__, "python": platform.python_version()}
        )
        yield info

    def _task_series(self) -> Iterator[Metric]:
        stats = self._worker.statistics()
        outcomes = {(k,): v for k, v in stats.outcomes.items()}
        yield _counter(
            "dp_runner_tasks", "Tasks ended, by outcome.", ["outcome"], outcomes
        )
        duration = HistogramMetricFamily(
            "dp_runner_task_duration_seconds", "How long tasks took, ack to status."
        )
        duration.add_metric([], _buckets(stats.durations), stats.durations.sum_s)
        yield duration
        yield GaugeMetricFamily(
            "dp_runner_tasks_in_progress", "Tasks running.", value=stats.tasks_running
        )
        yield GaugeMetricFamily(
            "dp_runner_free_slots",
            "Task slots free (max_tasks less the tasks running).",
            value=stats.max_tasks - stats.tasks_running,
        )
        yield _counter(
            "dp_runner_task_kills",
            "Attempts stopped, by reason.",
            ["reason"],
            stats.stops,
        )
        if stats.last_poll is not None:
            yield GaugeMetricFamily(
                "dp_runner_last_poll_timestamp_seconds",
                "When a PollForTask last came back (Unix time).",
                value=stats.last_poll,
            )

    def _api_series(self) -> Iterator[Metric]:
        stats = self._client.statistics()
        yield _counter(
            "dp_runner_api_calls", "Data Pipeline tries.", ["operation"], stats.calls
        )
        yield _counter(
            "dp_runner_api_errors",
            "Data Pipeline tries that failed, by error code.",
            ["operation", "code"],
            stats.operation_errors,
        )
        latency = HistogramMetricFamily(
            "dp_runner_api_latency_seconds",
            "How long one Data Pipeline try took.",
            labels=["operation"],
        )
        for operation, snapshot in sorted(stats.latency.items()):
            latency.add_metric([operation], _buckets(snapshot), snapshot.sum_s)
        yield latency
        failures = {(op,): stats.failures.get(op, 0) for op in HEARTBEAT_OPERATIONS}
        yield _counter(
            "dp_runner_heartbeat_failures",
            "Heartbeats that failed after their retries.",
            ["operation"],
            failures,
        )


def exposition(worker: Worker, client: Client) -> Callable[[], tuple[bytes, str]]:
    """A function that renders ``/metrics``: the body and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunnerCollector(worker, client))
    ProcessCollector(registry=registry)

    def render() -> tuple[bytes, str]:
        return generate_latest(registry), CONTENT_TYPE_LATEST

    return render
