"""CopyActivity: records from one data node to another, within the DG's limits.

Owns: reading the one ``input`` and the one ``output`` (DG: dp-object-copyactivity,
dp-object-s3datanode, dp-object-sqldatanode) into the copy job, refusing what the
DG does not allow, and the plan: look up the databases, then the database child
with the job on its stdin (``dbchild/copyjob.py`` does the work there).

    S3DataNode   ``filePath`` or ``directoryPath``; ``compression`` none or gzip;
                 ``dataFormat`` CSV or TSV (the DG's Unix variant; see
                 ``dialect.py``); ``s3EncryptionType``
    SqlDataNode  (or MySqlDataNode) ``table``, ``selectQuery`` (input),
                 ``insertQuery`` and ``createTableSql`` (output), ``schemaName``;
                 ``database`` or the inline ``connectionString``/``username``/
                 ``*password``; ``table`` and ``schemaName`` are names, checked
                 (``sqlnames.py``) and used as written

Must not: connect, import a driver or move a byte: the child does.

Why this way: the DG allows S3 -> SQL, SQL -> S3 and S3 -> S3 and reads S3 only in
its CSV/TSV variant, so anything else (a Custom format, a DynamoDB node, SQL ->
SQL) fails at once with a message that says what is allowed, before any
connection is made.
"""

from __future__ import annotations

from typing import Any

from runner.activities.context import ActivityContext, activity_env
from runner.activities.database import Resolving, database_of
from runner.activities.dbprocess import db_process
from runner.activities.periods import attempt_timeout_s
from runner.activities.plan import Plan, Transfer
from runner.activities.sqlnames import sql_name
from runner.aws.s3uri import parse_s3_uri
from runner.errors import ActivityError
from runner.taskmodel import PipelineObject, Ref, Task

S3_NODE = "S3DataNode"
SQL_NODES = ("SqlDataNode", "MySqlDataNode")
_FORMATS = ("CSV", "TSV")
#: Fields of a data format that would change the dialect, and their only value.
_DIALECT_FIELDS = {"escapeChar": "\\", "recordSeparator": "\n"}
_SEPARATORS = {"CSV": ",", "TSV": "\t"}


def _one(task: Task, key: str) -> PipelineObject:
    values = task.get_all(key)
    if len(values) != 1 or not isinstance(values[0], Ref):
        raise ActivityError(
            "MissingField" if not values else "InvalidField",
            f"CopyActivity needs exactly one {key!r} data node (a reference)",
        )
    obj = task.objects.get(values[0].id)
    if obj is None:
        raise ActivityError(
            "MissingField", f"{key} {values[0].id!r} is not in the task"
        )
    return obj


def data_format(task: Task, node: PipelineObject, role: str) -> str:
    value = task.get("dataFormat", node)
    if value is None:
        return "CSV"
    fmt = task.objects.get(value.id) if isinstance(value, Ref) else None
    kind = (task.get_str("type", fmt) or "") if fmt is not None else ""
    if kind not in _FORMATS or fmt is None:
        raise ActivityError(
            "UnsupportedDataFormat",
            f"{role} {node.id!r}: CopyActivity reads and writes S3 only as CSV or TSV, "
            f"not {kind or 'an unknown format'} (DG: dp-object-s3datanode, "
            "dp-object-copyactivity: the Unix/Linux CSV variant)",
        )
    wanted = {**_DIALECT_FIELDS, "columnSeparator": _SEPARATORS[kind]}
    for key, only in wanted.items():
        given = task.get_str(key, fmt)
        if given is not None and given not in (
            only,
            only.encode("unicode_escape").decode(),
        ):
            raise ActivityError(
                "UnsupportedDataFormat",
                f"{role} {node.id!r}: {kind} {key} {given!r} is not supported "
                f"(the DG's variant: {only!r})",
            )
    return kind


def _s3_node(task: Task, node: PipelineObject, role: str) -> dict[str, Any]:
    file_path = (task.get_str("filePath", node) or "").strip() or None
    directory = (task.get_str("directoryPath", node) or "").strip() or None
    if (file_path is None) == (directory is None):
        raise ActivityError(
            "InvalidField",
            f"{role} {node.id!r} needs exactly one of 'filePath' and 'directoryPath'",
        )
    uri = file_path or (directory or "").rstrip("/") + "/"
    parse_s3_uri(uri)
    compression = (task.get_str("compression", node) or "none").strip().lower()
    if compression not in ("none", "gzip"):
        raise ActivityError(
            "UnsupportedCompression",
            f"{role} {node.id!r}: compression {compression!r}; CopyActivity takes "
            "none or gzip",
        )
    encryption = (task.get_str("s3EncryptionType", node) or "").strip().upper()
    return {
        "kind": "s3",
        "uri": uri,
        "gzip": compression == "gzip",
        "format": data_format(task, node, role),
        "sse": encryption != "NONE",
    }


def _sql_node(
    task: Task, node: PipelineObject, role: str, ctx: ActivityContext
) -> tuple[dict[str, Any], Resolving]:
    table = (task.get_str("table", node) or "").strip()
    select = (task.get_str("selectQuery", node) or "").strip() or None
    insert = (task.get_str("insertQuery", node) or "").strip() or None
    if not table and not (select if role == "input" else insert):
        raise ActivityError("MissingField", f"{role} {node.id!r} needs 'table'")
    where = f"{role} {node.id!r}"
    if table:
        sql_name(table, "table", where)
    schema = (task.get_str("schemaName", node) or "").strip()
    if schema:
        sql_name(schema, "schemaName", where)
    if schema and table and "." not in table:
        table = f"{schema}.{table}"
    found = {
        "kind": "sql",
        "table": table or None,
        "select": select,
        "insert": insert,
        "create": (task.get_str("createTableSql", node) or "").strip() or None,
    }
    return found, Resolving(database_of(task, node, f"{role} {node.id!r}"), ctx, role)


def _node(
    task: Task, node: PipelineObject, role: str, ctx: ActivityContext
) -> tuple[dict[str, Any], Resolving | None]:
    kind = task.get_str("type", node) or ""
    if kind == S3_NODE:
        return _s3_node(task, node, role), None
    if kind in SQL_NODES:
        return _sql_node(task, node, role, ctx)
    raise ActivityError(
        "UnsupportedCopy",
        f"{role} {node.id!r} is a {kind or 'node without type'}; dp-runner copies "
        "between S3DataNode and SqlDataNode (MySqlDataNode)",
    )


class CopyActivity:
    """Copies its input to its output in the database child; the row count goes
    to ``task_finished``. Stateless and thread-safe."""

    type_name = "CopyActivity"

    def plan(self, task: Task, ctx: ActivityContext) -> Plan:
        source, source_db = _node(task, _one(task, "input"), "input", ctx)
        target, target_db = _node(task, _one(task, "output"), "output", ctx)
        if source["kind"] == "sql" and target["kind"] == "sql":
            raise ActivityError(
                "UnsupportedCopy",
                "CopyActivity from a SqlDataNode to a SqlDataNode is not supported; "
                "copy through an S3DataNode",
            )
        resolving = [r for r in (source_db, target_db) if r is not None]
        steps = [r.transfer() for r in resolving]
        before: tuple[Transfer, ...] = tuple(s for s in steps if s is not None)

        def job() -> dict[str, Any]:
            nodes = []
            for node, db in ((source, source_db), (target, target_db)):
                nodes.append({**node, "connection": db.job()} if db else node)
            return {
                "kind": "copy",
                "input": nodes[0],
                "output": nodes[1],
                "region": ctx.region,
            }

        process = db_process(job, ctx.paths.workdir, env=activity_env(task, ctx))
        return Plan(main=process, before=before, timeout_s=attempt_timeout_s(task))
