"""Secrets masked at the source: the values of a task's ``*``-fields.

Owns: ``MASK``, ``masked`` (a wire-shape value with its ``*``-field values masked, for
error messages that show an object), ``secret_values`` (every ``*``-field value of a
raw task, however malformed, for the log's last processor) and ``redact`` (known
values out of a text).

Must not: import anything from ``runner``: every layer uses it (a leaf, like
``errors``). It never raises on a malformed value: it runs on exactly those.

Why: a field whose key starts with ``*`` (``*password``) holds a secret (Developer
Guide, dp-pipeline-characters). Masking where text is made from a task, and again in
every log line, means no single forgotten path can leak one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MASK = "***"
#: A task object is {objects: {id: {fields: [{key, value}]}}}: 5 levels deep.
_MAX_DEPTH = 8


def masked(value: Any, depth: int = 0) -> Any:
    """``value`` (a wire-shape object, field list or task, however malformed) with
    the ``stringValue`` of every field whose key starts with ``*`` replaced by
    ``***``; what lies deeper than a task ever does is cut. Pure; never raises."""
    if depth > _MAX_DEPTH:
        return "..."
    if isinstance(value, Mapping):
        key = value.get("key")
        secret = isinstance(key, str) and key.startswith("*")
        return {
            k: MASK if secret and k == "stringValue" else masked(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [masked(item, depth + 1) for item in value]
    return value


def secret_values(value: Any) -> list[str]:
    """Every non-empty ``stringValue`` of a field whose key starts with ``*``,
    anywhere in ``value`` (a raw task, however malformed). Pure; never raises."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            continue  # a leaf, and most items are: spare it the ABC check below
        if isinstance(item, dict | Mapping):  # a dict passes without the ABC check
            key, text = item.get("key"), item.get("stringValue")
            if isinstance(key, str) and key.startswith("*") and text:
                found.append(str(text))
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


def redact(text: str, secrets: tuple[str, ...] | list[str]) -> str:
    """Replace every secret value in ``text`` with ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
