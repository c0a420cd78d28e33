"""The database child's RedshiftCopyActivity: its statements, in one transaction.

Owns: running a ``redshift_copy`` job (``activities/redshiftcopy.py`` builds it).
A load: BEGIN; ``createTableSql`` when the table does not exist; the temporary
table ``staging`` like the target; COPY into it; ``transformSql`` made into a
second temporary table; the merge for the ``insertMode`` by the primary keys
(declared, or read from the catalog); COMMIT. An UNLOAD: the one statement. Each
statement is logged by its step and its text masked (``redshifttext.masked``);
a failure names the step and, from the server, the position in the statement.

Must not: show a statement unmasked, or put the credentials in an error (the
server's messages are redacted again by ``dbjob``); commit a partial merge.

Why this way: one transaction keeps the target as it was when any step fails or
a stop comes (``dbjob`` rolls back and the stop thread cancels the running
statement on the server, as for SqlActivity). The texts are ``redshifttext``'s,
pure and unit-tested; everything but COPY and UNLOAD is plain SQL that the test
PostgreSQL runs too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from runner.dbchild import dbsession, redshifttext
from runner.dbchild.redshifttext import Credentials
from runner.errors import ActivityError

Check = Callable[[], None]
Say = Callable[..., None]


def credentials_of(job: Mapping[str, Any]) -> Credentials | None:
    found = job.get("credentials")
    if not found:
        return None
    return Credentials(str(found["key_id"]), str(found["secret"]), found.get("token"))


class _Steps:
    """Runs one statement at a time on the session, checking the stop first."""

    def __init__(
        self,
        session: dbsession.Session,
        credentials: Credentials | None,
        check: Check,
        say: Say,
    ) -> None:
        self.session = session
        self.credentials = credentials
        self.check = check
        self.say = say
        self.count = 0

    def run(self, step: str, sql: str) -> int:
        self.check()
        self.count += 1
        shown = redshifttext.masked(sql, self.credentials)
        try:
            rows = self.session.execute(sql, None)
        except dbsession.SqlError as exc:
            self.check()
            exc.message = redshifttext.masked(
                f"{exc.message} ({step}, statement {self.count})", self.credentials
            )
            raise
        self.say("redshift_statement", step=step, rows=rows, sql=shown)
        return rows


def run_redshift_copy(
    job: Mapping[str, Any],
    check: Check,
    on_session: Callable[[dbsession.Session], None],
    say: Say,
) -> int:
    """The job, to its COMMIT; the rows inserted (or unloaded, as the server
    counts them). Raises ``SqlError`` or ``ActivityError``."""
    credentials = credentials_of(job)
    session = dbsession.connect(job["connection"], queue=job.get("queue"))
    on_session(session)
    steps = _Steps(session, credentials, check, say)
    table = str(job["table"])
    if job["direction"] == "unload":
        query = f"SELECT * FROM {table}"  # noqa: S608 - a checked name
        text = redshifttext.unload_statement(query, job["target"], credentials)
        return max(steps.run("UNLOAD", text), 0)
    return _load(job, session, steps, credentials, say)


def _load(
    job: Mapping[str, Any],
    session: dbsession.Session,
    steps: _Steps,
    credentials: Credentials | None,
    say: Say,
) -> int:
    table, mode = str(job["table"]), str(job["insert_mode"])
    steps.run("BEGIN", "BEGIN")
    if job.get("create") and not session.table_exists(table):
        steps.run("createTableSql", str(job["create"]))
    steps.run("staging", redshifttext.staging_table(table))
    copy = redshifttext.copy_statement(
        redshifttext.STAGING,
        job["source"],
        credentials,
        job.get("command_options") or [],
    )
    say("redshift_copy_prepared", made=redshifttext.masked(copy, credentials))
    steps.run("COPY", copy)
    source = redshifttext.STAGING
    if job.get("transform"):
        steps.run("transformSql", redshifttext.transform_table(str(job["transform"])))
        source = redshifttext.TRANSFORMED
    keys = _keys(job, session, table) if redshifttext.needs_keys(mode) else []
    rows = 0
    for statement in redshifttext.merge_statements(mode, table, source, keys):
        rows = steps.run(mode, statement)
    steps.run("COMMIT", "COMMIT")
    return max(rows, 0)


def _keys(job: Mapping[str, Any], session: dbsession.Session, table: str) -> list[str]:
    """The declared ``primaryKeys``, else the table's primary key from the
    catalog (quoted as the catalog spells it)."""
    declared = [str(k) for k in job.get("primary_keys") or []]
    if declared:
        return declared
    schema, name = redshifttext.catalog_parts(table)
    found = session.column(redshifttext.PRIMARY_KEY_QUERY, [name, schema])
    if not found:
        raise ActivityError(
            "MissingField",
            f"insertMode {job['insert_mode']} merges by primary keys: declare "
            f"primaryKeys on the RedshiftDataNode, or give {table} a PRIMARY KEY",
        )
    return ['"' + key.replace('"', '""') + '"' for key in found]
