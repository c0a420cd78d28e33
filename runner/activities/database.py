"""The database objects of a task: JdbcDatabase, RdsDatabase, RedshiftDatabase, and
the inline connection of the older SqlDataNode/MySqlDataNode.

Owns: reading those objects (DG: dp-object-jdbcdatabase, dp-object-rdsdatabase,
dp-object-redshiftdatabase, dp-object-sqldatanode) into a ``Connection``: engine,
host, port, database, user, the ``*password``, and driver options mapped from the
JDBC URL's parameters and ``jdbcProperties``; and ``resolve``, which fills in the
host, port and engine of an RdsDatabase or RedshiftDatabase through ``aws/``.

Must not: connect, or import a driver: the child program does (``runner/dbchild/``), so
the runner's memory never holds one. Never log the password or a URL that may
carry one.

Why this way: the JDBC URL is what pipelines already hold, so it is read as the
JDBC drivers read it (``jdbc:postgresql://host:port/db?k=v``, also ``mysql``,
``mariadb`` and ``redshift``; ``;``-separated parameters too), and the handful of
parameters that change behaviour (SSL, timeouts, the application name, the
charset) are mapped to the Python drivers' options. ``jdbcDriverClass`` and
``jdbcDriverJarUri`` name a Java driver: accepted, unused, noted once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from runner.activities.context import ActivityContext
from runner.activities.jdbcurl import DEFAULT_PORTS, driver_options, parse_jdbc_url
from runner.activities.plan import Transfer
from runner.aws import databases
from runner.errors import ActivityError
from runner.taskmodel import PipelineObject, Ref, Task

ENGINES = ("postgresql", "mysql", "redshift")
#: AWS's engine names (DescribeDBInstances ``Engine``) -> ours.
_AWS_ENGINES = {
    "postgres": "postgresql",
    "aurora-postgresql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "aurora": "mysql",
    "aurora-mysql": "mysql",
    "redshift": "redshift",
}
_DATABASE_TYPES = ("JdbcDatabase", "RdsDatabase", "RedshiftDatabase")
_JAVA_ONLY = ("jdbcDriverClass", "jdbcDriverJarUri")
_noted_java_fields = threading.Event()


@dataclass(frozen=True, slots=True)
class Connection:
    """How the child connects. ``options`` holds the driver options dp-runner
    maps (``ssl``, ``ssl_ca``, ``connect_timeout_s``, ``read_timeout_s``,
    ``application_name``, ``charset``); ``lookup`` is ``("rds", id)`` or
    ``("redshift", id)`` until ``resolve`` has run. ``ignored`` names what was
    read but has no effect (the note logged once)."""

    engine: str
    host: str | None = None
    port: int | None = None
    database: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    options: Mapping[str, str] = field(default_factory=dict)
    lookup: tuple[str, str] | None = None
    region: str | None = None
    ignored: tuple[str, ...] = ()

    def to_job(self) -> dict[str, Any]:
        """The JSON the child reads (password included: it goes on stdin only)."""
        return {
            "engine": self.engine,
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "user": self.user,
            "password": self.password,
            "options": dict(self.options),
        }


def database_of(task: Task, start: PipelineObject | None, role: str) -> Connection:
    """The connection of the object ``start`` (the attempt when None): its
    ``database`` reference, or (data nodes) the inline ``connectionString``,
    ``username`` and ``*password``. Raises ``ActivityError``."""
    value = task.get("database", start)
    if value is None:
        inline = task.get_str("connectionString", start)
        if start is not None and inline:
            return _from_url(task, start, inline)
        raise ActivityError("MissingField", f"{role} needs a 'database'")
    if not isinstance(value, Ref):
        raise ActivityError("InvalidField", f"{role}: 'database' must be a reference")
    obj = task.objects.get(value.id)
    if obj is None:
        raise ActivityError("MissingField", f"database {value.id!r} is not in the task")
    kind = task.get_str("type", obj) or ""
    if kind == "RdsDatabase":
        return _rds(task, obj)
    if kind == "RedshiftDatabase":
        return _redshift(task, obj)
    if kind == "JdbcDatabase":
        text = _required(task, obj, "connectionString")
        return _from_url(task, obj, text)
    raise ActivityError(
        "UnsupportedDatabase",
        f"database {obj.id!r} is a {kind or 'object without type'}; "
        f"dp-runner reads {', '.join(_DATABASE_TYPES)}",
    )


def resolve(
    conn: Connection, region: str | None, stop: threading.Event
) -> tuple[Connection, databases.Endpoint | None]:
    """``conn`` with the host, port, engine (and database, when unset) its AWS id
    names; unchanged without a lookup. Blocks on one AWS call; raises
    ``ActivityError(DatabaseLookupFailed)``."""
    if conn.lookup is None:
        return conn, None
    kind, ident = conn.lookup
    where = conn.region or region
    if kind == "rds":
        found = databases.describe_db_instance(ident, where, stop=stop)
    else:
        found = databases.describe_cluster(ident, where, stop=stop)
    engine = _AWS_ENGINES.get(found.engine)
    if engine is None:
        raise ActivityError(
            databases.LOOKUP_ERROR,
            f"{ident!r} runs {found.engine!r}; dp-runner connects to PostgreSQL, "
            "MySQL/MariaDB (and Aurora's) and Redshift",
        )
    resolved = replace(
        conn,
        engine=engine,
        host=found.host,
        port=found.port or DEFAULT_PORTS[engine],
        database=conn.database or found.database,
        lookup=None,
    )
    return resolved, found


def note_java_fields() -> bool:
    """True the first time in this process (the caller logs the note once)."""
    if _noted_java_fields.is_set():
        return False
    _noted_java_fields.set()
    return True


# ----------------------------------------------------------------- the objects


def _rds(task: Task, obj: PipelineObject) -> Connection:
    ident = _required(task, obj, "rdsInstanceId")
    return Connection(
        engine="postgresql",  # until the lookup says
        database=task.get_str("databaseName", obj),
        user=task.get_str("username", obj),
        password=task.get_str("*password", obj),
        options=_properties(task, obj, {}, "postgresql"),
        lookup=("rds", ident),
        region=task.get_str("region", obj),
        ignored=_java_fields(task, obj),
    )


def _redshift(task: Task, obj: PipelineObject) -> Connection:
    text = task.get_str("connectionString", obj)
    if text:
        conn = _from_url(task, obj, text)
        if conn.engine == "mysql":
            raise ActivityError(
                "InvalidField",
                f"RedshiftDatabase {obj.id!r}: its connectionString is not Redshift's",
            )
        return replace(conn, engine="redshift")
    ident = task.get_str("clusterId", obj)
    if not ident:
        raise ActivityError(
            "MissingField",
            f"RedshiftDatabase {obj.id!r} needs 'clusterId' or 'connectionString'",
        )
    return Connection(
        engine="redshift",
        database=task.get_str("databaseName", obj),
        user=task.get_str("username", obj),
        password=task.get_str("*password", obj),
        options=_properties(task, obj, {}, "redshift"),
        lookup=("redshift", ident),
        region=task.get_str("region", obj),
        ignored=_java_fields(task, obj),
    )


def _from_url(task: Task, obj: PipelineObject, text: str) -> Connection:
    """A JDBC URL, with the object's username, password, databaseName and
    jdbcProperties winning over what the URL says."""
    engine, host, port, database, params = parse_jdbc_url(text)
    user = task.get_str("username", obj) or params.pop("user", None)
    password = task.get_str("*password", obj) or params.pop("password", None)
    params.pop("user", None)
    params.pop("password", None)
    return Connection(
        engine=engine,
        host=host,
        port=port,
        database=task.get_str("databaseName", obj) or database,
        user=user,
        password=password,
        options=_properties(task, obj, params, engine),
        ignored=_java_fields(task, obj),
    )


def _properties(
    task: Task, obj: PipelineObject, url_params: dict[str, str], engine: str
) -> dict[str, str]:
    """URL parameters, then ``jdbcProperties`` (``key=value``), as driver options."""
    params = dict(url_params)
    for value in task.get_all("jdbcProperties", obj):
        if isinstance(value, Ref):
            raise ActivityError("InvalidField", "jdbcProperties must be key=value")
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise ActivityError(
                "InvalidField", f"jdbcProperties: {key[:40]!r} is not key=value"
            )
        params[key.strip().lower()] = text.strip()
    return driver_options(params, engine)


def _java_fields(task: Task, obj: PipelineObject) -> tuple[str, ...]:
    return tuple(key for key in _JAVA_ONLY if task.get(key, obj) is not None)


def _required(task: Task, obj: PipelineObject, key: str) -> str:
    value = task.get_str(key, obj)
    if not value or not value.strip():
        raise ActivityError("MissingField", f"{obj.id!r} needs {key!r}")
    return value.strip()


class Resolving:
    """A connection as the plan reads it, resolved (RdsDatabase,
    RedshiftDatabase) by a ``before`` transfer, then handed to the child's job.
    Not thread-safe: the transfer runs before the spawn that reads it."""

    def __init__(self, conn: Connection, ctx: ActivityContext, role: str) -> None:
        self.conn = conn
        self._ctx = ctx
        self._role = role
        if conn.ignored and note_java_fields():
            ctx.log.info("jdbc_driver_fields_ignored", fields=list(conn.ignored))
        ignored = conn.options.get("ignored")
        if ignored:
            ctx.log.info("jdbc_properties_ignored", role=role, keys=ignored.split(","))

    def transfer(self) -> Transfer | None:
        """The lookup step, or None when the connection names its host."""
        if self.conn.lookup is None:
            return None
        return Transfer(f"resolve_{self._role}_database", self._resolve)

    def _resolve(self) -> None:
        ctx = self._ctx
        self.conn, found = resolve(self.conn, ctx.region, ctx.stop)
        if found is not None:
            ctx.log.info(
                "database_resolved",
                role=self._role,
                host=self.conn.host,
                port=self.conn.port,
                engine=self.conn.engine,
                aws_engine=found.engine,
                database=self.conn.database,
            )

    def job(self) -> dict[str, Any]:
        return self.conn.to_job()
