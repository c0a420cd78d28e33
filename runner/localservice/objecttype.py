"""What an object type is: its kind, its required fields and groups, the fields it
knows; and which fields are the user's own.

Owns: the kinds (activity, data node, resource, ...), `ObjectType`, `names` (a
field list written as one string) and `is_user_field`. The Developer Guide's
tables of types are `catalog`'s, built from these.

Must not: list any type, or check anything itself (`typerules` does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ACTIVITY = "activity"
DATA_NODE = "datanode"
RESOURCE = "resource"
PRECONDITION = "precondition"
DATABASE = "database"
DATA_FORMAT = "dataformat"
ACTION = "action"
SCHEDULE = "schedule"
UTILITY = "utility"


def names(text: str) -> frozenset[str]:
    """A set of field names written as one space-separated string."""
    return frozenset(text.split())


@dataclass(frozen=True, slots=True)
class ObjectType:
    """One type: its DG page, kind, required fields and groups, known fields.
    A group is a tuple of fields of which one must be present."""

    page: str
    kind: str
    required: tuple[str, ...] = ()
    groups: tuple[tuple[str, ...], ...] = ()
    optional: frozenset[str] = frozenset()
    # Fields the page says are "not allowed on this object" (resources).
    forbidden: tuple[str, ...] = ()

    @property
    def fields(self) -> frozenset[str]:
        named = {*self.required, *(f for group in self.groups for f in group)}
        return self.optional | named | {"type"}


_USER_FIELD = re.compile(r"\*?my")


def is_user_field(key: str) -> bool:
    """A user-defined field: one that starts with "my" (`*` in front marks it
    encrypted). The DG (dp-writing-pipeline-definition) asks for "my" and then a
    capital letter or underscore; a field that only starts with "my" is the user's
    all the same, and never warned about (issue 13: no warning for `my` fields)."""
    return _USER_FIELD.match(key) is not None
