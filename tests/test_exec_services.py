"""``dp-runner exec`` with the services a slot uses: staging in and out of moto's S3
server, a precondition the embedded service checks in S3 itself, and a SqlActivity
against the test PostgreSQL (its masked password from the values file)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from tests.support.dbservers import DbServer
from tests.support.execs import DEFINITIONS, run_exec, slot


def test_staging_in_and_out_against_s3(
    tmp_path: Path, s3_admin: Any, s3_bucket: str
) -> None:
    """The slot's folders come from ``@scheduledStartTime``; Raw's precondition
    (a key that never comes) is stripped: the scheduler checks preconditions."""
    start = slot(30).replace(minute=0, second=0)
    hour = f"{start:%Y-%m-%d-%H}"
    s3_admin.put_object(Bucket=s3_bucket, Key=f"raw/{hour}/a.txt", Body=b"abc\n")
    s3_admin.put_object(Bucket=s3_bucket, Key="raw/other/b.txt", Body=b"no\n")
    done = run_exec(
        DEFINITIONS / "staging.json",
        tmp_path,
        "--object",
        "Uppercase",
        "--scheduled-start",
        f"{start}",
        "--parameter-values",
        f"myBucket={s3_bucket}",
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    listed = s3_admin.list_objects_v2(Bucket=s3_bucket, Prefix="upper/")
    assert sorted(o["Key"] for o in listed["Contents"]) == [
        f"upper/{hour}/a.txt",
        f"upper/{hour}/slot.txt",
    ]
    got = s3_admin.get_object(Bucket=s3_bucket, Key=f"upper/{hour}/a.txt")
    assert got["Body"].read() == b"ABC\n"
    end = start + dt.timedelta(hours=1)
    got = s3_admin.get_object(Bucket=s3_bucket, Key=f"upper/{hour}/slot.txt")
    assert got["Body"].read() == f"until {end:%Y-%m-%dT%H:%M:%S}\n".encode()


def test_sql_activity_against_postgresql(tmp_path: Path, pg_db: DbServer) -> None:
    """A SqlActivity of the slot, as docs/exec.md runs it: the masked password
    from ``DP_PARAMETER_myPassword``, which reaches no output."""
    start = slot(50)
    done = run_exec(
        DEFINITIONS / "sql.json",
        tmp_path,
        "--object",
        "Record",
        "--scheduled-start",
        f"{start}",
        "--parameter-values",
        f"myConnectionString={pg_db.url}",
        f"myUsername={pg_db.user}",
        env={**os.environ, "DP_PARAMETER_myPassword": pg_db.password},
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    end = start + dt.timedelta(days=1)
    assert pg_db.query("SELECT slot_start, slot_end FROM exec_slots") == [
        (f"{start:%Y-%m-%dT%H:%M:%S}", f"{end:%Y-%m-%dT%H:%M:%S}")
    ]
    assert pg_db.password not in done.stdout + done.stderr
    written = [p for p in (tmp_path / "work").rglob("*") if p.is_file()]
    assert all(pg_db.password.encode() not in p.read_bytes() for p in written)


def test_a_precondition_the_service_checks(
    tmp_path: Path, s3_admin: Any, s3_bucket: str
) -> None:
    """S3KeyExists is checked by the (embedded) service itself, against moto:
    FALSE (exit 3) before the key exists, then 0."""
    args = ["--object", "NeverThere", "--scheduled-start", f"{slot(1)}"]
    values = ["--parameter-values", f"myBucket={s3_bucket}"]
    done = run_exec(DEFINITIONS / "staging.json", tmp_path, *args, *values)
    assert done.returncode == 3, done.stdout + done.stderr[-3000:]
    s3_admin.put_object(Bucket=s3_bucket, Key="never/_SUCCESS", Body=b"")
    done = run_exec(DEFINITIONS / "staging.json", tmp_path, *args, *values)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
