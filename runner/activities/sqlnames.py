"""Names a pipeline puts into SQL: checked, then used exactly as written.

Owns: ``sql_name``, the rule for ``table``, ``schemaName``, ``tableName``,
``primaryKeys`` and any other name that ends up inside a statement: each
dot-separated part is a plain identifier (``[A-Za-z_][A-Za-z0-9_$]*``) or is
already double-quoted (``"My ""odd"" name"``). Anything else is FAILED
``InvalidField``, naming the field and the object.

Must not: quote, fold or rewrite a name. A name that passes is emitted as written,
so PostgreSQL's case folding (``MyTable`` is ``mytable``) is what the pipeline's
author already gets from AWS's runner, and a quoted name keeps its case.

Why this way: a name is pasted into SQL text (``COPY <table> ...``), where a bind
parameter cannot go. Only a grammar that admits identifiers and nothing else keeps
a value such as ``(SELECT 1) TO STDOUT; DROP TABLE victim; COPY (SELECT 1)`` from
becoming statements, whoever set the parameter that named the table.
"""

from __future__ import annotations

import re

from runner.errors import ActivityError

_PART = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"\x00]|"")+")'
_NAME = re.compile(rf"{_PART}(?:\.{_PART})*")


def sql_name(value: str, field: str, where: str) -> str:
    """``value`` as written, when it is a name; else ``InvalidField`` naming
    ``field`` of ``where`` (e.g. ``output 'MyTable'``)."""
    if _NAME.fullmatch(value):
        return value
    raise ActivityError(
        "InvalidField",
        f"{where}: {field} {value!r} is not a SQL name; each dot-separated part is "
        'a letter or _ then letters, digits, _ or $, or a "double-quoted" name',
    )


def sql_names(values: list[str], field: str, where: str) -> list[str]:
    """Each of ``values`` checked by ``sql_name``."""
    return [sql_name(value, field, where) for value in values]
