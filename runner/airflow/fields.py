"""Reading a definition's fields as the service resolves them, for the export.

Owns: ``Reader``: an object's own fields, its ``parent`` chain then ``Default``
(where a field not set on the object is looked up), a string field with a plain
``#{myParam}`` replaced (``pipelinefile.inherited_field``), the refs of a key
(the first object in the chain that sets it gives all of them), and a type.

Must not: evaluate expressions (``exec``'s service does); import anything but the
standard library and ``pipelinefile``.
"""

from __future__ import annotations

from typing import Any

from runner.definitionquery import inherited_field
from runner.pipelinefile import Definition


class Reader:
    """Field lookups on one definition (``parent`` chain, then ``Default``)."""

    def __init__(self, defn: Definition) -> None:
        self.defn = defn
        self.objects = {obj["id"]: obj for obj in defn.pipeline_objects}

    def chain(self, obj_id: str) -> list[str]:
        chain: list[str] = []
        owner: str | None = obj_id
        while owner is not None and owner in self.objects and owner not in chain:
            chain.append(owner)
            parents = [f["refValue"] for f in self.own(owner) if f["key"] == "parent"]
            owner = parents[0] if parents else None
        return [*chain, *(["Default"] if "Default" not in chain else [])]

    def own(self, obj_id: str) -> list[dict[str, Any]]:
        return list(self.objects.get(obj_id, {}).get("fields", []))

    def text(self, obj_id: str, key: str) -> str | None:
        return inherited_field(self.defn, obj_id, key)

    def refs(self, obj_id: str, key: str) -> list[str]:
        """The first object in the chain that sets ``key`` gives all its refs."""
        for owner in self.chain(obj_id):
            found = [f["refValue"] for f in self.own(owner) if f["key"] == key]
            if found:
                return [ref for ref in found if ref is not None]
        return []

    def type_of(self, obj_id: str) -> str:
        return self.text(obj_id, "type") or ""
