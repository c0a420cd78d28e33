"""SqlActivity and copy pipelines against the private database servers: the
database object, waiting on one activity's instance, and the check that a password
reaches neither the runner's output nor the service."""

from __future__ import annotations

from typing import Any

from runner.localservice import LocalService
from tests.support.dbservers import DbServer
from tests.support.pipelines import instances, statuses_sent
from tests.support.runners import RunnerProcess
from tests.support.waiting import wait_for

#: The stop tests give the child the grace a real runner gives it (kill_grace, 10 s
#: by default) rather than the suite's 0.5 s: cancelling on the server takes a new
#: connection (MySQL's KILL QUERY, PostgreSQL's cancel request), which on a loaded
#: host can take longer than half a second; the 5 s the checks allow still hold.
STOP_GRACE = ("--kill-grace", "5")


def database_object(db: DbServer, **fields: Any) -> dict[str, Any]:
    driver = (
        "org.postgresql.Driver" if db.engine == "postgresql" else "com.mysql.Driver"
    )
    return {
        "id": "Db",
        "name": "Db",
        "type": "JdbcDatabase",
        "connectionString": db.url,
        "jdbcDriverClass": driver,
        "username": db.user,
        "*password": db.password,
        **fields,
    }


def wait_activity(dp: Any, pipeline_id: str, activity: str, status: str) -> None:
    """Wait until the instance of ``activity`` has ``status`` (data nodes have
    instances of their own, which end otherwise)."""

    def ended() -> bool:
        found = instances(dp, pipeline_id)
        return any(
            key.startswith(f"@{activity}_") and fields.get("@status") == status
            for key, fields in found.items()
        )

    wait_for(ended, 20, f"{activity} {status}")


def activity_instance(dp: Any, pipeline_id: str, activity: str) -> str:
    (found,) = [i for i in instances(dp, pipeline_id) if i.startswith(f"@{activity}_")]
    return found


def everything_written(runner: RunnerProcess) -> str:
    """The runner's log and every file of its work dir, as text."""
    paths = [runner.log_path, *(p for p in runner.work_dir.rglob("*") if p.is_file())]
    return "\n".join(p.read_bytes().decode(errors="replace") for p in paths)


def assert_no_password(
    db: DbServer, runner: RunnerProcess, service: LocalService
) -> None:
    assert db.password not in everything_written(runner)
    assert db.password not in repr(statuses_sent(service))


def running_sleeps(db: DbServer) -> list[Any]:
    if db.engine == "postgresql":
        return db.query(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%%'"
        )
    return db.query(
        "SELECT id FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP%%'"
    )
