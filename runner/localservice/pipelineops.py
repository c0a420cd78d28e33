"""Pipeline operations: create, define, activate, list, describe, delete, tags.

Owns: CreatePipeline (idempotent on uniqueId + name), Put/Get/Validate
PipelineDefinition, Activate/DeactivatePipeline, ListPipelines (marker
pagination), DescribePipelines (`@pipelineState`, `@healthStatus`...),
DeletePipeline, AddTags and RemoveTags.

Must not: create instances itself (schedule does) or lease anything.

Why: these are what the AWS CLI and people's definition files exercise; the
answers follow the API reference's shapes so the CLI's own commands (for
example `list-runs`) work unchanged. Deleted pipelines are kept, marked deleted,
so that their leftover tasks answer PipelineDeletedException.
"""

from __future__ import annotations

import copy
import secrets
import string
import time
from typing import Any

from runner.localservice import lifecycle, schedule, validation
from runner.localservice.definition import Definition
from runner.localservice.engine import Engine
from runner.localservice.model import FAILURES, Pipeline, wall_time
from runner.localservice.protocol import invalid
from runner.localservice.render import field_json

Body = dict[str, Any]
LIST_PAGE_SIZE = 100
MAX_TAGS = 10
_ID_ALPHABET = string.ascii_uppercase + string.digits


class PipelineApi:
    """Pipeline-level operations. Thread-safe (takes the engine lock)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def operations(self) -> dict[str, Any]:
        return {
            "CreatePipeline": self.create_pipeline,
            "PutPipelineDefinition": self.put_pipeline_definition,
            "GetPipelineDefinition": self.get_pipeline_definition,
            "ValidatePipelineDefinition": self.validate_pipeline_definition,
            "ActivatePipeline": self.activate_pipeline,
            "DeactivatePipeline": self.deactivate_pipeline,
            "ListPipelines": self.list_pipelines,
            "DescribePipelines": self.describe_pipelines,
            "DeletePipeline": self.delete_pipeline,
            "AddTags": self.add_tags,
            "RemoveTags": self.remove_tags,
        }

    def create_pipeline(self, body: Body) -> Body:
        engine = self.engine
        with engine.cond:
            for pipeline in engine.pipelines.values():
                if (
                    not pipeline.deleted
                    and pipeline.unique_id == body["uniqueId"]
                    and pipeline.name == body["name"]
                ):
                    return {"pipelineId": pipeline.id}
            tags = {t["key"]: t["value"] for t in body.get("tags", [])}
            if len(tags) > MAX_TAGS:
                raise invalid(f"tags: at most {MAX_TAGS} tags per pipeline")
            pipeline = Pipeline(
                id=self._new_id(body["uniqueId"]),
                name=body["name"],
                unique_id=body["uniqueId"],
                description=body.get("description", ""),
                creator="local",
                created_at=time.time(),
                tags=tags,
                seq=engine.next_seq(),
            )
            engine.pipelines[pipeline.id] = pipeline
            engine.runs[pipeline.id] = {}
            engine.touch(pipeline)
            engine.commit()
            return {"pipelineId": pipeline.id}

    def _new_id(self, unique_id: str) -> str:
        """The id the embedder named for this uniqueId, else a new one as AWS
        makes them (``df-`` and 21 capitals and digits)."""
        named = self.engine.named_pipeline_ids.get(unique_id)
        if named is None:
            return "df-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(21))
        if named in self.engine.pipelines:
            raise invalid(f"pipeline id {named} is already taken")
        return named

    def put_pipeline_definition(self, body: Body) -> Body:
        raw = _raw_definition(body)
        with self.engine.cond:
            pipeline = self.engine.pipeline(body["pipelineId"])
            defn = self.engine.remember(Definition(raw))
            errors, warnings = validation.check(defn, pipeline.id)
            pipeline.definition = raw
            pipeline.errored = bool(errors)
            self.engine.forget_definitions(pipeline.id)
            self.engine.touch(pipeline)
            self.engine.commit()
        return validation.answer(errors, warnings)

    def validate_pipeline_definition(self, body: Body) -> Body:
        raw = _raw_definition(body)
        with self.engine.cond:
            pipeline = self.engine.pipeline(body["pipelineId"])
            defn = self.engine.remember(Definition(raw))
        errors, warnings = validation.check(defn, pipeline.id)
        return validation.answer(errors, warnings)

    def get_pipeline_definition(self, body: Body) -> Body:
        version = body.get("version", "latest")
        if version not in {"latest", "active"}:
            raise invalid("version must be 'latest' or 'active'")
        with self.engine.cond:
            pipeline = self.engine.pipeline(body["pipelineId"])
            raw = pipeline.active if version == "active" else pipeline.definition
            if raw is None:
                raw = pipeline.definition or {}
            return {
                "pipelineObjects": raw.get("objects", []),
                "parameterObjects": raw.get("parameters", []),
                "parameterValues": raw.get("values", []),
            }

    def activate_pipeline(self, body: Body) -> Body:
        engine = self.engine
        with engine.cond:
            pipeline = engine.pipeline(body["pipelineId"])
            if pipeline.definition is None or pipeline.errored:
                raise invalid(
                    f"Pipeline {pipeline.id} has no valid definition; "
                    "PutPipelineDefinition without validation errors first"
                )
            active = copy.deepcopy(pipeline.definition)
            values = body.get("parameterValues")
            values = values if values is not None else active.get("values", [])
            self._check_activation(pipeline, Definition(active, values))
            pipeline.active, pipeline.activation_values = active, values
            pipeline.version += 1
            engine.forget_definitions(pipeline.id)
            start = body.get("startTimestamp")
            schedule.activate(
                engine, pipeline, time.time(), float(start) if start else None
            )
            engine.commit()
        return {}

    def _check_activation(self, pipeline: Pipeline, defn: Definition) -> None:
        """Refuse, as AWS does, a definition that these values make invalid,
        or one whose schedule starts more than a day ago."""
        errors, _ = validation.check(self.engine.remember(defn), pipeline.id)
        if errors:
            raise invalid(f"Pipeline definition with these values is invalid: {errors}")
        too_old = schedule.past_start(defn, time.time())
        if too_old and pipeline.activated_at is None and self.engine.refuse_old_starts:
            raise invalid(defn.redact(too_old))

    def deactivate_pipeline(self, body: Body) -> Body:
        engine = self.engine
        with engine.cond:
            pipeline = engine.pipeline(body["pipelineId"])
            now = time.time()
            if pipeline.state == "SCHEDULED":
                pipeline.state = "INACTIVE"
                engine.touch(pipeline)
            if body.get("cancelActive", True):
                for run in list(engine.runs[pipeline.id].values()):
                    if run.sphere == "INSTANCE":
                        lifecycle.cancel_instance(engine, run, now)
            engine.commit()
        return {}

    def list_pipelines(self, body: Body) -> Body:
        with self.engine.cond:
            live = sorted(
                (p for p in self.engine.pipelines.values() if not p.deleted),
                key=lambda p: p.seq,
            )
        start = _marker(body.get("marker"))
        page = live[start : start + LIST_PAGE_SIZE]
        more = start + LIST_PAGE_SIZE < len(live)
        answer: Body = {
            "pipelineIdList": [{"id": p.id, "name": p.name} for p in page],
            "hasMoreResults": more,
        }
        if more:
            answer["marker"] = str(start + LIST_PAGE_SIZE)
        return answer

    def describe_pipelines(self, body: Body) -> Body:
        ids = body["pipelineIds"]
        if len(ids) > 25:
            raise invalid("pipelineIds: at most 25 ids per call")
        with self.engine.cond:
            pipelines = [self.engine.pipeline(pid) for pid in ids]
            return {"pipelineDescriptionList": [self._describe(p) for p in pipelines]}

    def _describe(self, pipeline: Pipeline) -> Body:
        fields = [
            ("@pipelineState", pipeline_state(self.engine, pipeline)),
            ("@healthStatus", health(self.engine, pipeline)),
            ("name", pipeline.name),
            ("uniqueId", pipeline.unique_id),
            ("@creationTime", wall_time(pipeline.created_at)),
            ("@sphere", "PIPELINE"),
            ("pipelineCreator", pipeline.creator),
            ("@id", pipeline.id),
            ("@userId", pipeline.creator),
            ("@accountId", "000000000000"),
            ("@version", str(pipeline.version)),
        ]
        if pipeline.description:
            fields.append(("description", pipeline.description))
        if pipeline.latest_run_time:
            fields.append(("@latestRunTime", pipeline.latest_run_time))
        if pipeline.activated_at:
            fields.append(("@lastActivationTime", wall_time(pipeline.activated_at)))
        answer: Body = {
            "pipelineId": pipeline.id,
            "name": pipeline.name,
            "fields": [field_json(k, v, False) for k, v in fields],
            "tags": [{"key": k, "value": v} for k, v in pipeline.tags.items()],
        }
        if pipeline.description:
            answer["description"] = pipeline.description
        return answer

    def delete_pipeline(self, body: Body) -> Body:
        engine = self.engine
        with engine.cond:
            pipeline = engine.pipeline(body["pipelineId"])
            pipeline.deleted = True
            pipeline.state = "DELETED"
            engine.touch(pipeline)
            engine.commit()
        return {}

    def add_tags(self, body: Body) -> Body:
        with self.engine.cond:
            pipeline = self.engine.pipeline(body["pipelineId"])
            tags = {**pipeline.tags, **{t["key"]: t["value"] for t in body["tags"]}}
            if len(tags) > MAX_TAGS:
                raise invalid(f"tags: at most {MAX_TAGS} tags per pipeline")
            pipeline.tags = tags
            self.engine.touch(pipeline)
            self.engine.commit()
        return {}

    def remove_tags(self, body: Body) -> Body:
        with self.engine.cond:
            pipeline = self.engine.pipeline(body["pipelineId"])
            for key in body["tagKeys"]:
                pipeline.tags.pop(key, None)
            self.engine.touch(pipeline)
            self.engine.commit()
        return {}


def pipeline_state(engine: Engine, pipeline: Pipeline) -> str:
    if pipeline.state in {"PENDING", "INACTIVE", "DELETED"}:
        return pipeline.state
    instances = [r for r in engine.runs[pipeline.id].values() if r.sphere == "INSTANCE"]
    ondemand = engine.definition(pipeline).schedule_type() == "ondemand"
    if ondemand and all(r.terminal for r in instances):
        return "FINISHED"
    return "SCHEDULED"


def health(engine: Engine, pipeline: Pipeline) -> str:
    latest = pipeline.latest_run_time
    failed = any(
        r.sphere == "INSTANCE"
        and r.status in FAILURES
        and (latest is None or r.scheduled_start == latest)
        for r in engine.runs[pipeline.id].values()
    )
    return "ERROR" if failed else "HEALTHY"


def _raw_definition(body: Body) -> Body:
    return {
        "objects": body["pipelineObjects"],
        "parameters": body.get("parameterObjects", []),
        "values": body.get("parameterValues", []),
    }


def _marker(marker: str | None) -> int:
    if not marker:
        return 0
    if not marker.isdigit():
        raise invalid(f"marker {marker[:64]!r} is not one this service issued")
    return int(marker)
