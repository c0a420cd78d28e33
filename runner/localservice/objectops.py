"""Object operations: DescribeObjects, QueryObjects, SetStatus, EvaluateExpression.

Owns: looking objects up across the three spheres (COMPONENT from the
definition, INSTANCE and ATTEMPT from runtime records), QueryObjects selectors
(EQ and REF_EQ on name, @sphere, parent, @componentParent, @instanceParent,
@status; LE, GE and BETWEEN on the four time fields; all must match; limit and
marker paging), and SetStatus (components PAUSE/RESUME; instances TRY_CANCEL,
RERUN, MARK_FINISHED; case-insensitive, as the API sample sends lowercase).

Must not: invent transitions; instance changes go through `lifecycle`.

Why: `aws datapipeline list-runs` is QueryObjects plus DescribeObjects, so the
selector semantics and the field names here are what users see. DescribeObjects
takes up to 100 ids: the API reference says 25, but the AWS CLI's `list-runs`
sends 100 at a time and AWS answers them.
"""

from __future__ import annotations

import time
from typing import Any

from runner.localservice import lifecycle
from runner.localservice.definition import Definition
from runner.localservice.engine import Engine
from runner.localservice.expressions import ExpressionError
from runner.localservice.instances import max_retries
from runner.localservice.model import (
    CANCELED,
    CASCADE_FAILED,
    PAUSED,
    WAITING_FOR_RUNNER,
    WAITING_ON_DEPENDENCIES,
    Pipeline,
    Run,
    runtime_of,
    wall_time,
)
from runner.localservice.protocol import invalid
from runner.localservice.render import component, run_object

Body = dict[str, Any]
_TIME_FIELDS = frozenset(
    {"@scheduledStartTime", "@scheduledEndTime", "@actualStartTime", "@actualEndTime"}
)
_MAX_SELECTORS = 10
MAX_DESCRIBE_IDS = 100


# The API Reference's values (QueryObjects, SetStatus).
SPHERES = ("COMPONENT", "INSTANCE", "ATTEMPT")
SET_STATUSES = frozenset({"PAUSE", "RESUME", "TRY_CANCEL", "RERUN", "MARK_FINISHED"})


class ObjectApi:
    """Object-level operations. Thread-safe (takes the engine lock)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def operations(self) -> dict[str, Any]:
        return {
            "DescribeObjects": self.describe_objects,
            "QueryObjects": self.query_objects,
            "SetStatus": self.set_status,
            "EvaluateExpression": self.evaluate_expression,
        }

    def describe_objects(self, body: Body) -> Body:
        ids = body["objectIds"]
        if len(ids) > MAX_DESCRIBE_IDS:
            raise invalid(f"objectIds: at most {MAX_DESCRIBE_IDS} ids per call")
        evaluate = bool(body.get("evaluateExpressions", False))
        with self.engine.cond:
            pipeline = self.engine.pipeline(body["pipelineId"])
            defn = self.engine.definition(pipeline)
            objects = []
            for obj_id in ids:
                run = self.engine.run(pipeline.id, obj_id)
                if run is not None:
                    objects.append(
                        run_object(self.engine, pipeline, run, evaluate=evaluate)
                    )
                elif obj_id in defn.objects:
                    runtime: dict[str, object] | None = {} if evaluate else None
                    objects.append(component(defn, pipeline, obj_id, runtime))
                else:
                    raise invalid(f"objectIds: no object {obj_id!r} in {pipeline.id}")
        return {"pipelineObjects": objects, "hasMoreResults": False}

    def query_objects(self, body: Body) -> Body:
        selectors = (body.get("query") or {}).get("selectors", [])
        if len(selectors) > _MAX_SELECTORS:
            raise invalid(f"query.selectors: at most {_MAX_SELECTORS} selectors")
        limit = body.get("limit", 100)
        if limit < 1:
            raise invalid("limit must be at least 1")
        marker = body.get("marker") or "0"
        if not marker.isdigit():
            raise invalid(f"marker {marker[:64]!r} is not one this service issued")
        start = int(marker)
        with self.engine.cond:
            pipeline = self.engine.pipeline(body["pipelineId"])
            if body["sphere"] not in SPHERES:
                raise invalid(
                    f"sphere {body['sphere'][:64]!r} is not one of {', '.join(SPHERES)}"
                )
            candidates = self._sphere(pipeline, body["sphere"])
            ids = [oid for oid, fields in candidates if _matches(fields, selectors)]
        page = ids[start : start + limit]
        more = start + limit < len(ids)
        answer: Body = {"ids": page, "hasMoreResults": more}
        if more:
            answer["marker"] = str(start + limit)
        return answer

    def _sphere(
        self, pipeline: Pipeline, sphere: str
    ) -> list[tuple[str, dict[str, list[str]]]]:
        if sphere == "COMPONENT":
            defn = self.engine.definition(pipeline)
            return [(oid, _component_fields(defn, oid)) for oid in defn.objects]
        runs = sorted(
            (r for r in self.engine.runs[pipeline.id].values() if r.sphere == sphere),
            key=lambda r: r.seq,
        )
        return [(r.id, _run_fields(r)) for r in runs]

    def set_status(self, body: Body) -> Body:
        status = body["status"].upper()
        if status not in SET_STATUSES:
            raise invalid(
                f"status {body['status'][:64]!r} is not one of "
                f"{', '.join(sorted(SET_STATUSES))}"
            )
        engine = self.engine
        with engine.cond:
            pipeline = engine.pipeline(body["pipelineId"])
            defn = engine.definition(pipeline)
            ids = body["objectIds"]
            runs = [engine.run(pipeline.id, oid) for oid in ids]
            if all(oid in defn.objects for oid in ids):
                if status not in {"PAUSE", "RESUME"}:
                    raise invalid(f"status {status} does not apply to components")
                for oid in ids:
                    _pause(engine, pipeline, oid, resume=status == "RESUME")
            elif all(run is not None for run in runs):
                if status not in {"TRY_CANCEL", "RERUN", "MARK_FINISHED"}:
                    raise invalid(f"status {status} does not apply to instances")
                for run in runs:
                    if run is not None:  # always: checked by all() above
                        _set_instance_status(engine, _instance_of(engine, run), status)
            else:
                raise invalid("objectIds must all be components or all be instances")
            engine.commit()
        return {}

    def evaluate_expression(self, body: Body) -> Body:
        with self.engine.cond:
            pipeline = self.engine.pipeline(body["pipelineId"])
            defn = self.engine.definition(pipeline)
            obj_id = body["objectId"]
            run = self.engine.run(pipeline.id, obj_id)
            if run is not None:
                context = run.component
                instance = _instance_of(self.engine, run)
                runtime = runtime_of(instance, time.time())
            elif obj_id in defn.objects:
                context, runtime = obj_id, {}
            else:
                raise invalid(f"objectId: no object {obj_id!r} in {pipeline.id}")
            try:
                value = defn.evaluate_text(body["expression"], context, runtime)
            except (ExpressionError, KeyError, ValueError, TypeError) as exc:
                raise invalid(
                    defn.redact(f"cannot evaluate expression: {exc}")
                ) from exc
        return {"evaluatedExpression": value}


def _component_fields(defn: Definition, obj_id: str) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {
        "name": [defn.objects[obj_id][0]],
        "@sphere": ["COMPONENT"],
    }
    for key, value, _ in defn.objects[obj_id][1]:
        fields.setdefault(key, []).append(value)
    return fields


def _run_fields(run: Run) -> dict[str, list[str]]:
    fields = {
        "name": [run.id],
        "@sphere": [run.sphere],
        "@status": [run.status],
        "@componentParent": [run.component],
        "parent": [run.component],
        "@scheduledStartTime": [run.scheduled_start],
        "@scheduledEndTime": [run.scheduled_end],
        "@actualStartTime": [run.actual_start] if run.actual_start else [],
        "@actualEndTime": [run.actual_end] if run.actual_end else [],
    }
    if run.instance:
        fields["@instanceParent"] = [run.instance]
    return fields


def _matches(fields: dict[str, list[str]], selectors: list[Body]) -> bool:
    for selector in selectors:
        name = selector.get("fieldName", "")
        operator = selector.get("operator") or {}
        kind = operator.get("type", "EQ")
        values = operator.get("values", [])
        have = fields.get(name, [])
        if kind in {"EQ", "REF_EQ"}:
            ok = any(v in values for v in have)
        elif name not in _TIME_FIELDS:
            raise invalid(f"operator {kind} works on time fields only, not {name}")
        elif kind == "BETWEEN":
            if len(values) != 2:
                raise invalid("BETWEEN needs exactly two values")
            ok = any(values[0] <= v <= values[1] for v in have)
        elif kind == "LE":
            ok = bool(values) and any(v <= values[0] for v in have)
        else:  # GE
            ok = bool(values) and any(v >= values[0] for v in have)
        if not ok:
            return False
    return True


def _instance_of(engine: Engine, run: Run) -> Run:
    if run.sphere == "ATTEMPT":
        instance = engine.run(run.pipeline_id, run.instance)
        if instance is not None:
            return instance
    return run


def _pause(engine: Engine, pipeline: Pipeline, comp: str, *, resume: bool) -> None:
    if resume:
        if comp in pipeline.paused:
            pipeline.paused.remove(comp)
    elif comp not in pipeline.paused:
        pipeline.paused.append(comp)
    engine.touch(pipeline)
    now = time.time()
    for instance in engine.instances(pipeline.id, comp):
        head = engine.run(pipeline.id, instance.head_attempt)
        queued = (
            head is not None and head.status == WAITING_FOR_RUNNER and not head.task_id
        )
        if not resume and instance.status in {
            WAITING_ON_DEPENDENCIES,
            WAITING_FOR_RUNNER,
        }:
            if instance.status == WAITING_FOR_RUNNER and not queued:
                continue  # leased or waiting for a retry: let it be
            for run in (instance, head) if queued and head else (instance,):
                run.paused_from, run.status = run.status, PAUSED
                engine.touch(run)
        elif resume and instance.status == PAUSED:
            instance.status = instance.paused_from or WAITING_ON_DEPENDENCIES
            engine.touch(instance)
            if head is not None and head.status == PAUSED:
                head.status = WAITING_FOR_RUNNER
                engine.touch(head)
                engine.enqueue(head)
            lifecycle.check_instance(engine, instance, now)


def _set_instance_status(engine: Engine, instance: Run, status: str) -> None:
    now = time.time()
    if status == "TRY_CANCEL":
        lifecycle.cancel_instance(engine, instance, now)
    elif status == "MARK_FINISHED":
        head = engine.run(instance.pipeline_id, instance.head_attempt)
        if head is not None and not head.terminal:
            head.status, head.actual_end = CANCELED, wall_time(now)
            engine.touch(head)
        lifecycle.end_instance(engine, instance, "FINISHED", now)
    elif instance.terminal:
        _rerun(engine, instance, now)


def _rerun(engine: Engine, instance: Run, now: float) -> None:
    defn = engine.definition(engine.pipelines[instance.pipeline_id])
    instance.status = WAITING_ON_DEPENDENCIES
    instance.tries_left = max_retries(defn, instance.component)
    instance.error_id = instance.error_message = instance.error_stack = ""
    instance.actual_end = ""
    instance.cancel_requested = False
    engine.touch(instance)
    engine.waiting.setdefault(instance.pipeline_id, set()).add(instance.id)
    for other in list(engine.runs[instance.pipeline_id].values()):
        if other.status == CASCADE_FAILED and (
            instance.component in other.depends or instance.id in other.preconditions
        ):
            _rerun(engine, other, now)
    lifecycle.check_instance(engine, instance, now)
