"""`dp-runner run --local examples/sql.json` end to end: the CLI as a real process,
a real PostgreSQL (and MariaDB) server, moto's S3 server. The connection and the
masked password go in as parameter values, as a newcomer would give them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.dbservers import DbServer
from tests.support.runners import REPO, run_local

EXAMPLE = REPO / "examples" / "sql.json"


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_sql_example_fills_a_table_and_exports_it(
    tmp_path: Any, s3_admin: Any, s3_bucket: str, engine: str, request: Any
) -> None:
    db: DbServer = request.getfixturevalue(
        "pg_db" if engine == "postgresql" else "mysql_db"
    )
    done = run_local(
        EXAMPLE,
        tmp_path,
        "--parameter-values",
        f"myConnectionString={db.url}",
        f"myUsername={db.user}",
        f"*myPassword={db.password}",
        "myGreeting=hi",
        f"myOutputUri=s3://{s3_bucket}/sql-demo/greetings.csv",
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    got = s3_admin.get_object(Bucket=s3_bucket, Key="sql-demo/greetings.csv")
    assert got["Body"].read().decode() == (
        "1,hello,\\N\n"
        "2,hello\\, world,commas\\, and a\\\nnewline\n"
        "3,hi,C:\\\\temp\\\\greetings\n"
    )
    assert db.password not in done.stdout + done.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(db.password.encode() not in p.read_bytes() for p in written)
