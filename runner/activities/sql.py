"""SqlActivity: a SQL script run against a database, statement by statement.

Owns: reading ``script`` / ``scriptUri`` / ``scriptArgument`` / ``queue`` /
``database`` (DG: dp-object-sqlactivity) and the plan: look up an RdsDatabase or
RedshiftDatabase, fetch ``scriptUri``, then the database child with the job on its
stdin.

Must not: connect or import a driver: the child does (``runner/dbchild/``).

Why this way: as the DG says, a ``scriptUri`` script is not evaluated: it is run as
fetched. ``scriptArgument`` values are bound, in order, to the script's ``?``
placeholders (never pasted into its text). ``queue`` is Redshift's query group and
is ignored elsewhere, as on AWS. The child runs the statements with autocommit, as
JDBC does, and stops at the first error (``SqlError:<SQLSTATE>``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.activities import staging
from runner.activities.context import ActivityContext, activity_env
from runner.activities.database import Resolving, database_of
from runner.activities.dbprocess import db_process
from runner.activities.periods import attempt_timeout_s
from runner.activities.plan import Plan, Transfer
from runner.errors import ActivityError, StagingError
from runner.taskmodel import Ref, Task


def script_arguments(task: Task, type_name: str) -> list[str]:
    """``scriptArgument`` values in order; refused when one is a reference."""
    values = []
    for index, value in enumerate(task.get_all("scriptArgument"), start=1):
        if isinstance(value, Ref):
            raise ActivityError(
                "InvalidField", f"{type_name}: scriptArgument #{index} must be a string"
            )
        values.append(value)
    return values


def _read_script(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StagingError("StagingIOError", f"cannot read {path.name}: {exc}") from exc


class SqlActivity:
    """Runs ``script`` (or the ``scriptUri`` script) on ``database``. Exit 0 is
    FINISHED; a SQL error FAILED ``SqlError:<SQLSTATE>`` (MySQL: its error
    number) with the server's message. Stateless and thread-safe."""

    type_name = "SqlActivity"

    def plan(self, task: Task, ctx: ActivityContext) -> Plan:
        script = (task.get_str("script") or "").strip() or None
        script_uri = (task.get_str("scriptUri") or "").strip() or None
        if (script is None) == (script_uri is None):
            raise ActivityError(
                "MissingField" if script is None else "InvalidField",
                "SqlActivity takes one of 'script' and 'scriptUri'",
            )
        arguments = script_arguments(task, self.type_name)
        queue = task.get_str("queue")
        database = Resolving(database_of(task, None, self.type_name), ctx, "sql")
        before: list[Transfer] = []
        lookup = database.transfer()
        if lookup is not None:
            before.append(lookup)
        path: Path | None = None
        if script_uri is not None:
            uri, s3, stop = script_uri, ctx.s3, ctx.stop
            path = staging.script_path(uri, ctx.paths.workdir)
            fetched = path
            before.append(
                Transfer(
                    "fetch_script", lambda: staging.fetch_script(uri, s3, fetched, stop)
                )
            )

        def job() -> dict[str, Any]:
            conn = database.job()
            return {
                "kind": "sql",
                "connection": conn,
                "script": script if path is None else _read_script(path),
                "arguments": arguments,
                "queue": queue if conn["engine"] == "redshift" else None,
            }

        process = db_process(job, ctx.paths.workdir, env=activity_env(task, ctx))
        return Plan(
            main=process, before=tuple(before), timeout_s=attempt_timeout_s(task)
        )
