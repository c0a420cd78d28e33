"""RedshiftCopyActivity: S3 or DynamoDB into a Redshift table, or a table out to S3.

Owns: reading the activity (DG: dp-object-redshiftcopyactivity) and its data nodes
into the database child's ``redshift_copy`` job, refusing what the DG does not
allow, and the plan: look up the cluster, then the child
(``dbchild/redshiftcopy.py`` runs the statements).

    input          S3DataNode (``filePath`` or ``directoryPath``, ``compression``,
                   ``dataFormat``) or DynamoDBDataNode (``tableName``,
                   ``readThroughputPercent``) -> a load; RedshiftDataNode -> UNLOAD
    output         RedshiftDataNode (``database``, ``tableName``, ``schemaName``,
                   ``createTableSql``, ``primaryKeys``), or S3DataNode for UNLOAD
    insertMode     KEEP_EXISTING, OVERWRITE_EXISTING, TRUNCATE, APPEND (required)
    transformSql   a SELECT over the table ``staging``
    commandOptions COPY's options as given (ignored when the input has a format)
    queue          Redshift's ``query_group``

Must not: connect, import a driver, or hold the runner's AWS credentials anywhere
but the child's job: they are read from boto3's chain when the child is spawned
(``aws/databases.copy_credentials``) and travel with the job over the hand-off.

Why this way: the checks that need no server happen here, so a bad definition
fails at once with a precise errorId; names go through ``sqlnames``, since they are
pasted into statements. COPY and UNLOAD read and write S3 themselves, on the
cluster, with the runner's credentials, as AWS's own runner does.
"""

from __future__ import annotations

from typing import Any

from runner.activities.context import ActivityContext, activity_env
from runner.activities.copy import data_format
from runner.activities.database import Resolving, database_of
from runner.activities.dbprocess import db_process
from runner.activities.periods import attempt_timeout_s
from runner.activities.plan import Plan, Transfer
from runner.activities.sqlnames import sql_name, sql_names
from runner.aws.databases import copy_credentials
from runner.aws.s3uri import parse_s3_uri
from runner.errors import ActivityError
from runner.taskmodel import PipelineObject, Ref, Task

INSERT_MODES = ("KEEP_EXISTING", "OVERWRITE_EXISTING", "TRUNCATE", "APPEND")
REDSHIFT_NODE = "RedshiftDataNode"
_SOURCES = ("S3DataNode", "DynamoDBDataNode")


def _one(task: Task, key: str) -> PipelineObject:
    values = task.get_all(key)
    if len(values) != 1 or not isinstance(values[0], Ref):
        raise ActivityError(
            "MissingField" if not values else "InvalidField",
            f"RedshiftCopyActivity needs exactly one {key!r} data node (a reference)",
        )
    obj = task.objects.get(values[0].id)
    if obj is None:
        raise ActivityError(
            "MissingField", f"{key} {values[0].id!r} is not in the task"
        )
    return obj


def _insert_mode(task: Task) -> str:
    mode = (task.get_str("insertMode") or "").strip().upper()
    if not mode:
        raise ActivityError("MissingField", "RedshiftCopyActivity needs 'insertMode'")
    if mode not in INSERT_MODES:
        raise ActivityError(
            "InvalidField",
            f"insertMode {mode!r:.60} is not one of {', '.join(INSERT_MODES)}",
        )
    return mode


def _redshift_node(task: Task, node: PipelineObject, role: str) -> dict[str, Any]:
    where = f"{role} {node.id!r}"
    table = (task.get_str("tableName", node) or "").strip()
    if not table:
        raise ActivityError("MissingField", f"{where} needs 'tableName'")
    sql_name(table, "tableName", where)
    schema = (task.get_str("schemaName", node) or "").strip()
    if schema:
        sql_name(schema, "schemaName", where)
        table = f"{schema}.{table}"
    keys = [str(k).strip() for k in task.get_all("primaryKeys", node) if str(k).strip()]
    return {
        "table": table,
        "primary_keys": sql_names(keys, "primaryKeys", where),
        "create": (task.get_str("createTableSql", node) or "").strip() or None,
    }


def _s3(task: Task, node: PipelineObject, role: str) -> dict[str, Any]:
    file_path = (task.get_str("filePath", node) or "").strip()
    directory = (task.get_str("directoryPath", node) or "").strip()
    if bool(file_path) == bool(directory):
        raise ActivityError(
            "InvalidField",
            f"{role} {node.id!r} needs one of 'filePath' and 'directoryPath'",
        )
    uri = file_path or directory
    parse_s3_uri(uri)
    compression = (task.get_str("compression", node) or "none").strip().lower()
    if compression not in ("none", "gzip"):
        raise ActivityError(
            "UnsupportedCompression",
            f"{role} {node.id!r}: compression {compression!r}; none or gzip",
        )
    has_format = task.get("dataFormat", node) is not None
    return {
        "kind": "s3",
        "uri": uri,
        "gzip": compression == "gzip",
        "format": data_format(task, node, role) if has_format else None,
    }


def _dynamodb(task: Task, node: PipelineObject, role: str) -> dict[str, Any]:
    table = (task.get_str("tableName", node) or "").strip()
    if not table:
        raise ActivityError("MissingField", f"{role} {node.id!r} needs 'tableName'")
    percent = task.get_str("readThroughputPercent", node) or "0.25"
    try:
        ratio = round(float(percent) * 100)
    except ValueError:
        ratio = 0
    if not 1 <= ratio <= 200:
        raise ActivityError(
            "InvalidField", f"{role} {node.id!r}: readThroughputPercent {percent!r}"
        )
    return {"kind": "dynamodb", "table": table, "read_ratio": ratio}


def _direction(
    task: Task, source: PipelineObject, target: PipelineObject
) -> dict[str, Any]:
    """The job's direction and nodes: a load into a RedshiftDataNode, or an
    UNLOAD of one to an S3DataNode."""
    kinds = (task.get_str("type", source) or "", task.get_str("type", target) or "")
    if kinds[1] == REDSHIFT_NODE and kinds[0] in _SOURCES:
        read = _s3 if kinds[0] == "S3DataNode" else _dynamodb
        return {
            "direction": "load",
            "source": read(task, source, "input"),
            **_redshift_node(task, target, "output"),
        }
    if kinds == (REDSHIFT_NODE, "S3DataNode"):
        return {
            "direction": "unload",
            "target": _s3(task, target, "output"),
            **_redshift_node(task, source, "input"),
        }
    raise ActivityError(
        "UnsupportedCopy",
        f"RedshiftCopyActivity copies S3DataNode or DynamoDBDataNode into a "
        f"RedshiftDataNode, or a RedshiftDataNode to an S3DataNode; not "
        f"{kinds[0] or '?'} to {kinds[1] or '?'}",
    )


class RedshiftCopyActivity:
    """Runs its COPY (or UNLOAD) and merge in the database child; the rows moved
    go to ``task_finished``. Stateless and thread-safe."""

    type_name = "RedshiftCopyActivity"

    def plan(self, task: Task, ctx: ActivityContext) -> Plan:
        mode = _insert_mode(task)
        source, target = _one(task, "input"), _one(task, "output")
        found = _direction(task, source, target)
        node = target if found["direction"] == "load" else source
        role = "output" if found["direction"] == "load" else "input"
        db = Resolving(database_of(task, node, f"{role} {node.id!r}"), ctx, role)
        step = db.transfer()
        before: tuple[Transfer, ...] = (step,) if step is not None else ()
        options = [str(o) for o in task.get_all("commandOptions") if str(o).strip()]
        fixed = {
            "kind": "redshift_copy",
            "insert_mode": mode,
            "transform": (task.get_str("transformSql") or "").strip() or None,
            "command_options": options,
            "queue": task.get_str("queue"),
            **found,
        }
        if options and found["direction"] == "load" and found["source"].get("format"):
            ctx.log.info("redshift_command_options_ignored", count=len(options))

        def job() -> dict[str, Any]:
            return {
                **fixed,
                "connection": db.job(),
                "credentials": copy_credentials(ctx.region),
            }

        process = db_process(job, ctx.paths.workdir, env=activity_env(task, ctx))
        return Plan(main=process, before=before, timeout_s=attempt_timeout_s(task))
