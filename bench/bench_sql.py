"""CopyActivity throughput and the runner's memory: S3 -> PostgreSQL -> S3.

About ``--mb`` (default 1000) of CSV in the DG's dialect (about 250-byte records,
one in eight with an escaped comma, one in sixteen with a NULL) is put on moto's
standalone S3 server. Then, in the same run and against the same servers:

- the runner: a real ``python -m runner run`` process against the local service,
  given a pipeline of two CopyActivities: the object into a table (COPY FROM
  STDIN), then the table back out to a new object (COPY TO STDOUT, multipart
  upload). Each task's time is its ``task_finished`` ``duration_s``.
- the baseline: ``aws s3 cp`` of the object to a local file (one GET, like the
  runner's: moto serves the CLI's ranged GETs by copying the whole object each
  time), then ``psql -c "\\copy ... FROM"`` into a second table; and ``psql
  "\\copy base TO"`` a file, then ``aws s3 cp`` of it up (multipart, as the CLI
  does).

Prints MB/s both ways, the ratio of the runner's speed to the baseline's (target:
at least 0.7x), and the runner process's RSS (psutil, every 20 ms): idle before the
pipeline, the peak during it (target: at most +50 MB; the database work runs in a
child, whose memory is not the runner's), and after it (target: within 10 MB of
before).

Run: python bench/bench_sql.py [--mb 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.localservice import LocalService
from runner.pipelinefile import definition_from_json
from tests.support.dbservers import DbServer, running_postgres
from tests.support.s3server import start_moto_server, stop_moto_server

MB = 1_000_000
#: About 250 bytes a record: an order line with a free-text note.
NOTE = (
    "order {:>12}: "
    + "delivered to the loading dock; signed for by the night shift " * 3
)
BUCKET = "bench-sql"
TABLE_SQL = "CREATE TABLE {name} (id BIGINT, name TEXT, amount NUMERIC, note TEXT)"


def make_csv(path: Path, size_mb: int) -> int:
    """Write about ``size_mb`` MB of records; their count."""
    count = 0
    block: list[str] = []
    with path.open("w", encoding="utf-8") as out:
        while out.tell() < size_mb * MB:
            for _ in range(10_000):
                count += 1
                name = f"customer {count % 9973}" + ("\\, jr" if count % 8 == 0 else "")
                note = "\\N" if count % 16 == 0 else NOTE.format(count * 7919 % 100003)
                block.append(f"{count},{name},{count % 100000 / 100:.2f},{note}\n")
            out.write("".join(block))
            block.clear()
    return count


@contextmanager
def rss_sampler(pid: int) -> Iterator[dict[str, float]]:
    proc = psutil.Process(pid)
    figures = {"before": proc.memory_info().rss / MB, "peak": 0.0}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            figures["peak"] = max(figures["peak"], proc.memory_info().rss / MB)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield figures
    finally:
        done.set()
        thread.join()


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def baseline(db: DbServer, env: dict[str, str], scratch: Path) -> tuple[float, float]:
    aws = [str(Path(sys.executable).with_name("aws")), "s3", "cp", "--quiet"]
    psql = [
        shutil.which("psql") or "/usr/bin/psql",
        "-q",
        "-X",
        "-v",
        "ON_ERROR_STOP=1",
    ]
    psql += ["-h", db.host, "-p", str(db.port), "-U", db.user, "-d", db.database]
    penv = {**env, "PGPASSWORD": db.password}
    local = scratch / "baseline-in.csv"
    # One GET, as the runner reads it: moto answers each of the CLI's ranged GETs by
    # copying the whole object, which would make the baseline ten times slower.
    one_get = scratch / "aws-config"
    one_get.write_text("[default]\ns3 =\n  multipart_threshold = 64GB\n")
    load = timed(
        [*aws, f"s3://{BUCKET}/in/data.csv", str(local)],
        {**env, "AWS_CONFIG_FILE": str(one_get)},
    )
    load += timed(
        [*psql, "-c", f"\\copy base FROM '{local}' WITH (FORMAT text, DELIMITER ',')"],
        penv,
    )
    local.unlink()
    out = scratch / "baseline-out.csv"
    export = timed(
        [*psql, "-c", f"\\copy base TO '{out}' WITH (FORMAT text, DELIMITER ',')"],
        penv,
    )
    export += timed([*aws, str(out), f"s3://{BUCKET}/baseline/out.csv"], env)
    out.unlink()
    return load, export


def pipeline(db: DbServer) -> list[dict[str, Any]]:
    database = {
        "id": "Db",
        "name": "Db",
        "type": "JdbcDatabase",
        "connectionString": db.url,
        "jdbcDriverClass": "org.postgresql.Driver",
        "username": db.user,
        "*password": db.password,
    }
    nodes = [
        {
            "id": "In",
            "name": "In",
            "type": "S3DataNode",
            "filePath": f"s3://{BUCKET}/in/data.csv",
        },
        {
            "id": "Out",
            "name": "Out",
            "type": "S3DataNode",
            "filePath": f"s3://{BUCKET}/out/data.csv",
        },
        {
            "id": "T",
            "name": "T",
            "type": "SqlDataNode",
            "database": {"ref": "Db"},
            "table": "runner_copy",
        },
    ]
    activities = [
        {
            "id": "Load",
            "name": "Load",
            "type": "CopyActivity",
            "input": {"ref": "In"},
            "output": {"ref": "T"},
        },
        {
            "id": "Export",
            "name": "Export",
            "type": "CopyActivity",
            "input": {"ref": "T"},
            "output": {"ref": "Out"},
            "dependsOn": {"ref": "Load"},
        },
    ]
    default = {
        "id": "Default",
        "name": "Default",
        "scheduleType": "ondemand",
        "workerGroup": "bench",
    }
    return [default, database, *nodes, *activities]


def run_runner(db: DbServer, env: dict[str, str], scratch: Path) -> dict[str, Any]:
    service = LocalService(
        host="127.0.0.1",
        port=0,
        state_path=scratch / "svc.db",
        time_scale=0.01,
        poll_hold_s=0.5,
    )
    service.start()
    log_path = scratch / "runner.log"
    argv = [
        sys.executable,
        "-m",
        "runner",
        "run",
        "--endpoint-url",
        service.endpoint_url,
    ]
    argv += [
        "--region",
        "us-east-1",
        "--work-dir",
        str(scratch / "work"),
        "--log-format",
        "json",
    ]
    argv += ["--worker-group", "bench", "--heartbeat-interval", "5"]
    with log_path.open("wb") as log:
        runner = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        time.sleep(3)  # let it settle into its idle polling
        dp = boto3.client(
            "datapipeline", region_name="us-east-1", endpoint_url=service.endpoint_url
        )
        with rss_sampler(runner.pid) as rss:
            pid = dp.create_pipeline(name="bench", uniqueId="bench-sql")["pipelineId"]
            defn = definition_from_json({"objects": pipeline(db)})
            dp.put_pipeline_definition(
                pipelineId=pid, pipelineObjects=defn.pipeline_objects
            )
            dp.activate_pipeline(pipelineId=pid)
            finished = wait_tasks(log_path, 2)
        time.sleep(2)
        rss["after"] = psutil.Process(runner.pid).memory_info().rss / MB
        return {"tasks": finished, "rss": rss}
    finally:
        runner.terminate()
        runner.wait(30)
        service.stop()


def wait_tasks(log_path: Path, count: int) -> list[dict[str, Any]]:
    while True:
        lines = log_path.read_text(errors="replace").splitlines()
        events = [json.loads(line) for line in lines if '"task_finished"' in line]
        if len(events) >= count:
            return events
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1000)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-sql-", dir="/tmp"))
    moto, endpoint = start_moto_server(scratch / "moto.log")
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update(env)  # this process's clients too (the local service's)
    try:
        with running_postgres() as server:
            report(server, env, scratch, args.mb)
    finally:
        stop_moto_server(moto)
        shutil.rmtree(scratch, ignore_errors=True)


def report(server: DbServer, env: dict[str, str], scratch: Path, size_mb: int) -> None:
    admin = server.admin()
    for name in ("base", "runner_copy"):
        admin.execute(TABLE_SQL.format(name=name))
        admin.execute(f"ALTER TABLE {name} OWNER TO dp")
    admin.close()
    source = scratch / "data.csv"
    rows = make_csv(source, size_mb)
    size = source.stat().st_size
    s3 = boto3.client(
        "s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1"
    )
    s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(str(source), BUCKET, "in/data.csv")
    source.unlink()
    print(f"data: {size / MB:.0f} MB, {rows} records")
    base_load, base_export = baseline(server, env, scratch)
    ran = run_runner(server, env, scratch)
    load, export = (t["duration_s"] for t in ran["tasks"])
    counted = [t.get("rows") for t in ran["tasks"]]
    for label, ours, theirs in (
        ("S3 -> PostgreSQL", load, base_load),
        ("PostgreSQL -> S3", export, base_export),
    ):
        print(
            f"{label}: runner {size / MB / ours:.0f} MB/s ({ours:.1f} s), "
            f"aws s3 cp + psql \\copy {size / MB / theirs:.0f} MB/s ({theirs:.1f} s): "
            f"{theirs / ours:.2f}x (target >= 0.7x)"
        )
    rss = ran["rss"]
    grew, kept = rss["peak"] - rss["before"], rss["after"] - rss["before"]
    print(
        f"runner RSS: idle {rss['before']:.1f} MB, peak {rss['peak']:.1f} MB "
        f"(+{grew:.1f}, target <= +50), after {rss['after']:.1f} MB "
        f"({kept:+.1f}, target within 10); rows {counted}"
    )
    exported = s3.head_object(Bucket=BUCKET, Key="out/data.csv")["ContentLength"]
    print(f"exported object: {exported / MB:.0f} MB")


if __name__ == "__main__":
    main()
