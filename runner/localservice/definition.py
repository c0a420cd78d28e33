"""A pipeline definition as the local service reads it: objects, parameters, values.

Owns: field lookup with inheritance (own fields, the `parent` chain, then
`Default`), what kind each object is (`catalog`'s kinds: activity, data node,
resource, precondition...), the graph's edges (an activity's data nodes and
resource, a data node's producers), worker group routing, expression evaluation
in an object's context (a field that uses an array parameter expands to one field
per value), and which values are masked:
those of `*my` parameters, plus what the object's `*` fields hold or use.
Parameters themselves are `parameters`'; the checks are `validation`'s.

Must not: touch runtime state. Runtime values (`@scheduledStartTime`...) come in
as a mapping from the caller.

Why: the same lookup serves validation, instance creation, task objects,
DescribeObjects(evaluateExpressions) and EvaluateExpression, so they cannot
disagree about what a field means.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from typing import Any

from runner.localservice.catalog import kind_of
from runner.localservice.expressions import (
    ExpressionError,
    evaluate,
    evaluate_all,
    parse_period,
    references,
)
from runner.localservice.fieldtypes import (
    SECONDS_OK,
    InvalidFieldError,
    parse_duration,
    parse_number,
)
from runner.localservice.model import Field
from runner.localservice.objecttype import ACTIVITY, DATA_NODE, RESOURCE
from runner.localservice.parameters import Parameters, redact

RUNNER_PRECONDITIONS = frozenset({"ShellCommandPrecondition", "Exists"})
# The system-managed preconditions (DG dp-concepts-preconditions), which the
# service checks itself (`preconditions`), never a runner: type -> the field that
# names what to check.
SERVICE_PRECONDITIONS = {
    "S3KeyExists": "s3Key",
    "S3PrefixNotEmpty": "s3Prefix",
    "DynamoDBTableExists": "tableName",
    "DynamoDBDataExists": "tableName",
}
_MAX_DEPTH = 16
# Runtime fields an expression may name; validation evaluates with these present.
RUNTIME_KEYS = (
    "@scheduledStartTime",
    "@scheduledEndTime",
    "@actualStartTime",
    "@actualEndTime",
    "@pipelineId",
    "@id",
    "@status",
    "@attemptCount",
    "@triesLeft",
)


class Definition:
    """Read-only view of one definition (raw API dicts). Cheap to build."""

    def __init__(
        self, raw: Mapping[str, Any], values: list[dict[str, Any]] | None = None
    ) -> None:
        self.raw = raw
        self.objects: dict[str, tuple[str, list[Field]]] = {}
        for obj in raw.get("objects", []):
            fields = [
                (f["key"], f["refValue"], True)
                if "refValue" in f
                else (f["key"], f.get("stringValue", ""), False)
                for f in obj.get("fields", [])
            ]
            self.objects[obj["id"]] = (obj.get("name", obj["id"]), fields)
        self.params = Parameters(
            raw.get("parameters", []),
            values if values is not None else raw.get("values", []),
        )
        self.masked = frozenset(self._masked_values())

    def _masked_values(self) -> set[str]:
        """`*my` parameter values, `*` fields' literal values, and the values of
        the parameters that `*` fields use (`"*password": "#{myPassword}"`)."""
        found = self.params.masked_values()
        for _, fields in self.objects.values():
            for key, value, is_ref in fields:
                if not key.startswith("*") or is_ref:
                    continue
                if "#{" not in value:
                    found.add(value)
                    continue
                try:
                    names = references(value)
                except ExpressionError:
                    continue  # validation reports it
                for name in names:
                    if name in self.params:
                        found.update(self.params.by_id[name].texts)
        found.discard("")
        return found

    def redact(self, text: str) -> str:
        """text with this definition's masked values blanked out."""
        return redact(text, self.masked) if self.masked else text

    # ---- field lookup -------------------------------------------------------
    def chain(self, obj_id: str) -> list[str]:
        """The object, its parent chain, then Default (no repeats, no cycles)."""
        seen: list[str] = []
        current: str | None = obj_id
        while current is not None and current in self.objects and current not in seen:
            seen.append(current)
            parents = [v for k, v, ref in self.objects[current][1] if k == "parent"]
            current = parents[0] if parents else None
        if "Default" in self.objects and "Default" not in seen:
            seen.append("Default")
        return seen

    def lookup(self, obj_id: str, key: str) -> list[Field]:
        for owner in self.chain(obj_id):
            found = [f for f in self.objects[owner][1] if f[0] == key]
            if found:
                return found
        return []

    def first(self, obj_id: str, key: str) -> str | None:
        found = self.lookup(obj_id, key)
        return found[0][1] if found else None

    def refs(self, obj_id: str, key: str) -> list[str]:
        return [value for _, value, is_ref in self.lookup(obj_id, key) if is_ref]

    def type_of(self, obj_id: str) -> str:
        return self.first(obj_id, "type") or ""

    def merged(self, obj_id: str) -> list[Field]:
        """Own fields plus inherited parent-chain fields (not Default's)."""
        fields: list[Field] = []
        keys: set[str] = set()
        for owner in self.chain(obj_id):
            if owner == "Default" and owner != obj_id:
                break
            own = [f for f in self.objects[owner][1] if f[0] not in keys]
            fields.extend(own)
            keys.update(f[0] for f in own)
        return fields

    # ---- kinds and routing --------------------------------------------------
    def kind(self, obj_id: str) -> str:
        """`catalog`'s kind of the object's type ("" for Default and templates)."""
        return "" if obj_id == "Default" else kind_of(self.type_of(obj_id))

    def is_activity(self, obj_id: str) -> bool:
        return self.kind(obj_id) == ACTIVITY

    def activities(self) -> list[str]:
        return [obj_id for obj_id in self.objects if self.is_activity(obj_id)]

    def data_nodes_of(self, activity: str) -> list[str]:
        """The activity's input and output data nodes (DG dp-concepts-datanodes)."""
        found = self.refs(activity, "input") + self.refs(activity, "output")
        return [n for n in dict.fromkeys(found) if self.kind(n) == DATA_NODE]

    def producers(self, node: str) -> list[str]:
        """The activities that write the data node (it is their `output` and not
        also their `input`): its instance waits for theirs, as on AWS, where a
        data node is ready once the activity producing it has finished."""
        return [
            a
            for a in self.activities()
            if node in self.refs(a, "output") and node not in self.refs(a, "input")
        ]

    def resource_of(self, activity: str) -> str:
        """The Ec2Resource or EmrCluster the activity runs on, or ""."""
        found = [r for r in self.refs(activity, "runsOn") if self.kind(r) == RESOURCE]
        return found[0] if found else ""

    def route(self, obj_id: str, runs_on_group: str, guarded: str = "") -> str:
        """The worker group an object's attempts go to. `runsOn` wins over
        `workerGroup` ("If you provide a runsOn value and workerGroup exists,
        workerGroup is ignored", DG dp-object-shellcommandactivity). A
        `#{myParam}` in `workerGroup` is evaluated (runners poll with the name it
        gives). A precondition goes where what it guards goes; a data node where
        the first activity reading or writing it goes."""
        if self.refs(obj_id, "runsOn"):
            return runs_on_group
        group = self.first(obj_id, "workerGroup")
        if group and "#{" in group:
            with contextlib.suppress(ExpressionError, KeyError, ValueError, TypeError):
                group = self.evaluate_text(group, obj_id, {})
        if group:
            return group
        if not guarded and self.kind(obj_id) == DATA_NODE:
            users = [a for a in self.activities() if obj_id in self.data_nodes_of(a)]
            guarded = users[0] if users else ""
        return self.route(guarded, runs_on_group) if guarded else ""

    def schedule_type(self) -> str:
        declared = (
            self.first("Default", "scheduleType") if "Default" in self.objects else None
        )
        if declared:
            return declared.lower()
        if any(self.refs(a, "schedule") for a in self.activities()):
            return "cron"
        return "ondemand"

    def period(
        self,
        obj_id: str,
        key: str,
        default: dt.timedelta,
        runtime: Mapping[str, object] | None = None,
    ) -> dt.timedelta:
        """The field, evaluated in obj_id's context, as a duration ("N seconds"
        only for the SECONDS_OK keys). Raises InvalidFieldError."""
        text = self.value(obj_id, key, runtime)
        if not text:
            return default
        try:
            return parse_duration(text) if key in SECONDS_OK else parse_period(text)
        except ValueError as exc:
            raise InvalidFieldError(key, self.redact(str(exc))) from exc

    def number(
        self,
        obj_id: str,
        key: str,
        default: int,
        runtime: Mapping[str, object] | None = None,
    ) -> int:
        """The field, evaluated, as a whole number (`parse_number`). Raises
        InvalidFieldError."""
        text = self.value(obj_id, key, runtime)
        try:
            return parse_number(text) if text else default
        except ValueError as exc:
            raise InvalidFieldError(key, self.redact(str(exc))) from exc

    def value(
        self, obj_id: str, key: str, runtime: Mapping[str, object] | None = None
    ) -> str | None:
        """The field's first value with its expressions evaluated (trial runtime
        values when `runtime` is None). Raises InvalidFieldError."""
        text = self.first(obj_id, key)
        if not text or "#{" not in text:
            return text
        try:
            return self.evaluate_text(
                text, obj_id, trial_runtime("") if runtime is None else runtime
            ).strip()
        except (ExpressionError, KeyError, ValueError, TypeError) as exc:
            raise InvalidFieldError(key, self.redact(f"{exc!s}")) from exc

    # ---- parameters and expressions ------------------------------------------
    def evaluate_text(
        self, text: str, obj_id: str, runtime: Mapping[str, object], depth: int = 0
    ) -> str:
        """Evaluate every `#{...}` in text in the context of obj_id."""
        if "#{" not in text:
            return text
        if depth > _MAX_DEPTH:
            raise ExpressionError(f"expressions nest deeper than {_MAX_DEPTH} levels")
        return evaluate(
            text, lambda ref: self._resolve(ref, obj_id, runtime, depth + 1)
        )

    def expand_text(
        self, text: str, obj_id: str, runtime: Mapping[str, object]
    ) -> list[str]:
        """Like `evaluate_text`, but a list value (an array parameter, a repeated
        field) gives one string per element: the values of a repeated field."""
        if "#{" not in text:
            return [text]
        return evaluate_all(text, lambda ref: self._resolve(ref, obj_id, runtime, 1))

    def evaluated(
        self, fields: list[Field], obj_id: str, runtime: Mapping[str, object]
    ) -> list[Field]:
        """The fields with their expressions evaluated; a field whose value is a
        list becomes that field repeated. Raises as `evaluate_text`."""
        return [
            (key, shown, is_ref)
            for key, value, is_ref in fields
            for shown in (
                [value] if is_ref else self.expand_text(value, obj_id, runtime)
            )
        ]

    def _resolve(
        self, ref: str, obj_id: str, runtime: Mapping[str, object], depth: int
    ) -> object:
        head, _, rest = ref.partition(".")
        if rest:
            return self._resolve(rest, self._target(head, obj_id), runtime, depth)
        if ref.startswith("@"):
            if ref == "@id":
                return obj_id
            return runtime[ref]
        if ref in self.params:
            return self.params.value(ref)
        found = self.lookup(obj_id, ref)
        if not found:
            raise KeyError(ref)
        values = [
            v if is_ref else self.evaluate_text(v, obj_id, runtime, depth)
            for _, v, is_ref in found
        ]
        return values if len(values) > 1 else values[0]

    def _target(self, head: str, obj_id: str) -> str:
        if head == "node":
            return obj_id
        refs = self.refs(obj_id, head)
        if refs:
            return refs[0]
        if head in self.objects:
            return head
        raise KeyError(head)


def trial_runtime(pipeline_id: str) -> dict[str, object]:
    now = dt.datetime.now(tz=dt.UTC).replace(microsecond=0)
    return {
        "@scheduledStartTime": now,
        "@scheduledEndTime": now,
        "@actualStartTime": now,
        "@actualEndTime": now,
        "@pipelineId": pipeline_id,
        "@status": "RUNNING",
        "@attemptCount": 1,
        "@triesLeft": 2,
    }
