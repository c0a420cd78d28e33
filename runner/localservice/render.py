"""Wire form of pipeline objects: components, instances, attempts, task objects.

Owns: turning definition objects and runtime records into the API's
`PipelineObject` (`{id, name, fields: [{key, stringValue | refValue}]}`) and
assembling PollForTask's `taskObject` as AWS shapes it: the attempt with every field
it inherits flattened in (its component's, the parent chain's, Default's) plus the
runtime `@` fields, and the objects its other references name (inputs, outputs, a
database, a resource), each flattened the same way. The objects it inherits from and
its schedule are not carried: the API reference's PollForTask sample is the attempt
alone, with `workerGroup` and `schedule` (set on Default in most definitions) in it.
A precondition's task also carries the data nodes it guards.

Must not: change any record.

Why: the runner reads the task object exactly as it would from AWS (design §4),
so the shapes are built in one module that tests can read against the reference.
"""

from __future__ import annotations

import contextlib
from collections import deque
from typing import Any

from runner.localservice.definition import Definition
from runner.localservice.engine import Engine
from runner.localservice.expressions import ExpressionError
from runner.localservice.model import Field, Pipeline, Run, runtime_of

Obj = dict[str, Any]


def field_json(key: str, value: str, is_ref: bool) -> dict[str, str]:
    return {"key": key, "refValue" if is_ref else "stringValue": value}


def pipeline_object(obj_id: str, name: str, fields: list[Field]) -> Obj:
    return {"id": obj_id, "name": name, "fields": [field_json(*f) for f in fields]}


def component(
    defn: Definition,
    pipeline: Pipeline,
    obj_id: str,
    runtime: dict[str, object] | None = None,
) -> Obj:
    """A definition object; evaluated against runtime when one is given."""
    name, fields = defn.objects[obj_id]
    if runtime is not None:
        fields = _evaluated_or_raw(defn, obj_id, fields, runtime)
    extra: list[Field] = [
        ("@id", obj_id, False),
        ("@sphere", "COMPONENT", False),
        ("@pipelineId", pipeline.id, False),
        ("@version", str(pipeline.version), False),
    ]
    if runtime is not None:
        extra = []
    return pipeline_object(obj_id, name, [*fields, *extra])


def _evaluated_or_raw(
    defn: Definition, obj_id: str, fields: list[Field], runtime: dict[str, object]
) -> list[Field]:
    out: list[Field] = []
    for key, value, is_ref in fields:
        shown = [value]
        # what cannot be evaluated here is shown as written
        if not is_ref:
            with contextlib.suppress(ExpressionError, KeyError, ValueError, TypeError):
                shown = defn.expand_text(value, obj_id, runtime)
        out.extend((key, text, is_ref) for text in shown)
    return out


def run_object(engine: Engine, pipeline: Pipeline, run: Run, *, evaluate: bool) -> Obj:
    """An instance or an attempt with its runtime fields."""
    defn = engine.definition(pipeline)
    if run.sphere == "ATTEMPT":
        base: list[Field] = [(k, v, r) for k, v, r in run.fields]
    elif run.component in defn.objects:
        base = defn.merged(run.component)
        if evaluate:
            base = _evaluated_or_raw(
                defn, run.component, base, runtime_of(run, run.ready_at or 0.0)
            )
    else:
        base = []
    base = [f for f in base if f[0] != "parent"]
    return pipeline_object(run.id, run.id, [*base, *_runtime_fields(pipeline, run)])


def _runtime_fields(pipeline: Pipeline, run: Run) -> list[Field]:
    fields: list[Field] = [
        ("@id", run.id, False),
        ("@componentParent", run.component, True),
        ("@sphere", run.sphere, False),
        ("@status", run.status, False),
        ("@pipelineId", run.pipeline_id, False),
        ("@version", str(pipeline.version), False),
        ("@scheduledStartTime", run.scheduled_start, False),
        ("@scheduledEndTime", run.scheduled_end, False),
    ]
    if run.sphere == "ATTEMPT":
        fields.append(("@instanceParent", run.instance, True))
        fields.append(("@attemptCount", run.id.rsplit("=", 1)[-1], False))
        if run.hostname:
            fields.append(("hostname", run.hostname, False))
    else:
        fields.append(("@attemptCount", str(run.attempt_count), False))
        fields.append(("@triesLeft", str(run.tries_left), False))
        if run.head_attempt:
            fields.append(("@headAttempt", run.head_attempt, True))
        if run.preconditions:
            fields.extend(("@waitingOn", p, True) for p in run.preconditions)
    for key, value in (
        ("@actualStartTime", run.actual_start),
        ("@actualEndTime", run.actual_end),
        ("errorId", run.error_id),
        ("errorMessage", run.error_message),
        ("errorStackTrace", run.error_stack),
    ):
        if value:
            fields.append((key, value, False))
    fields.extend((k, v, False) for k, v in run.progress)
    return fields


#: References a task does not follow: what the attempt inherits from, its schedule
#: and the activities it waits on (the runner needs none of them).
_NOT_CARRIED = frozenset({"parent", "schedule", "dependsOn"})


def task_object(engine: Engine, pipeline: Pipeline, attempt: Run, now: float) -> Obj:
    """PollForTask's taskObject for a freshly leased attempt."""
    defn = engine.definition(pipeline)
    instance = engine.run(pipeline.id, attempt.instance)
    runtime = runtime_of(instance, now) if instance is not None else {}
    head = run_object(engine, pipeline, attempt, evaluate=True)
    present = {f["key"] for f in head["fields"]}
    if "Default" in defn.objects and attempt.component != "Default":
        inherited = flattened(defn, pipeline, "Default", runtime)["fields"]
        head["fields"].extend(f for f in inherited if f["key"] not in present)
    objects: dict[str, Obj] = {attempt.id: head}
    todo = deque(_carried_refs(head))
    todo.extend(
        obj_id
        for obj_id, (_, fields) in defn.objects.items()
        if any(k == "precondition" and v == attempt.component for k, v, _ in fields)
    )
    while todo:
        obj_id = todo.popleft()
        if obj_id in objects or obj_id not in defn.objects:
            continue
        objects[obj_id] = flattened(defn, pipeline, obj_id, runtime)
        todo.extend(_carried_refs(objects[obj_id]))
    return {
        "taskId": attempt.task_id,
        "pipelineId": pipeline.id,
        "attemptId": attempt.id,
        "objects": objects,
    }


def flattened(
    defn: Definition, pipeline: Pipeline, obj_id: str, runtime: dict[str, object]
) -> Obj:
    """A definition object with every field it inherits (parent chain, Default),
    evaluated against ``runtime``, without ``parent``."""
    name = defn.objects[obj_id][0]
    fields: list[Field] = []
    keys: set[str] = set()
    for owner in defn.chain(obj_id):
        own = [f for f in defn.objects[owner][1] if f[0] not in keys]
        fields.extend(own)
        keys.update(f[0] for f in own)
    fields = [f for f in fields if f[0] != "parent"]
    shown = _evaluated_or_raw(defn, obj_id, fields, runtime)
    return pipeline_object(obj_id, name, shown)


def _carried_refs(obj: Obj) -> list[str]:
    return [
        f["refValue"]
        for f in obj["fields"]
        if "refValue" in f
        and f["key"] not in _NOT_CARRIED
        and not f["key"].startswith("@")
    ]
