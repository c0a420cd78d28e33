"""Which values never go into the DAG file, and where the DAG reads them instead.

Owns: ``strip_secrets``, which turns the definition into the one the DAG file
embeds: every masked ``*my…`` parameter keeps its declaration but loses its
value and its default; a parameter that a ``*`` field names
(``"*password": "#{myPassword}"``) becomes masked (``*myPassword``, every
reference renamed); and a ``*`` field written as a literal becomes a reference to
a new masked parameter (``*myDpSecret_<object>_<field>``). It returns, for each
masked parameter, the Airflow Variable the operator reads its value from at run
time (``<dag id>.<parameter without *>``): the export prints them.

Must not: keep any value that ``pipelinefile.secret_values`` calls secret
(a test checks the rendered file against that set), or import airflow.

Why masked parameters: ``dp-runner exec`` takes a masked value from
``DP_PARAMETER_<name>`` only, never from the command line or the file, and
masks it in every log line; the operator sets that variable from the Variable.
"""

from __future__ import annotations

import re
from typing import Any

from runner.pipelinefile import Definition

_REF = re.compile(r"#\{\s*(\*?[A-Za-z_][A-Za-z0-9_]*)\s*\}")
_NAME_PART = re.compile(r"[^A-Za-z0-9_]")
_STRING_TYPE = {"key": "type", "stringValue": "String"}


def strip_secrets(defn: Definition, dag_id: str) -> tuple[Definition, dict[str, str]]:
    """The definition without secret values, and ``{"*myX": variable name}``."""
    declared = {p["id"] for p in defn.parameter_objects}
    renamed = _names_in_star_fields(defn) & declared
    renames = {name: f"*{name}" for name in renamed if not name.startswith("*")}
    objects = [_renamed_object(obj, renames) for obj in defn.pipeline_objects]
    parameters = [
        {**p, "id": renames.get(p["id"], p["id"])} for p in defn.parameter_objects
    ]
    objects, added = _literal_star_fields(objects, {p["id"] for p in parameters})
    parameters.extend(added)
    masked = {p["id"] for p in parameters if p["id"].startswith("*")}
    parameters = [_without_default(p) if p["id"] in masked else p for p in parameters]
    values = [{**v, "id": renames.get(v["id"], v["id"])} for v in defn.parameter_values]
    values = [v for v in values if v["id"] not in masked]
    variables = {name: f"{dag_id}.{name.removeprefix('*')}" for name in sorted(masked)}
    return Definition(objects, parameters, values), variables


def _names_in_star_fields(defn: Definition) -> set[str]:
    names = set()
    for obj in defn.pipeline_objects:
        for field in obj["fields"]:
            if field["key"].startswith("*") and "stringValue" in field:
                names.update(_REF.findall(field["stringValue"]))
    return names


def _renamed_object(obj: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    def rename(match: re.Match[str]) -> str:
        name = match.group(1)
        return "#{" + renames[name] + "}" if name in renames else match.group(0)

    fields = []
    for field in obj["fields"]:
        if "stringValue" in field and renames:
            text = _REF.sub(rename, field["stringValue"])
            fields.append({**field, "stringValue": text})
        else:
            fields.append(field)
    return {**obj, "fields": fields}


def _literal_star_fields(
    objects: list[dict[str, Any]], taken: set[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each ``*`` field with a literal value refers to a new masked parameter."""
    added: list[dict[str, Any]] = []
    out = []
    for obj in objects:
        fields = []
        for field in obj["fields"]:
            text = field.get("stringValue")
            if not field["key"].startswith("*") or text is None or "#{" in text:
                fields.append(field)
                continue
            name = _fresh(obj["id"], field["key"], taken)
            added.append({"id": name, "attributes": [_STRING_TYPE]})
            fields.append({"key": field["key"], "stringValue": "#{" + name + "}"})
        out.append({**obj, "fields": fields})
    return out, added


def _fresh(obj_id: str, key: str, taken: set[str]) -> str:
    base = "*myDpSecret_" + _NAME_PART.sub("_", f"{obj_id}_{key.removeprefix('*')}")
    candidate, number = base, 1
    while candidate in taken:
        number += 1
        candidate = f"{base}_{number}"
    taken.add(candidate)
    return candidate


def _without_default(parameter: dict[str, Any]) -> dict[str, Any]:
    attributes = [a for a in parameter["attributes"] if a["key"] != "default"]
    return {**parameter, "attributes": attributes}
