"""Which instances a slot of an activity brings into being, and what each waits on.

Owns: `create_instance`, which makes (or returns) the instance of a component for
a time slot together with the instances it needs, as AWS shows them in
`list-runs`: the activity's input and output data nodes, the resource it runs on
(Ec2Resource, EmrCluster), and the preconditions of the activity and of each data
node. An activity waits on its `dependsOn` activities and its input data nodes; a
data node waits on its preconditions and on the activities that produce it; a
resource waits on nothing (`resources` moves it as its activities run).

Must not: move an instance on (that is `lifecycle`'s and `resources`') or lease
anything.

Why: AWS's instance graph is what users read to see why a run waits; building it
in one place keeps `lifecycle` about transitions and keeps the graph the same
whether a slot comes from an ondemand activation or a schedule.
"""

from __future__ import annotations

from runner.localservice.definition import Definition
from runner.localservice.engine import Engine
from runner.localservice.fieldtypes import InvalidFieldError
from runner.localservice.model import (
    DATANODE,
    PRECONDITION,
    RESOURCE,
    WAITING_ON_DEPENDENCIES,
    Pipeline,
    Run,
)

DEFAULT_MAX_RETRIES = 2


def create_instance(
    engine: Engine,
    pipeline: Pipeline,
    component: str,
    start: str,
    end: str,
    *,
    kind: str = "activity",
    guarded: str = "",
) -> Run:
    """Create (or return the existing) instance of component for a time slot,
    with the instances it needs. Caller holds the engine lock."""
    instance_id = f"@{component}_{start}"
    existing = engine.run(pipeline.id, instance_id)
    if existing is not None:
        return existing
    defn = engine.definition(pipeline)
    run = Run(
        id=instance_id,
        pipeline_id=pipeline.id,
        sphere="INSTANCE",
        component=component,
        status=WAITING_ON_DEPENDENCIES,
        scheduled_start=start,
        scheduled_end=end,
        kind=kind,
        worker_group=defn.route(component, engine.runs_on_worker_group, guarded),
        tries_left=max_retries(defn, component),
    )
    engine.add_run(run)
    if kind != RESOURCE:
        engine.waiting.setdefault(pipeline.id, set()).add(run.id)
    if kind in {"activity", DATANODE}:
        _attach(engine, pipeline, defn, run)
    return run


def _attach(engine: Engine, pipeline: Pipeline, defn: Definition, run: Run) -> None:
    """Create what an activity or a data node waits on; record it on `run`."""
    component, start, end = run.component, run.scheduled_start, run.scheduled_end
    run.preconditions = [
        create_instance(
            engine, pipeline, p, start, end, kind=PRECONDITION, guarded=component
        ).id
        for p in defn.refs(component, "precondition")
    ]
    if run.kind == DATANODE:
        run.depends = defn.producers(component)
        return
    for node in defn.data_nodes_of(component):
        create_instance(engine, pipeline, node, start, end, kind=DATANODE)
    resource = defn.resource_of(component)
    if resource:
        run.resource = create_instance(
            engine, pipeline, resource, start, end, kind=RESOURCE
        ).id
    run.depends = [
        *defn.refs(component, "dependsOn"),
        *(
            n
            for n in defn.refs(component, "input")
            if n in defn.data_nodes_of(component)
        ),
    ]


def max_retries(defn: Definition, component: str) -> int:
    """`maximumRetries`, evaluated, default 2 (DG dp-object-shellcommandactivity).
    A value that does not evaluate gives none: the first attempt fails
    InvalidField (`lifecycle.start_attempt`)."""
    try:
        return defn.number(component, "maximumRetries", DEFAULT_MAX_RETRIES)
    except InvalidFieldError:
        return 0
