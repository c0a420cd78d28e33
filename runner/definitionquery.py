"""Questions asked of a loaded definition: its worker groups, the field an object
inherits, and the values a log must never show.

Owns the plain ``#{myParameter}`` substitution these answers need (the value
given, else the parameter's default). Must not: evaluate any other expression
(only the service can: a runner must poll with the evaluated name), read files,
or talk to a service. Split from ``pipelinefile.py`` by concept: that module
translates the file; this one reads what it says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from runner.pipelinefile import Definition, DefinitionError

_PARAMETER_REF = re.compile(r"#\{\s*(\*?[A-Za-z_][A-Za-z0-9_]*)\s*\}")
_NAME = re.compile(r"\*?[A-Za-z_][A-Za-z0-9_]*")


def _parameter_map(defn: Definition) -> dict[str, list[str]]:
    """Each parameter's values: those given, else its default."""
    params: dict[str, list[str]] = {}
    for parameter in defn.parameter_objects:
        for attribute in parameter["attributes"]:
            if attribute["key"] == "default":
                params.setdefault(parameter["id"], []).append(attribute["stringValue"])
    given: dict[str, list[str]] = {}
    for value in defn.parameter_values:
        given.setdefault(value["id"], []).append(value["stringValue"])
    return params | given


def _substitute(text: str, params: Mapping[str, list[str]], obj_id: str) -> str:
    def replace(match: re.Match[str]) -> str:
        values = params.get(match.group(1), [])
        if len(values) != 1:
            count = "no value" if not values else f"{len(values)} values"
            raise DefinitionError(
                f'object "{obj_id}": workerGroup uses parameter '
                f'"{match.group(1)}", which has {count}'
            )
        return values[0]

    result = _PARAMETER_REF.sub(replace, text)
    if "#{" in result:
        raise DefinitionError(
            f'object "{obj_id}": workerGroup {text!r} holds an expression that only '
            "the service can evaluate; use a plain name or #{myParameter}"
        )
    return result


def worker_groups(defn: Definition) -> list[str]:
    """The distinct ``workerGroup`` values of the definition's objects, sorted.

    A ``#{myParam}`` in a value is replaced with the parameter's value, or else its
    default. Raises DefinitionError for any other expression: only the service can
    evaluate it, and a runner must poll with the evaluated name.
    """
    params = _parameter_map(defn)
    groups: set[str] = set()
    for obj in defn.pipeline_objects:
        for field in obj["fields"]:
            if field["key"] == "workerGroup" and "stringValue" in field:
                groups.add(_substitute(field["stringValue"], params, obj["id"]))
    return sorted(groups)


def inherited_field(defn: Definition, obj_id: str, key: str) -> str | None:
    """``key``'s string value on the object, else on its ``parent`` chain, else
    on ``Default`` (how the service resolves a field); a plain ``#{myParam}`` is
    replaced with its value. None when no object in the chain sets it."""
    objects = {obj["id"]: obj["fields"] for obj in defn.pipeline_objects}
    params = _parameter_map(defn)
    seen: set[str] = set()
    owner: str | None = obj_id
    while owner is not None and owner in objects and owner not in seen:
        seen.add(owner)
        fields = objects[owner]
        found = [
            f["stringValue"] for f in fields if f["key"] == key and "stringValue" in f
        ]
        if found:
            return _PARAMETER_REF.sub(
                lambda m: (params.get(m.group(1)) or [m.group(0)])[0], found[0]
            )
        parents = [f["refValue"] for f in fields if f["key"] == "parent"]
        owner = parents[0] if parents else ("Default" if owner != "Default" else None)
    return None


def secret_values(defn: Definition) -> set[str]:
    """The values a log must never show: those of ``*my…`` parameters (given or
    default), the literal values of ``*`` fields (``*password``), and the values of
    every parameter a ``*`` field names (``"*password": "#{myPassword}"``)."""
    known: dict[str, set[str]] = {}  # every value a parameter may take
    for parameter in defn.parameter_objects:
        for attribute in parameter["attributes"]:
            if attribute["key"] == "default":
                known.setdefault(parameter["id"], set()).add(attribute["stringValue"])
    for value in defn.parameter_values:
        known.setdefault(value["id"], set()).add(value["stringValue"])
    found = {v for name, texts in known.items() if name.startswith("*") for v in texts}
    for obj in defn.pipeline_objects:
        for field in obj["fields"]:
            text = field.get("stringValue")
            if not field["key"].startswith("*") or text is None:
                continue
            if "#{" not in text:
                found.add(text)
            for name in _NAME.findall(text):
                found.update(known.get(name, ()))
    found.discard("")
    return found
