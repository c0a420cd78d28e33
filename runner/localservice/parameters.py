"""Parameter objects and parameter values: what ``#{myParam}`` stands for.

Owns: reading a definition's ``parameterObjects`` and ``parameterValues`` (those of
PutPipelineDefinition, or those ActivatePipeline passes), the value each parameter
has in an expression, the parameter checks behind validationErrors and
validationWarnings, and masking: ``redact`` blanks masked values (``*my…``
parameters, and what ``definition`` adds: the values its ``*`` fields use) out of
text, and ``RedactingFilter`` out of the service's own log records.

Must not: evaluate expressions or read pipeline objects (``definition`` does both).

Why: AWS's own sample definitions rely on every documented attribute, on masked
``*my`` ids and on values given for parameters that were never declared, and AWS
accepts them; so must the local service. It must also refuse what AWS refuses (a
required parameter with no value, a value outside ``allowedValues``, a non-number
for an ``Integer``), naming the parameter, and never show a masked value.

Attributes (DG dp-custom-templates, and AWS's console templates): ``id`` (``my…``,
or ``*my…`` for a value to mask), ``type`` (``String``, the default, ``Integer``,
``Double``, ``AWS::S3::ObjectKey``), ``description``, ``optional`` (default
false), ``allowedValues`` (one value or a list), ``default`` (a list for an
array), ``isArray``, ``watermark``, ``helpText`` and ``helpLink``. Any other
attribute is ignored with a warning, except the user's own ``my…`` ones (AWS's
samples carry ``myComment``).

A parameter's value, as an expression sees it:
- the values given for its id (a repeated id is several values: that is how AWS
  gives an array), else its ``default``;
- ``Integer`` and ``Double`` values as numbers, so that arithmetic works; the rest,
  ``AWS::S3::ObjectKey`` included, as text (an ObjectKey that is not an ``s3://``
  URI only gets a warning);
- an array (``isArray: true``) as a list: a field that uses it becomes one field
  per value (``Definition.expand``), as an AWS list is a repeated key;
- an optional parameter with no value and no default as the empty string. AWS
  documents nothing for this case; the console leaves an unset optional field
  blank, and an empty string keeps the text around the reference
  (``--groups #{myGroups}``) instead of failing the whole field;
- a value for an id no parameter object declares (AWS accepts these) as a
  ``String`` parameter, an array if the id repeats, provided the id starts with
  ``my`` or ``*my``; other ids are ignored with a warning, so that they cannot
  shadow an object's field of the same name.
A required parameter with no value and no default is an error of the definition;
expressions see it as the empty string meanwhile, so that the error is reported
once, on the parameter, and an errored definition is never activated.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

TYPES = ("String", "Integer", "Double", "AWS::S3::ObjectKey")
ATTRIBUTES = frozenset(
    {
        "type",
        "description",
        "optional",
        "allowedValues",
        "default",
        "isArray",
        "watermark",
        "helpText",
        "helpLink",
    }
)
MAX_PARAMETERS = 50  # DG dp-custom-templates: "an upper limit of 50 parameters"
MASK = "****"
_NUMBERS = {
    "Integer": re.compile(r"\s*[-+]?\d+\s*"),
    "Double": re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*"),
}

Report = dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class Parameter:
    """One parameter: its attributes (each a tuple: a key may repeat) and the
    values given for it."""

    id: str
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    given: tuple[str, ...] = ()
    declared: bool = True

    def attribute(self, key: str, default: str = "") -> str:
        found = self.attributes.get(key, ())
        return found[0] if found else default

    @property
    def type(self) -> str:
        return self.attribute("type", "String")

    @property
    def optional(self) -> bool:
        return self.attribute("optional").lower() == "true"

    @property
    def array(self) -> bool:
        if not self.declared:
            return len(self.given) > 1
        return self.attribute("isArray").lower() == "true"

    @property
    def masked(self) -> bool:
        return self.id.startswith("*")

    @property
    def texts(self) -> tuple[str, ...]:
        """The values in force: those given, else the default."""
        return self.given or self.attributes.get("default", ())

    def value(self) -> object:
        """The value for expressions (see the module docstring)."""
        converted = [self._convert(text) for text in self.texts]
        if self.array:
            return converted or ""
        return converted[0] if converted else ""

    def _convert(self, text: str) -> object:
        number = _NUMBERS.get(self.type)
        if number is None or not number.fullmatch(text):
            return text  # a bad number is reported by `check`
        return int(text) if self.type == "Integer" else float(text)


class Parameters:
    """A definition's parameters with their values. Read-only; cheap to build."""

    def __init__(
        self,
        objects: Iterable[Mapping[str, Any]],
        values: Iterable[Mapping[str, Any]],
    ) -> None:
        self.given: dict[str, list[str]] = {}
        for value in values:
            self.given.setdefault(value["id"], []).append(value["stringValue"])
        self.declared: dict[str, Parameter] = {}
        for obj in objects:
            attributes: dict[str, list[str]] = {}
            for attribute in obj.get("attributes", []):
                key, text = attribute["key"], attribute["stringValue"]
                attributes.setdefault(key, []).append(text)
            self.declared[obj["id"]] = Parameter(
                obj["id"],
                {k: tuple(v) for k, v in attributes.items()},
                tuple(self.given.get(obj["id"], ())),
            )
        self.by_id = dict(self.declared)
        for name, texts in self.given.items():
            if name not in self.declared and _usable(name):
                self.by_id[name] = Parameter(name, {}, tuple(texts), declared=False)

    def __contains__(self, name: str) -> bool:
        return name in self.by_id

    def value(self, name: str) -> object:
        """The value of a parameter for expressions. Raises KeyError if unknown."""
        return self.by_id[name].value()

    def masked_values(self) -> set[str]:
        """Values and defaults of the ``*my…`` parameters, declared or not."""
        found = {
            text
            for p in self.declared.values()
            if p.masked
            for text in p.attributes.get("default", ())
        }
        for name, texts in self.given.items():
            if name.startswith("*"):
                found.update(texts)
        return found

    def check(self) -> tuple[Report, Report]:
        """(errors, warnings) about the parameters, keyed by parameter id."""
        errors: Report = {}
        warnings: Report = {}
        for index, parameter in enumerate(self.declared.values()):
            found = _check_declared(parameter)
            if index == MAX_PARAMETERS:
                found.append(f"A definition has at most {MAX_PARAMETERS} parameters")
            errors[parameter.id] = found
            warnings[parameter.id] = _warnings(parameter)
        for name in self.given:
            if name not in self.by_id:
                warnings[name] = [
                    f"Value for '{name}', which is not a parameter (parameter ids "
                    "start with 'my', or '*my'); ignored"
                ]
        return errors, warnings


def _usable(name: str) -> bool:
    return name.startswith(("my", "*my"))


def _check_declared(parameter: Parameter) -> list[str]:
    name = parameter.id
    errors: list[str] = []
    if not _usable(name):
        errors.append(
            f"Parameter id '{name}' must start with 'my' (or '*my' to mask its value)"
        )
    if parameter.type not in TYPES:
        errors.append(
            f"Parameter '{name}': unknown type '{parameter.type}' "
            f"(one of {', '.join(TYPES)})"
        )
    for key in ("optional", "isArray"):
        text = parameter.attribute(key)
        if text and text.lower() not in {"true", "false"}:
            errors.append(f"Parameter '{name}': {key} must be 'true' or 'false'")
    texts = parameter.texts
    if not texts and not parameter.optional:
        errors.append(
            f"Parameter '{name}' needs a value: it is not optional and has no default"
        )
    if len(texts) > 1 and not parameter.array:
        errors.append(
            f"Parameter '{name}' has {len(texts)} values but is not an array "
            "(isArray: true)"
        )
    return errors + _check_values(parameter)


def _check_values(parameter: Parameter) -> list[str]:
    errors: list[str] = []
    allowed = parameter.attributes.get("allowedValues", ())
    number = _NUMBERS.get(parameter.type)
    for text in parameter.texts:
        shown = "its value" if parameter.masked else repr(text)
        if number is not None and not number.fullmatch(text):
            errors.append(
                f"Parameter '{parameter.id}' is of type {parameter.type}: "
                f"{shown} is not a number of that type"
            )
        if allowed and text not in allowed:
            errors.append(
                f"Parameter '{parameter.id}': {shown} is not one of its "
                f"allowedValues ({', '.join(allowed)})"
            )
    return errors


def _warnings(parameter: Parameter) -> list[str]:
    warnings = [
        f"Parameter '{parameter.id}': attribute '{key}' is not one AWS documents; "
        "ignored"
        for key in parameter.attributes
        if key not in ATTRIBUTES and not key.startswith("my")
    ]
    if parameter.type == "AWS::S3::ObjectKey":
        warnings.extend(
            f"Parameter '{parameter.id}' is an AWS::S3::ObjectKey: "
            f"{'its value' if parameter.masked else repr(text)} is not an s3:// URI"
            for text in parameter.texts
            if not text.startswith("s3://")
        )
    return warnings


# ---- masking -------------------------------------------------------------------------
def redact(text: str, masked: Iterable[str]) -> str:
    """``text`` with every masked value replaced by ``MASK``: as written, and as
    ``repr``, JSON or a bytes ``repr`` would escape it, once or twice (a message
    quotes a field with ``!r``; a log line renders it again). Pure; thread-safe."""
    forms = {form for value in masked if value for form in _forms(value)}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


_ESCAPES: tuple[Callable[[str], str], ...] = (
    lambda text: json.dumps(text)[1:-1],
    lambda text: repr(text)[1:-1],
    lambda text: repr(text.encode())[2:-1],
)


def _forms(value: str) -> set[str]:
    once = {value, *(escape(value) for escape in _ESCAPES)}
    return (once | {escape(form) for form in once for escape in _ESCAPES}) - {""}


class RedactingFilter(logging.Filter):
    """A logger filter that blanks masked values out of a record's message and
    traceback before any handler sees it. ``masked`` is read on every record, from
    any thread, without a lock: it must return an immutable set."""

    def __init__(self, masked: Callable[[], frozenset[str]]) -> None:
        super().__init__()
        self._masked = masked

    def filter(self, record: logging.LogRecord) -> bool:
        masked = self._masked()
        if not masked:
            return True
        message = original = record.getMessage()
        if record.exc_info is not None:
            trace = logging.Formatter().formatException(record.exc_info)
            if redact(trace, masked) != trace:
                # formatters render exc_info themselves: fold the trace into the
                # message, where it is redacted with the rest
                message = f"{message}\n{trace}"
                record.exc_info = None
                record.exc_text = None
        redacted = redact(message, masked)
        if redacted != original:
            record.msg, record.args = redacted, None
        return True
