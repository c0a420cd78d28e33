"""The statements of a RedshiftCopyActivity, as text.

Owns: the COPY and UNLOAD statements (their data source or target, the runner's
credentials as ``ACCESS_KEY_ID``/``SECRET_ACCESS_KEY``/``SESSION_TOKEN``, the
format options), and the plain SQL around a load: the temporary table ``staging``,
the table ``transformSql`` makes of it, the merge by primary keys for each
``insertMode``, the catalog query for those keys. Pure: unit-tested against the
grammar of Redshift's documentation, since no test reaches a real cluster.

Must not: run anything (``redshiftcopy.py`` does), check names (the planner did,
``activities/sqlnames.py``: names arrive checked and are emitted as written), or
show a statement that carries credentials: ``masked`` is the only form of one that
may reach a log or a message.

Why this way (DG dp-object-redshiftcopyactivity): the merging modes load into a
temporary table named ``staging`` (the name ``transformSql`` refers to), then
merge into the target in the same transaction. ``TRUNCATE`` mode deletes with
``DELETE FROM``, because Redshift's ``TRUNCATE`` commits the transaction at once.
When the input has a ``dataFormat``, the format decides COPY's options and
``commandOptions`` are ignored, as the DG says; the DG's CSV and TSV are its
Unix variant (a backslash escapes, ``\\N`` is NULL), which is COPY's and UNLOAD's
``DELIMITER`` with ``ESCAPE``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

STAGING = "staging"
TRANSFORMED = "staging_transformed"
INSERT_MODES = ("KEEP_EXISTING", "OVERWRITE_EXISTING", "TRUNCATE", "APPEND")
MASK = "***"
_DELIMITERS = {"CSV": ",", "TSV": "\\t"}


@dataclass(frozen=True)
class Credentials:
    """The runner's own (temporary) credentials, from boto3's chain."""

    key_id: str
    secret: str
    token: str | None = None

    def secrets(self) -> list[str]:
        return [s for s in (self.secret, self.token) if s]


def literal(text: str) -> str:
    """``text`` as a SQL string literal (quotes and backslashes doubled: Redshift
    reads a backslash in a literal as an escape)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def authorization(credentials: Credentials | None) -> str:
    """The authorization clause: temporary credentials by their three keywords."""
    if credentials is None:
        return ""
    parts = [
        f"ACCESS_KEY_ID {literal(credentials.key_id)}",
        f"SECRET_ACCESS_KEY {literal(credentials.secret)}",
    ]
    if credentials.token:
        parts.append(f"SESSION_TOKEN {literal(credentials.token)}")
    return " ".join(parts)


def format_options(data_format: str | None, gzip: bool, *, unload: bool) -> list[str]:
    """COPY's (or UNLOAD's) options for the DG's CSV or TSV and the compression.
    UNLOAD writes NULL as ``\\N``, as the DG's variant reads it (COPY's default)."""
    options = []
    if data_format is not None:
        options.append(f"DELIMITER AS '{_DELIMITERS[data_format]}'")
        options.append("ESCAPE")
        if unload:
            options.append("NULL AS '\\\\N'")
    if gzip:
        options.append("GZIP")
    return options


def copy_statement(
    table: str,
    source: Mapping[str, object],
    credentials: Credentials | None,
    command_options: Sequence[str],
) -> str:
    """``COPY table FROM source authorization options``. ``source``: the job's
    input node: ``{"kind": "s3", "uri", "format", "gzip"}`` or ``{"kind":
    "dynamodb", "table", "read_ratio"}``. The format's options win over
    ``command_options`` (ignored when the node has a format)."""
    if source["kind"] == "dynamodb":
        origin = literal(f"dynamodb://{source['table']}")
        options = [f"READRATIO {int(str(source['read_ratio']))}"]
    else:
        origin = literal(str(source["uri"]))
        fmt = source.get("format")
        if fmt is None:
            options = [*command_options]
            if source.get("gzip") and "GZIP" not in (o.upper() for o in options):
                options.append("GZIP")
        else:
            options = format_options(str(fmt), bool(source.get("gzip")), unload=False)
    return _join(f"COPY {table} FROM {origin}", authorization(credentials), *options)


def unload_statement(
    query: str,
    target: Mapping[str, object],
    credentials: Credentials | None,
) -> str:
    """``UNLOAD ('query') TO 's3://prefix' authorization options``, in the
    output node's format (the DG's CSV when it has none)."""
    fmt = str(target.get("format") or "CSV")
    options = format_options(fmt, bool(target.get("gzip")), unload=True)
    options.append("ALLOWOVERWRITE")
    return _join(
        f"UNLOAD ({literal(query)}) TO {literal(str(target['uri']))}",
        authorization(credentials),
        *options,
    )


def masked(statement: str, credentials: Credentials | None) -> str:
    """``statement`` with every credential replaced by ``***``."""
    if credentials is None:
        return statement
    for secret in (credentials.secret, credentials.token, credentials.key_id):
        if secret:
            statement = statement.replace(literal(secret), f"'{MASK}'")
            statement = statement.replace(secret, MASK)
    return statement


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def staging_table(table: str) -> str:
    return f"CREATE TEMP TABLE {STAGING} (LIKE {table})"


def transform_table(transform: str) -> str:
    return f"CREATE TEMP TABLE {TRANSFORMED} AS {transform.strip().rstrip(';')}"


def merge_statements(
    mode: str, table: str, source: str, keys: Sequence[str]
) -> list[str]:
    """What moves ``source`` (``staging``, or the transformed table) into
    ``table`` for ``mode``: KEEP_EXISTING drops the incoming rows whose keys the
    table has; OVERWRITE_EXISTING deletes the table's rows whose keys come in;
    TRUNCATE deletes every row (``DELETE FROM``, which stays in the
    transaction); APPEND adds all."""
    # every name here was checked (sqlnames) or is ours: S608 does not apply
    match = " AND ".join(f"{source}.{k} = {table}.{k}" for k in keys)
    if mode == "KEEP_EXISTING":
        first = [f"DELETE FROM {source} USING {table} WHERE {match}"]  # noqa: S608
    elif mode == "OVERWRITE_EXISTING":
        first = [f"DELETE FROM {table} USING {source} WHERE {match}"]  # noqa: S608
    elif mode == "TRUNCATE":
        first = [f"DELETE FROM {table}"]  # noqa: S608
    else:
        first = []
    return [*first, f"INSERT INTO {table} SELECT * FROM {source}"]  # noqa: S608


def needs_keys(mode: str) -> bool:
    return mode in ("KEEP_EXISTING", "OVERWRITE_EXISTING")


#: The primary key of a table, in key order (PostgreSQL and Redshift catalogs).
PRIMARY_KEY_QUERY = (
    "SELECT kcu.column_name FROM information_schema.table_constraints tc"
    " JOIN information_schema.key_column_usage kcu"
    " ON kcu.constraint_name = tc.constraint_name"
    " AND kcu.table_schema = tc.table_schema AND kcu.table_name = tc.table_name"
    " WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_name = %s"
    " AND tc.table_schema = COALESCE(NULLIF(%s, ''), current_schema())"
    " ORDER BY kcu.ordinal_position"
)


def catalog_parts(table: str) -> tuple[str, str]:
    """The schema (or "") and the table of a checked name as the catalog spells
    them: a quoted part unquoted, a plain one folded to lower case."""
    parts = _split(table)
    names = [
        p[1:-1].replace('""', '"') if p.startswith('"') else p.lower() for p in parts
    ]
    return (names[-2] if len(names) > 1 else ""), names[-1]


def _split(name: str) -> list[str]:
    """A checked name's dot-separated parts (a dot inside quotes stays)."""
    parts, current, quoted = [], "", False
    for char in name:
        if char == '"':
            quoted = not quoted
        if char == "." and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts
