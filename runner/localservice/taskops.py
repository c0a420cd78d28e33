"""The worker API: PollForTask, ReportTaskProgress, SetTaskStatus, runner heartbeat.

Owns: the long poll (held on the engine's Condition, woken when an attempt is
queued or a timer falls due), task-id resolution with AWS's errors
(TaskNotFoundException for unknown, superseded and finished tasks,
PipelineDeletedException), `canceled: true` after TRY_CANCEL, and the
`terminate` answer of ReportTaskRunnerHeartbeat.

Must not: hold the lock while doing anything slow; it never blocks except in
`cond.wait` during a poll.

Why these choices: a runner told `canceled` need not call SetTaskStatus (MODEL
doc), so a late SetTaskStatus for an attempt that ended CANCELED is accepted
and ignored rather than answered TaskNotFound. A SetTaskStatus that arrives
before the runner saw the cancel wins: the work did end, and TRY_CANCEL is only
a try. Any other status for an ended attempt is TaskNotFoundException, so a
retried SetTaskStatus whose first try committed is recognisably delivered.
"""

from __future__ import annotations

import json
import time
from typing import Any

from runner.localservice import leases, lifecycle
from runner.localservice.engine import Engine
from runner.localservice.model import CANCELED, FAILED, FALSE, FINISHED, Pipeline, Run
from runner.localservice.protocol import ServiceError, invalid
from runner.localservice.render import task_object

Body = dict[str, Any]


class TaskApi:
    """Task operations over one engine. Thread-safe (takes the engine lock)."""

    def __init__(self, engine: Engine, *, poll_hold_s: float) -> None:
        self.engine = engine
        self.poll_hold_s = poll_hold_s
        self.terminate_all = False
        self.terminate_ids: set[str] = set()
        self.heartbeats: dict[str, Body] = {}

    def poll_for_task(self, body: Body) -> Body:
        """Lease the oldest ready attempt of the worker group, holding if none."""
        engine = self.engine
        group = body["workerGroup"]
        give_up = time.monotonic() + self.poll_hold_s
        with engine.cond:
            while True:
                now = time.time()
                engine.advance(now)
                attempt = engine.take(group)
                if attempt is not None:
                    leases.lease(engine, attempt, now, body.get("hostname", ""))
                    pipeline = engine.pipelines[attempt.pipeline_id]
                    answer = task_object(engine, pipeline, attempt, now)
                    engine.commit()
                    return {"taskObject": answer}
                engine.commit()
                remaining = give_up - time.monotonic()
                if remaining <= 0 or engine.stopping:
                    return {}
                timer_in = engine.next_timer_in(now)
                engine.cond.wait(
                    remaining if timer_in is None else min(remaining, timer_in)
                )

    def report_task_progress(self, body: Body) -> Body:
        engine = self.engine
        with engine.cond:
            now = time.time()
            engine.advance(now)
            _, attempt = self._find(body["taskId"])
            if attempt.terminal:
                raise _not_found()
            instance = engine.run(attempt.pipeline_id, attempt.instance)
            if attempt.cancel_requested or (
                instance is not None and instance.cancel_requested
            ):
                lifecycle.end_attempt(engine, attempt, CANCELED, now)
                engine.commit()
                return {"canceled": True}
            attempt.progress = [
                [f["key"], f.get("stringValue", f.get("refValue", ""))]
                for f in body.get("fields", [])
            ] or attempt.progress
            leases.report_progress(engine, attempt, now)
            engine.commit()
            return {"canceled": False}

    def set_task_status(self, body: Body) -> Body:
        status = body["taskStatus"]
        error_id = body.get("errorId", "")
        if error_id.startswith("Service_"):
            raise invalid("errorId must not start with 'Service_' (reserved)")
        engine = self.engine
        with engine.cond:
            now = time.time()
            engine.advance(now)
            _, attempt = self._find(body["taskId"])
            if attempt.status == CANCELED:
                return {}  # canceled through ReportTaskProgress; late status ignored
            if attempt.terminal:
                raise _not_found()
            attempt.error_id = error_id
            attempt.error_message = body.get("errorMessage", "")
            attempt.error_stack = body.get("errorStackTrace", "")
            if status == FALSE and attempt.kind != "precondition":
                status = FAILED
            lifecycle.end_attempt(
                engine, attempt, status if status != FINISHED else FINISHED, now
            )
            engine.commit()
            return {}

    def report_task_runner_heartbeat(self, body: Body) -> Body:
        runner_id = body["taskrunnerId"]
        record = {**body, "at": time.time()}
        with self.engine.cond:
            self.heartbeats[runner_id] = record
            self.engine.store.save_heartbeat(runner_id, json.dumps(record))
            terminate = self.terminate_all or runner_id in self.terminate_ids
        return {"terminate": terminate}

    def set_terminate(self, flag: bool, taskrunner_id: str | None = None) -> None:
        with self.engine.cond:
            if taskrunner_id is None:
                self.terminate_all = flag
            elif flag:
                self.terminate_ids.add(taskrunner_id)
            else:
                self.terminate_ids.discard(taskrunner_id)

    def _find(self, task_id: str) -> tuple[Pipeline, Run]:
        where = self.engine.tasks.get(task_id)
        if where is None:
            raise _not_found()
        pipeline = self.engine.pipeline(where[0])
        attempt = self.engine.run(*where)
        if attempt is None or attempt.task_id != task_id:
            raise _not_found()
        return pipeline, attempt


def _not_found() -> ServiceError:
    return ServiceError("TaskNotFoundException", "Task not found or no longer leased")
