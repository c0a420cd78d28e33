"""The pipeline definition file, and its translation to and from the API shapes.

Owns: reading the JSON file that ``aws datapipeline put-pipeline-definition
--pipeline-definition file://x.json`` takes, turning it into the ``pipelineObjects``,
``parameterObjects`` and ``parameterValues`` of PutPipelineDefinition, turning those
back into a file (for GetPipelineDefinition); also the parameter values given apart
from the file (a values file, ``{"values": {...}}``, and the CLI's inline ``myX=v``
pairs). What a loaded definition says (its worker groups, a field an object
inherits, its secret values) left for ``definitionquery.py``, by concept.

Must not: import anything but the standard library, talk to a service, or evaluate
expressions (the service does).

Why: a file that works with the AWS CLI must work with ``dp-runner run --local``, and
back. So this mirrors the CLI's translator (awscli/customizations/datapipeline/
translator.py): ``name`` defaults to ``id``; the other keys become fields in sorted
key order; a list value becomes the key repeated; ``{"ref": "Id"}`` is a refValue and
anything else a stringValue; parameter attributes are built the same way; ``values``
maps an id to a string or a list (one parameterValue each). Going back, a repeated key
becomes a list. Unlike the CLI, it never mutates its input, and it rejects at once,
with a DefinitionError naming the object and the field, what the CLI would pass on for
botocore or the service to reject: a value that is not a string, a bad ``ref``, an
object that is not a JSON object, an id that is missing, empty or used twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import ConfigError

__all__ = [
    "Definition",
    "DefinitionError",
    "definition_from_json",
    "definition_to_json",
    "load_definition",
    "load_values",
    "values_from_pairs",
]


class DefinitionError(ConfigError, ValueError):
    """A definition file that cannot be translated; the message names where and why.
    A ``ConfigError`` (exit 78), as any input the runner is started with."""


@dataclass(frozen=True, slots=True)
class Definition:
    """A definition in the API shapes of PutPipelineDefinition."""

    pipeline_objects: list[dict[str, Any]]
    parameter_objects: list[dict[str, Any]]
    parameter_values: list[dict[str, Any]]


def load_definition(path: Path) -> Definition:
    """Read and translate a definition file. Raises DefinitionError naming ``path``."""
    doc = _read_json(path)
    try:
        return definition_from_json(doc)
    except DefinitionError as exc:
        raise DefinitionError(f"{path}: {exc}") from exc


def load_values(path: Path) -> list[dict[str, Any]]:
    """Read a values file, ``{"values": {"myX": "v", "myY": ["a", "b"]}}`` (what
    ``--parameter-values-uri file://...`` names), as ``parameterValues``. Raises
    DefinitionError naming ``path``."""
    doc = _read_json(path)
    if not isinstance(doc, Mapping) or "values" not in doc:
        raise DefinitionError(f'{path}: a values file is an object with a "values" key')
    try:
        return _parameter_values(doc["values"])
    except DefinitionError as exc:
        raise DefinitionError(f"{path}: {exc}") from exc


def values_from_pairs(pairs: Iterable[str]) -> list[dict[str, Any]]:
    """``parameterValues`` from the AWS CLI's inline syntax, ``myX=v myY=w``: split
    at the first ``=``; a repeated id gives an array. Raises DefinitionError for an
    item without ``=`` or with an empty id."""
    values = []
    for pair in pairs:
        parameter_id, equals, value = pair.partition("=")
        if not equals or not parameter_id:
            raise DefinitionError(f"{pair!r} is not PARAMETER=VALUE")
        values.append({"id": parameter_id, "stringValue": value})
    return values


def definition_from_json(doc: Mapping[str, Any]) -> Definition:
    """Translate a parsed definition file (file -> API). Raises DefinitionError."""
    if not isinstance(doc, Mapping):
        raise DefinitionError(f"a definition is a JSON object, not {_kind(doc)}")
    if "objects" not in doc:
        raise DefinitionError('missing "objects" key')
    objects = [_pipeline_object(obj, i) for i, obj in enumerate(_array(doc, "objects"))]
    parameters = [_parameter(obj, i) for i, obj in enumerate(_array(doc, "parameters"))]
    _check_unique(objects, "object")
    _check_unique(parameters, "parameter")
    return Definition(objects, parameters, _parameter_values(doc.get("values", {})))


def definition_to_json(
    pipeline_objects: Iterable[Mapping[str, Any]],
    parameter_objects: Iterable[Mapping[str, Any]] = (),
    parameter_values: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Translate API shapes back to a definition file (API -> file), as the CLI shows
    GetPipelineDefinition. ``parameters`` and ``values`` appear only when not empty."""
    doc: dict[str, Any] = {"objects": []}
    for api_object in pipeline_objects:
        current: dict[str, Any] = {"id": api_object["id"], "name": api_object["name"]}
        for field in api_object["fields"]:
            if "stringValue" in field:
                _add_value(current, field["key"], field["stringValue"])
            else:
                _add_value(current, field["key"], {"ref": field["refValue"]})
        doc["objects"].append(current)
    parameters = []
    for parameter in parameter_objects:
        current = {"id": parameter["id"]}
        for attribute in parameter["attributes"]:
            _add_value(current, attribute["key"], attribute["stringValue"])
        parameters.append(current)
    values: dict[str, Any] = {}
    for value in parameter_values:
        _add_value(values, value["id"], value["stringValue"])
    if parameters:
        doc["parameters"] = parameters
    if values:
        doc["values"] = values
    return doc


# ---- file -> API ---------------------------------------------------------------------
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DefinitionError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise DefinitionError(f"{path}: not UTF-8 text: {exc.reason}") from exc
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise DefinitionError(f"{path}: not valid JSON: {exc.msg} at {where}") from exc


def _kind(value: object) -> str:
    """JSON's name for the type of ``value``, for messages."""
    if value is None:
        return "null"
    names = {"dict": "an object", "list": "an array", "str": "a string"}
    name = type(value).__name__
    return names.get(name, f"a {'boolean' if name == 'bool' else 'number'}")


def _array(doc: Mapping[str, Any], key: str) -> list[Any]:
    items = doc.get(key, [])
    if not isinstance(items, list):
        raise DefinitionError(f'"{key}" must be an array, not {_kind(items)}')
    return items


def _identity(element: object, where: str) -> tuple[Mapping[str, Any], str]:
    if not isinstance(element, Mapping):
        raise DefinitionError(f"{where} must be a JSON object, not {_kind(element)}")
    if "id" not in element:
        raise DefinitionError(f'{where} has no "id" key: {json.dumps(element)[:200]}')
    element_id = element["id"]
    if not isinstance(element_id, str) or not element_id:
        raise DefinitionError(f'{where}: "id" must be a non-empty string')
    return element, element_id


def _pipeline_object(element: object, index: int) -> dict[str, Any]:
    obj, obj_id = _identity(element, f"objects[{index}]")
    name = obj.get("name", obj_id)
    if not isinstance(name, str) or not name:
        raise DefinitionError(f'object "{obj_id}": "name" must be a non-empty string')
    fields = [
        _field(f'object "{obj_id}"', key, item, refs=True)
        for key in sorted(obj)
        if key not in ("id", "name")
        for item in _items(obj[key])
    ]
    return {"id": obj_id, "name": name, "fields": fields}


def _parameter(element: object, index: int) -> dict[str, Any]:
    obj, parameter_id = _identity(element, f"parameters[{index}]")
    attributes = [
        _field(f'parameter "{parameter_id}"', key, item, refs=False)
        for key in sorted(obj)
        if key != "id"
        for item in _items(obj[key])
    ]
    return {"id": parameter_id, "attributes": attributes}


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _field(owner: str, key: str, item: Any, *, refs: bool) -> dict[str, str]:
    if isinstance(item, str):
        return {"key": key, "stringValue": item}
    if refs and isinstance(item, Mapping) and list(item) == ["ref"]:
        if isinstance(item["ref"], str) and item["ref"]:
            return {"key": key, "refValue": item["ref"]}
        raise DefinitionError(f'{owner}: field "{key}": "ref" must be a non-empty id')
    allowed = 'a string, a {"ref": "Id"}' if refs else "a string"
    raise DefinitionError(
        f'{owner}: field "{key}" must be {allowed} or a list of those, '
        f"not {_kind(item)} {json.dumps(item)[:100]}"
    )


def _parameter_values(values: Any) -> list[dict[str, Any]]:
    if not isinstance(values, Mapping):
        raise DefinitionError(f'"values" must be an object, not {_kind(values)}')
    result = []
    for parameter_id, value in values.items():
        for item in _items(value):
            if not isinstance(item, str):
                raise DefinitionError(
                    f'value of parameter "{parameter_id}" must be a string or a list '
                    f"of strings, not {_kind(item)}"
                )
            result.append({"id": parameter_id, "stringValue": item})
    return result


def _check_unique(objects: list[dict[str, Any]], what: str) -> None:
    seen: set[str] = set()
    for obj in objects:
        if obj["id"] in seen:
            raise DefinitionError(f'{what} id "{obj["id"]}" is used more than once')
        seen.add(obj["id"])


# ---- API -> file ---------------------------------------------------------------------
def _add_value(current: dict[str, Any], key: str, value: Any) -> None:
    """As the CLI does: a repeated key aggregates its values into a list."""
    if key not in current:
        current[key] = value
    elif isinstance(current[key], list):
        current[key].append(value)
    else:
        current[key] = [current[key], value]
