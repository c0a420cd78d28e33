"""The statements dp-runner sends Redshift that it sends no other engine.

Owns: ``session_setup`` (``queue`` -> ``SET query_group``), ``insert_for_table``
(the INSERT a ``table`` without ``insertQuery`` gets) and ``insert_batch`` (one
multi-row INSERT for a batch of records). Pure: unit-tested, since no test reaches
a real cluster.

Must not: run anything (``dbsession.py`` does).

Why this way: Redshift speaks the PostgreSQL protocol but has no COPY FROM STDIN,
and one INSERT per row is slow there (each is a commit-sized step on a columnar
store), so a batch of records becomes one ``INSERT ... VALUES (...), (...)`` with
every value bound. ``queue`` is Redshift's WLM query group (DG:
dp-object-sqlactivity), set once per session; other engines ignore it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_VALUES = re.compile(
    r"\A(?P<head>.*\bVALUES\s*)(?P<row>\(\s*%s(?:\s*,\s*%s)*\s*\))\s*;?\s*\Z",
    re.IGNORECASE | re.DOTALL,
)


def session_setup(queue: str | None) -> list[str]:
    """What a Redshift session runs first: ``SET query_group TO '<queue>'``."""
    if not queue:
        return []
    literal = queue.replace("\\", "\\\\").replace("'", "''")
    return [f"SET query_group TO '{literal}'"]


def insert_for_table(table: str, columns: int) -> str:
    """``INSERT INTO <table> VALUES (%s, ...)`` for records of ``columns`` fields."""
    marks = ", ".join(["%s"] * max(1, columns))
    return f"INSERT INTO {table} VALUES ({marks})"  # noqa: S608 - the pipeline's table


def insert_batch(
    sql: str, rows: Sequence[Sequence[str | None]]
) -> tuple[str, list[str | None]] | None:
    """``sql`` (an INSERT ending in one ``VALUES (%s, ...)`` group) repeated for
    every row, with the values flattened in order; None when ``sql`` has no such
    group (the caller then inserts row by row)."""
    match = _VALUES.match(sql)
    if match is None or not rows:
        return None
    group = match.group("row")
    statement = match.group("head") + ", ".join([group] * len(rows))
    return statement, [value for row in rows for value in row]
