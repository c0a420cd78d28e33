"""``/metrics``: the runner's counters as Prometheus text, through prometheus-client.

Owns: the names, help texts and labels of the ``dp_runner_*`` series, and the
collector that builds them from snapshots at each scrape:

=========================================  =========  ============================
series (its labels below)                  kind       what it counts
=========================================  =========  ============================
``dp_runner_tasks_total``                  counter    tasks ended, by outcome
``dp_runner_task_errors_total``            counter    failed tasks, by error class
``dp_runner_task_kills_total``             counter    stopped, by stop reason
``dp_runner_task_duration_seconds``        histogram  taken to status sent
``dp_runner_task_queue_wait_seconds``      histogram  scheduled to taken (the ack)
``dp_runner_tasks_in_progress``            gauge      tasks running now
``dp_runner_free_slots``                   gauge      max_tasks less those
``dp_runner_api_calls_total``              counter    tries, retries included
``dp_runner_api_errors_total``             counter    failed tries, by code
``dp_runner_api_latency_seconds``          histogram  one try (not the long poll)
``dp_runner_poll_duration_seconds``        histogram  one PollForTask try
``dp_runner_heartbeat_failures_total``     counter    after their retries
``dp_runner_last_poll_timestamp_seconds``  gauge      a poll last came back
``dp_runner_build_info``                   info       version, python
=========================================  =========  ============================

Labels: every task series has ``worker_group``; ``tasks_total`` adds
``activity_type`` and ``outcome``, ``task_errors_total`` ``activity_type`` and
``error_class`` (``ExitCode``, ``Signal``, ``Timeout``, ``SqlError``, ...:
``tasklabels.ERROR_CLASSES``), ``task_kills_total`` ``reason``. The API series have
``operation``, and ``api_errors_total`` ``code``.

plus prometheus-client's ``process_*`` series (RSS, CPU, open files).

Every labelled counter has its series from the first scrape: at 0 for each
configured worker group, each activity type dp-runner runs (``unsupported`` for
the rest), each outcome of ``tasklabels.ZERO_OUTCOMES``, each error class and stop
reason, and each operation the runner calls, so that ``rate()`` shows 0 rather
than "no data". Only ``api_errors_total`` waits for a code: the service's codes
are not a closed set.

Must not: be imported unless ``http_address`` is set (prometheus-client imports an
HTTP server); count anything itself.

Why a collector over snapshots rather than prometheus-client's ``Counter`` objects
updated in place: the counting stays in ``workerbooks.py`` and ``aws/callstats.py``
whether metrics are on or not, costs a task nothing that shows, and a scrape reads
one consistent snapshot of each. Collector-built counters carry no ``_created``
series. The long poll has a histogram of its own: its answer is held up to 90 s
when there is no work, which says nothing about the service's latency.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator, Mapping
from itertools import product
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

from runner import __version__, tasklabels
from runner.aws.callstats import ClientStatistics
from runner.aws.client import Client
from runner.durations import DurationsSnapshot
from runner.taskmodel import StopReason
from runner.worker import Worker, WorkerStatistics

HEARTBEAT_OPERATIONS = ("ReportTaskProgress", "ReportTaskRunnerHeartbeat")
POLL = "PollForTask"
#: The operations a runner calls, each counted from 0.
OPERATIONS = (POLL, *HEARTBEAT_OPERATIONS, "SetTaskStatus", "DescribeObjects")


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
        stats = self._worker.statistics()
        yield from _task_counters(stats)
        yield from _task_gauges(stats)
        yield from _api_series(self._client.statistics())
        info = InfoMetricFamily("dp_runner_build", "The runner's version.")
        info.add_metric(
            [], {"version": __version__, "python": platform.python_version()}
        )
        yield info


def _task_counters(stats: WorkerStatistics) -> Iterator[Metric]:
    groups, kinds = stats.worker_groups, tasklabels.ACTIVITY_TYPES
    tasks = dict.fromkeys(product(groups, kinds, tasklabels.ZERO_OUTCOMES), 0)
    yield _counter(
        "dp_runner_tasks",
        "Tasks ended, by outcome.",
        ["worker_group", "activity_type", "outcome"],
        tasks | dict(stats.tasks),
    )
    errors = dict.fromkeys(product(groups, kinds, tasklabels.ERROR_CLASSES), 0)
    yield _counter(
        "dp_runner_task_errors",
        "Tasks that failed, by the class of their errorId.",
        ["worker_group", "activity_type", "error_class"],
        errors | dict(stats.errors),
    )
    reasons = [reason.value for reason in StopReason]
    yield _counter(
        "dp_runner_task_kills",
        "Attempts stopped, by reason.",
        ["worker_group", "reason"],
        dict.fromkeys(product(groups, reasons), 0) | dict(stats.stops),
    )
    yield _histogram(
        "dp_runner_task_duration_seconds",
        "How long tasks took, taken to status sent.",
        "worker_group",
        stats.durations,
    )
    yield _histogram(
        "dp_runner_task_queue_wait_seconds",
        "From the instance's scheduled start (end, for timeseries) to the ack.",
        "worker_group",
        stats.queue_waits,
    )


def _task_gauges(stats: WorkerStatistics) -> Iterator[Metric]:
    running = GaugeMetricFamily(
        "dp_runner_tasks_in_progress", "Tasks running.", labels=["worker_group"]
    )
    for group in sorted({*stats.worker_groups, *stats.running}):
        running.add_metric([group], stats.running.get(group, 0))
    yield running
    yield GaugeMetricFamily(
        "dp_runner_free_slots",
        "Task slots free (max_tasks less the tasks running).",
        value=stats.max_tasks - stats.tasks_running,
    )
    if stats.last_poll is not None:
        yield GaugeMetricFamily(
            "dp_runner_last_poll_timestamp_seconds",
            "When a PollForTask last came back (Unix time).",
            value=stats.last_poll,
        )


def _api_series(stats: ClientStatistics) -> Iterator[Metric]:
    calls = dict.fromkeys(((op,) for op in OPERATIONS), 0)
    yield _counter(
        "dp_runner_api_calls",
        "Data Pipeline tries.",
        ["operation"],
        calls | {(op,): n for op, n in stats.calls.items()},
    )
    yield _counter(
        "dp_runner_api_errors",
        "Data Pipeline tries that failed, by error code.",
        ["operation", "code"],
        stats.operation_errors,
    )
    latency = {op: s for op, s in stats.latency.items() if op != POLL}
    yield _histogram(
        "dp_runner_api_latency_seconds",
        "How long one Data Pipeline try took (PollForTask apart: a long poll).",
        "operation",
        latency,
    )
    poll = HistogramMetricFamily(
        "dp_runner_poll_duration_seconds",
        "How long one PollForTask try took: held up to 90 s when there is no work.",
    )
    snapshot = stats.latency.get(POLL)
    if snapshot is not None:
        poll.add_metric([], _buckets(snapshot), snapshot.sum_s)
    yield poll
    failures = {(op,): stats.failures.get(op, 0) for op in HEARTBEAT_OPERATIONS}
    yield _counter(
        "dp_runner_heartbeat_failures",
        "Heartbeats that failed after their retries.",
        ["operation"],
        failures,
    )


def _histogram(
    name: str, doc: str, label: str, snapshots: Mapping[str, DurationsSnapshot]
) -> HistogramMetricFamily:
    """A histogram family with one series per value of ``label``."""
    family = HistogramMetricFamily(name, doc, labels=[label])
    for value, snapshot in sorted(snapshots.items()):
        family.add_metric([value], _buckets(snapshot), snapshot.sum_s)
    return family


def exposition(worker: Worker, client: Client) -> Callable[[], tuple[bytes, str]]:
    """A function that renders ``/metrics``: the body and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunnerCollector(worker, client))
    ProcessCollector(registry=registry)

    def render() -> tuple[bytes, str]:
        return generate_latest(registry), CONTENT_TYPE_LATEST

    return render
