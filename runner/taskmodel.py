"""Value objects shared by the runner's layers: tasks, statuses, stop reasons.

This module owns the shapes, and the pure rules that go with them: how a task object
is read (design.md §4) and how a final status is cut to the API's limits. It does no
I/O and imports nothing but ``errors``, so every layer can use it and tests can build
values by hand. An attempt's folder and how its process ended are
``attempt.py``'s (split by concept).

Secrets are masked at the source: the value of a field whose key starts with ``*``
(``*password``) becomes ``***`` wherever a task, an object or a field becomes text
here (reprs, the dump of a malformed object in an error message); ``secret_values``
finds them even in a task too malformed to parse, so that the log's last processor
(``logs.mask_values``) can mask them in every line, whatever else leaks them.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.errors import ActivityError
from runner.masking import MASK, masked, redact

#: errorId and errorStackTrace are at most 1024 characters in the model; we keep them
#: to 1024 UTF-8 *bytes*, which is never more characters than that.
ERROR_ID_MAX_BYTES = 1024
STACK_TRACE_MAX_BYTES = 1024
#: errorMessage is unbounded in the model; a few KB is what a person reads.
ERROR_MESSAGE_MAX_BYTES = 4096

# The API's string pattern allows TAB, LF, CR and everything from U+0020 except
# surrogates and U+FFFE/U+FFFF. Everything else is stripped before it is sent.
_NOT_XML_SAFE = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


class TaskStatus(enum.StrEnum):
    """The three statuses SetTaskStatus takes."""

    FINISHED = "FINISHED"
    FAILED = "FAILED"
    FALSE = "FALSE"


class StopReason(enum.Enum):
    """Why an attempt was stopped before it ended by itself (style.md: every stop
    has one). Set on the attempt's ``StopFlag``, first reason wins; ``verdict.py``
    maps each to exactly one final call."""

    CANCELED = "canceled"  # the service answered canceled: true
    LOST = "lost"  # the task or its pipeline is gone (TaskNotFound, PipelineDeleted)
    LEASE_EXPIRED = "lease_expired"  # no heartbeat landed within lease_timeout
    TIMEOUT = "timeout"  # the attempt ran past its attemptTimeout
    DRAIN_EXPIRED = "drain_expired"  # the runner is stopping and the drain ran out
    FAST_STOP = "fast_stop"  # a second stop signal: kill now


@dataclass(frozen=True, slots=True)
class Ref:
    """A field value that names another object (``refValue``)."""

    id: str


FieldValue = str | Ref


@dataclass(frozen=True, slots=True)
class PipelineObject:
    """One object of a task: ``{id, name, fields: [{key, stringValue | refValue}]}``."""

    id: str
    name: str
    fields: tuple[tuple[str, FieldValue], ...]
    #: ``fields`` grouped by key, built once: every lookup walks the lineage.
    _by_key: dict[str, list[FieldValue]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_key: dict[str, list[FieldValue]] = {}
        for key, value in self.fields:
            by_key.setdefault(key, []).append(value)
        object.__setattr__(self, "_by_key", by_key)

    def __repr__(self) -> str:
        shown = tuple((k, MASK if k.startswith("*") else v) for k, v in self.fields)
        return f"PipelineObject(id={self.id!r}, name={self.name!r}, fields={shown!r})"

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> PipelineObject:
        """Build from the API shape; raises ``ActivityError`` when it is malformed
        (its message shows the object with ``*``-field values masked)."""
        try:
            fields: list[tuple[str, FieldValue]] = []
            for item in raw.get("fields", []):
                key = str(item["key"])
                if "refValue" in item:
                    fields.append((key, Ref(str(item["refValue"]))))
                else:
                    fields.append((key, str(item.get("stringValue", ""))))
            obj_id = str(raw["id"])
            return cls(
                id=obj_id, name=str(raw.get("name", obj_id)), fields=tuple(fields)
            )
        except (KeyError, TypeError, AttributeError) as exc:
            dump = repr(masked(raw))
            raise ActivityError(
                "MalformedTaskObject",
                f"object {dump:.200} is malformed: {type(exc).__name__}: {exc}",
            ) from exc

    def values(self, key: str) -> list[FieldValue]:
        """Every value of ``key`` in order (a key that repeats is a list)."""
        return list(self._by_key.get(key, ()))


#: How a field is looked up when the attempt does not carry it (design.md §4).
_INHERIT_KEYS = ("@instanceParent", "@componentParent", "parent")


@dataclass(frozen=True, slots=True)
class Task:
    """What PollForTask handed out: ``{taskId, pipelineId, attemptId, objects}``."""

    task_id: str
    pipeline_id: str
    attempt_id: str
    objects: Mapping[str, PipelineObject]
    #: The attempt's lineage, walked once on first use (the objects never change).
    _attempt_lineage: tuple[PipelineObject, ...] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> Task:
        """Parse a ``taskObject``. A task without ids cannot even be reported, so
        that raises ``KeyError``; a malformed object map raises ``ActivityError``."""
        task_id = str(raw["taskId"])
        objects_raw = raw.get("objects") or {}
        if not isinstance(objects_raw, Mapping):
            objects_raw = {}
        objects = {}
        for key, obj in objects_raw.items():
            objects[str(key)] = (
                PipelineObject.from_wire(obj)
                if isinstance(obj, Mapping)
                else PipelineObject(id=str(key), name=str(key), fields=())
            )
        return cls(
            task_id=task_id,
            pipeline_id=str(raw.get("pipelineId", "")),
            attempt_id=str(raw.get("attemptId", "")),
            objects=objects,
        )

    @property
    def digest(self) -> str:
        """A short, stable stand-in for the ~900-character task id, for logs."""
        return digest(self.task_id)

    @property
    def attempt(self) -> PipelineObject:
        """The attempt object; ``ActivityError(MissingAttemptObject)`` when absent."""
        try:
            return self.objects[self.attempt_id]
        except KeyError:
            raise ActivityError(
                "MissingAttemptObject",
                f"the task has no object for its attempt id {self.attempt_id!r}",
            ) from None

    def lineage(self, start: PipelineObject | None = None) -> Iterator[PipelineObject]:
        """The objects a field is inherited through, nearest first: the attempt,
        its instance, its component, the ``parent`` chain, then ``Default``.
        Objects missing from the task are skipped; cycles are cut."""
        if start is None or start is self.objects.get(self.attempt_id):
            if self._attempt_lineage is None:
                walked = tuple(self._walk(self.attempt))
                object.__setattr__(self, "_attempt_lineage", walked)
            return iter(self._attempt_lineage or ())
        return self._walk(start)

    def _walk(self, start: PipelineObject) -> Iterator[PipelineObject]:
        seen: set[str] = set()
        queue = [start]
        while queue:
            obj = queue.pop(0)
            if obj.id in seen:
                continue
            seen.add(obj.id)
            yield obj
            for key in _INHERIT_KEYS:
                queue.extend(
                    self.objects[v.id]
                    for v in obj.values(key)
                    if isinstance(v, Ref) and v.id in self.objects
                )
        default = self.objects.get("Default")
        if default is not None and default.id not in seen:
            yield default

    def get_all(
        self, key: str, start: PipelineObject | None = None
    ) -> list[FieldValue]:
        """Every value of ``key`` from the nearest object that has it, else ``[]``."""
        for obj in self.lineage(start):
            values = obj.values(key)
            if values:
                return values
        return []

    def get(self, key: str, start: PipelineObject | None = None) -> FieldValue | None:
        """The first value of ``key`` (see ``get_all``), or ``None``."""
        values = self.get_all(key, start)
        return values[0] if values else None

    def get_str(self, key: str, start: PipelineObject | None = None) -> str | None:
        """A string field; ``ActivityError(InvalidField)`` when it is a reference."""
        value = self.get(key, start)
        if isinstance(value, Ref):
            raise ActivityError(
                "InvalidField", f"field {key!r} must be a string, not a reference"
            )
        return value

    def missing_refs(self) -> list[str]:
        """Ids that some object refers to but the task does not carry, sorted."""
        return sorted(
            {
                value.id
                for obj in self.objects.values()
                for _key, value in obj.fields
                if isinstance(value, Ref) and value.id not in self.objects
            }
        )

    def secrets(self) -> list[str]:
        """Values of ``*``-fields anywhere in the task, to redact from reports."""
        return [
            value
            for obj in self.objects.values()
            for key, value in obj.fields
            if key.startswith("*") and isinstance(value, str) and value
        ]

    def __repr__(self) -> str:
        return (
            f"Task(task_id={digest(self.task_id)!r}, pipeline_id={self.pipeline_id!r}, "
            f"attempt_id={self.attempt_id!r}, objects={list(self.objects.values())!r})"
        )


@dataclass(frozen=True, slots=True)
class FinalStatus:
    """The arguments of one SetTaskStatus call, already cut to the API's limits."""

    status: TaskStatus
    error_id: str | None = None
    error_message: str | None = None
    error_stack_trace: str | None = None

    @classmethod
    def failed(
        cls,
        error_id: str,
        message: str,
        stack_trace: str = "",
        secrets: tuple[str, ...] | list[str] = (),
    ) -> FinalStatus:
        """A FAILED status with every error field redacted, cleaned and cut."""
        error_id = clean_text(redact(error_id, secrets), ERROR_ID_MAX_BYTES)
        while error_id.startswith("Service_"):  # reserved by the service
            error_id = error_id.removeprefix("Service_")
        return cls(
            status=TaskStatus.FAILED,
            error_id=error_id or "Failed",
            error_message=clean_text(redact(message, secrets), ERROR_MESSAGE_MAX_BYTES),
            error_stack_trace=clean_text(
                redact(stack_trace, secrets), STACK_TRACE_MAX_BYTES, keep="tail"
            )
            or None,
        )

    def to_api(self) -> dict[str, str]:
        """The SetTaskStatus keyword arguments, without ``taskId``."""
        args = {"taskStatus": self.status.value}
        if self.error_id:
            args["errorId"] = self.error_id
        if self.error_message:
            args["errorMessage"] = self.error_message
        if self.error_stack_trace:
            args["errorStackTrace"] = self.error_stack_trace
        return args


def digest(task_id: str) -> str:
    """A short, stable stand-in for a task id in logs: 12 hex digits of its SHA-256."""
    return hashlib.sha256(task_id.encode()).hexdigest()[:12]


def clean_text(text: str, max_bytes: int, keep: str = "head") -> str:
    """Make ``text`` XML-safe (no ANSI escapes, no control characters but TAB, LF
    and CR) and cut it to ``max_bytes`` of UTF-8 on a character boundary, keeping
    the ``head`` or the ``tail``."""
    text = _NOT_XML_SAFE.sub("", _ANSI_ESCAPE.sub("", text))
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    if keep == "tail":
        return data[-max_bytes:].decode("utf-8", errors="ignore")
    return data[:max_bytes].decode("utf-8", errors="ignore")
