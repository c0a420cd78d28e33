"""End to end, SqlActivity: the real runner process, the local service, and real
PostgreSQL and MariaDB servers (``tests/support/dbservers.py``).

Every test runs once per server (``any_db``) and asserts what the database holds,
what the service received and, where the password could leak, that it did not:
not in the runner's log, the attempt's files, the status sent, nor the child's
``/proc/<pid>/cmdline`` and ``environ``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.localservice import LocalService
from tests.support.dbservers import DbServer
from tests.support.pipelines import (
    default_object,
    statuses_sent,
    submit,
    wait_instances,
)
from tests.support.runners import RunnerProcess
from tests.support.sqltasks import (
    STOP_GRACE,
    activity_instance,
    assert_no_password,
    database_object,
    running_sleeps,
)
from tests.support.waiting import wait_for

Spawn = Callable[..., RunnerProcess]


def sql_activity(script: str, *args: str, **fields: Any) -> dict[str, Any]:
    activity: dict[str, Any] = {
        "id": "Sql",
        "name": "Sql",
        "type": "SqlActivity",
        "database": {"ref": "Db"},
        "script": script,
        "maximumRetries": "0",
        **fields,
    }
    if args:
        activity["scriptArgument"] = list(args)
    return activity


def test_script_with_bound_arguments_runs_statement_by_statement(
    service: LocalService, dp: Any, spawn_runner: Spawn, any_db: DbServer
) -> None:
    script = (
        "CREATE TABLE notes (id INT, body VARCHAR(200));\n"
        "INSERT INTO notes VALUES (?, ?); -- the first two arguments\n"
        "INSERT INTO notes VALUES (?, '50% of ?');"
    )
    hostile = "x'); DROP TABLE notes; --"
    activity = sql_activity(script, "1", hostile, "2")
    pipeline_id = submit(dp, [default_object(), database_object(any_db), activity])
    runner = spawn_runner()
    wait_instances(dp, pipeline_id, {"FINISHED"})
    rows = any_db.query("SELECT id, body FROM notes ORDER BY id")
    assert [tuple(r) for r in rows] == [(1, hostile), (2, "50% of ?")]
    finished = runner.wait_event("task_finished", outcome="finished")
    assert finished["rows"] == 2
    assert_no_password(any_db, runner, service)


def test_failing_statement_leaves_the_ones_before_and_skips_the_rest(
    service: LocalService, dp: Any, spawn_runner: Spawn, any_db: DbServer
) -> None:
    script = (
        "CREATE TABLE first_one (x INT);\n"
        "INSERT INTO no_such_table VALUES (1);\n"
        "CREATE TABLE never_made (x INT);"
    )
    objects = [default_object(), database_object(any_db), sql_activity(script)]
    pipeline_id = submit(dp, objects)
    runner = spawn_runner()
    wait_instances(dp, pipeline_id, {"FAILED"})
    (sent,) = statuses_sent(service)
    code = "42P01" if any_db.engine == "postgresql" else "1146"
    assert sent["errorId"] == f"SqlError:{code}"
    assert "no_such_table" in sent["errorMessage"]
    assert "(statement 2 of 3)" in sent["errorMessage"]
    tables = any_db.query(
        "SELECT table_name FROM information_schema.tables WHERE table_name IN "
        "('first_one', 'never_made')"
    )
    assert [t[0] for t in tables] == ["first_one"]
    assert_no_password(any_db, runner, service)


def test_failed_transaction_is_rolled_back(
    service: LocalService, dp: Any, spawn_runner: Spawn, any_db: DbServer
) -> None:
    any_db.query("CREATE TABLE ledger (x INT)")
    if any_db.engine == "mysql":
        any_db.query(f"GRANT ALL ON {any_db.database}.* TO 'dp'@'%'")
    else:
        any_db.query("ALTER TABLE ledger OWNER TO dp")
    script = (
        "BEGIN;\n"
        "INSERT INTO ledger VALUES (1);\n"
        "INSERT INTO ledger VALUES ('not a number');\n"
        "COMMIT;"
    )
    objects = [default_object(), database_object(any_db), sql_activity(script)]
    pipeline_id = submit(dp, objects)
    spawn_runner()
    wait_instances(dp, pipeline_id, {"FAILED"})
    (sent,) = statuses_sent(service)
    assert sent["errorId"].startswith("SqlError:")
    assert any_db.query("SELECT count(*) FROM ledger")[0][0] == 0


def proc_text(pid: int, name: str) -> bytes:
    return Path(f"/proc/{pid}/{name}").read_bytes()


def test_cancel_ends_the_statement_on_the_server_and_sends_no_status(
    service: LocalService, dp: Any, spawn_runner: Spawn, any_db: DbServer
) -> None:
    sleep = (
        "SELECT pg_sleep(60)" if any_db.engine == "postgresql" else "SELECT SLEEP(60)"
    )
    objects = [default_object(), database_object(any_db), sql_activity(sleep)]
    pipeline_id = submit(dp, objects)
    runner = spawn_runner(*STOP_GRACE)
    started = runner.wait_event("task_started")
    wait_for(lambda: running_sleeps(any_db), 15, "the sleep on the server")
    child = started["pid"]
    secret = any_db.password.encode()
    assert secret not in proc_text(child, "cmdline")
    assert secret not in proc_text(child, "environ")
    instance_id = activity_instance(dp, pipeline_id, "Sql")
    dp.set_status(pipelineId=pipeline_id, objectIds=[instance_id], status="TRY_CANCEL")
    runner.wait_event("task_finished", outcome="canceled")
    wait_for(lambda: not running_sleeps(any_db), 5, "the sleep to be gone")
    assert statuses_sent(service) == []
    assert_no_password(any_db, runner, service)


def test_attempt_timeout_cancels_the_statement_and_fails(
    service: LocalService, dp: Any, spawn_runner: Spawn, any_db: DbServer
) -> None:
    sleep = (
        "SELECT pg_sleep(60)" if any_db.engine == "postgresql" else "SELECT SLEEP(60)"
    )
    activity = sql_activity(sleep, attemptTimeout="3 seconds")
    pipeline_id = submit(dp, [default_object(), database_object(any_db), activity])
    runner = spawn_runner(*STOP_GRACE)
    wait_for(lambda: running_sleeps(any_db), 15, "the sleep on the server")
    runner.wait_event("task_finished", timeout=20, outcome="failed")
    wait_for(lambda: not running_sleeps(any_db), 5, "the sleep to be gone")
    wait_instances(dp, pipeline_id, {"FAILED"})
    (sent,) = statuses_sent(service)
    assert sent["errorId"] == "AttemptTimeout"
