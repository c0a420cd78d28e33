"""An export query rewritten so that the MySQL or MariaDB server writes each row
as one dialect line.

Owns: ``formatted_query``: for a ``selectQuery`` (or a whole table), the SQL
that returns one column, the row's dialect record (its fields escaped, joined by
the separator, ``\\N`` for NULL), or None when the rewrite could change what the
export writes; then the child reads the rows the usual way (``mysqlrows.py``).

Must not: run the export (``mysqlrows.py`` does), or take a query it cannot
prove safe to wrap: the answer is then None, never a guess.

Why this way: reading a row's fields in Python costs about 2.7 us a row (a slice
and a length per field, an escape check); the ``mariadb`` client spends C's.
The server already turns each value into its text; asked to escape and join them
too (``REPLACE`` and ``CONCAT`` in C), it sends one field a row, which the child
passes on with one slice: the child's CPU falls about threefold (1.15 to 0.30 s
for 100 MB), and the server's grows by less (0.30 to 0.73 s: ``mariadb
--batch`` spends 0.73 s of its own). Text is escaped as the connection's bytes
(converted, then cast to binary, as the server would send it): a binary
``REPLACE`` is a plain scan, one under a collation took 1.10 s.

The query is wrapped as a derived table (``SELECT CONCAT(...) FROM (<query>) AS
q``), which MariaDB merges into the outer query: same tables, same conditions,
same columns read, so the same plan and the same rows. What a merge would change
is left out by a word check: ORDER BY (a merged derived table drops it), LIMIT,
GROUP BY, DISTINCT, UNION and the others in ``_ROW_SET`` (any such word
anywhere, comments and strings included: a false alarm only costs the faster
path). A probe (``LIMIT 0``) gives the columns: a type whose text the rewrite
might spell differently (a geometry), a column too wide to bound, or a probe the
server refuses (two columns of one name, a statement that is no SELECT) also
leaves the query as it is. The probe carries its own ``LIMIT 0`` inside the
derived table: a table-less query is one the server runs whole to answer a probe
of it. A record can never exceed ``max_allowed_packet`` (a ``CONCAT`` past it
gives NULL): the columns' widths, doubled for escapes, must fit under it.
"""

from __future__ import annotations

import re
from typing import Any

import pymysql  # type: ignore[import-untyped]  # PyMySQL ships no stubs
from pymysql.constants import FIELD_TYPE  # type: ignore[import-untyped]

from runner.dbchild.dialect import NULL, Dialect

_SELECT = re.compile(r"\s*SELECT\s", re.IGNORECASE)
#: Words after which a merged derived table may not give the same rows in the
#: same order; ``;`` (a second statement) too.
_ROW_SET = re.compile(
    r"\b(ORDER|GROUP|LIMIT|OFFSET|FETCH|UNION|INTERSECT|EXCEPT|DISTINCT"
    r"|DISTINCTROW|HAVING|OVER|WINDOW|WITH|ROWNUM|STRAIGHT_JOIN"
    r"|SQL_CALC_FOUND_ROWS)\b|;",
    re.IGNORECASE,
)
#: Connection character sets in which a backslash, the separator and LF are
#: always single bytes (never the second byte of a character, as in GBK).
_CHARSETS = frozenset({"utf8mb4", "utf8mb3", "utf8", "latin1", "ascii"})
#: Written as the server writes them, with no byte to escape.
_PLAIN = frozenset(
    {
        FIELD_TYPE.DECIMAL,
        FIELD_TYPE.NEWDECIMAL,
        FIELD_TYPE.TINY,
        FIELD_TYPE.SHORT,
        FIELD_TYPE.LONG,
        FIELD_TYPE.LONGLONG,
        FIELD_TYPE.INT24,
        FIELD_TYPE.YEAR,
        FIELD_TYPE.FLOAT,
        FIELD_TYPE.DOUBLE,
        FIELD_TYPE.DATE,
        FIELD_TYPE.NEWDATE,
        FIELD_TYPE.DATETIME,
        FIELD_TYPE.TIMESTAMP,
        FIELD_TYPE.TIME,
    }
)
#: Strings (text or binary) and bit values: escaped.
_STRINGS = frozenset(
    {
        FIELD_TYPE.VARCHAR,
        FIELD_TYPE.VAR_STRING,
        FIELD_TYPE.STRING,
        FIELD_TYPE.TINY_BLOB,
        FIELD_TYPE.BLOB,
        FIELD_TYPE.MEDIUM_BLOB,
        FIELD_TYPE.LONG_BLOB,
        FIELD_TYPE.ENUM,
        FIELD_TYPE.SET,
        FIELD_TYPE.JSON,
        FIELD_TYPE.BIT,
    }
)
_BINARY = 63  # the character set number of binary strings


def formatted_query(conn: Any, query: str, dialect: Dialect) -> str | None:
    """The SQL that returns ``query``'s rows as dialect records (one column),
    or None to read ``query`` as it is."""
    if not _SELECT.match(query) or _ROW_SET.search(query):
        return None
    charset = str(conn.charset)
    if charset not in _CHARSETS:
        return None
    source = f"(\n{query}\n) AS q"  # a comment at the query's end stays closed
    try:
        with conn.cursor() as cur:
            # LIMIT 0 inside: outside it, a derived table the server deems
            # constant (no table, one row) is run whole before the probe answers
            probe = f"SELECT * FROM (\n{query}\nLIMIT 0\n) AS q"  # noqa: S608 - the job's SQL
            cur.execute(probe)
            fields = list(cur._result.fields)
            cur.execute("SELECT @@session.max_allowed_packet")
            (limit,) = cur.fetchone()
    except pymysql.err.MySQLError:
        return None  # the query as it is gives the server's own answer
    if not fields or _widest(fields) > int(limit):
        return None
    columns: list[str] = []
    for field in fields:
        column = _column(conn, field, charset, dialect)
        if column is None:
            return None
        columns.append(column)
    between = f", {conn.escape(dialect.separator.decode())}, "
    return f"SELECT CONCAT({between.join(columns)}) FROM {source}"  # noqa: S608 - names quoted


def _widest(fields: list[Any]) -> int:
    """The longest record the columns can make: every byte escaped, NULL's two
    bytes, a separator between two."""
    return sum(2 * int(field.length) + len(NULL) + 1 for field in fields)


def _column(conn: Any, field: Any, charset: str, dialect: Dialect) -> str | None:
    """One column as its dialect field: ``\\N`` for NULL, its specials
    escaped; None for a type the rewrite does not take."""
    name = "`" + str(field.name).replace("`", "``") + "`"
    null = conn.escape(NULL.decode())
    if field.type_code in _PLAIN:
        return f"IF({name} IS NULL, {null}, {name})"
    if field.type_code not in _STRINGS:
        return None
    # text as the bytes the connection would send, then escaped as bytes: a
    # binary REPLACE is a plain scan, a collation's a slower one
    value = name
    if field.charsetnr != _BINARY:
        value = f"CAST(CONVERT({name} USING {charset}) AS BINARY)"
    for special in ("\\", dialect.separator.decode(), "\n"):
        escaped = conn.escape("\\" + special)
        value = f"REPLACE({value}, {conn.escape(special)}, {escaped})"
    return f"IF({name} IS NULL, {null}, {value})"
