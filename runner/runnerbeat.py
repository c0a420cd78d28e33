"""The runner's own heartbeat: ReportTaskRunnerHeartbeat for every worker group, and
the preflight that makes the first one before anything starts.

Owns: ``RunnerBeat``, its ``runner-heartbeat`` thread (a ``Heartbeat``), what its
answers mean (``terminate: true`` is put in the dispatcher's inbox, as a signal
would be) and the preflight's verdict (refused credentials or permissions are a
``ConfigError``, exit 78; an outage only warns).

Must not: stop anything itself (the dispatcher decides), poll, or run a task.

Why apart from the worker: it beats for the runner, not for a task or a poll, from
the start to the stop, and it is what tells an operator at start whether the
service will have this runner at all.
"""

from __future__ import annotations

import queue

import structlog

from runner.aws.client import CALL_TIMEOUT_S, Client
from runner.errors import ConfigError, RejectedRequestError, TransientServiceError
from runner.heartbeat import Heartbeat
from runner.liveness import Liveness
from runner.signals import TERMINATE, Request
from runner.workerbooks import WorkerBooks

#: How long ``stop`` waits for the heartbeat's thread.
JOIN_S = 1.0


class RunnerBeat:
    """ReportTaskRunnerHeartbeat for each group every ``interval_s``, the first at
    once. ``start`` returns at once; thread-safe."""

    def __init__(
        self,
        *,
        client: Client,
        taskrunner_id: str,
        groups: list[str],
        hostname: str,
        interval_s: float,
        requests: queue.SimpleQueue[Request],
        books: WorkerBooks,
        log: structlog.typing.FilteringBoundLogger,
        liveness: Liveness | None = None,
    ) -> None:
        self._client = client
        self._taskrunner_id = taskrunner_id
        self._groups = groups
        self._hostname = hostname
        self._requests = requests
        self._books = books
        self._log = log
        self._heartbeat = Heartbeat(
            self.beat,
            interval_s=interval_s,
            name="runner-heartbeat",
            log=log,
            first_delay_s=0.0,
            liveness=liveness,
            call_timeout_s=CALL_TIMEOUT_S,
        )

    def preflight(self) -> None:
        """One runner heartbeat per group before anything starts, so that bad
        credentials, a wrong endpoint or a missing permission stop the runner at
        once with a clear message (``ConfigError``, exit 78) instead of a log of
        failed polls. A transient failure only warns: the service may come back."""
        try:
            self.beat(once=True)
        except RejectedRequestError as exc:
            said = exc.message or "(the service gave no message)"
            raise ConfigError(
                f"the Data Pipeline service refused this runner ({exc.code}): "
                f"{said}. Check the credentials, region and endpoint_url "
                "(dp-runner doctor checks each)."
            ) from exc
        except TransientServiceError as exc:
            self._log.warning(
                "service_unreachable",
                error=exc.code,
                message=exc.message or "(no message)",
                detail="polling starts all the same and backs off up to 60 s",
            )

    def start(self) -> None:
        self._heartbeat.start()

    def stop(self) -> None:
        """End the heartbeat; wait up to ``JOIN_S`` for a call in progress."""
        self._heartbeat.stop()
        self._heartbeat.join(JOIN_S)

    def beat(self, *, once: bool = False) -> None:
        """One heartbeat per group (``once``: one try each, no retry); the first
        ``terminate: true`` goes to the dispatcher."""
        for group in self._groups:
            terminate = self._client.report_task_runner_heartbeat(
                self._taskrunner_id, group, self._hostname, once=once
            )
            if terminate and not self._books.terminate_requested:
                self._books.terminate_requested = True
                self._log.info("runner_terminate_requested", worker_group=group)
                self._requests.put(TERMINATE)
