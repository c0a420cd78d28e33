"""CopyActivity against the command-line tools, both ways, PostgreSQL and MariaDB.

About ``--mb`` (default 1000) of CSV in the DG's dialect (about 250-byte records,
one in eight with an escaped comma, one in sixteen with a NULL) is put on moto's
standalone S3 server. Then for each engine (a private PostgreSQL 15, a private
MariaDB), ``--runs`` times (default 3), alternating which side goes first so the
machine's load falls on both alike:

- the runner: a real ``python -m runner run`` process against the local service,
  given a pipeline of two CopyActivities: the object into a table, then the table
  back out to a new object. Each task's time is its ``task_finished``
  ``duration_s`` (the database child's start and connect included).
- the command-line tools a user would script instead: ``aws s3 cp`` of the object
  to a file (one GET, like the runner's), then ``psql -c "\\copy t FROM file"`` or
  ``mariadb -e "LOAD DATA LOCAL INFILE 'file' INTO TABLE t ..."``; and ``psql -c
  "\\copy (SELECT ...) TO file"`` or ``mariadb --batch -e "SELECT ..." > file``,
  then ``aws s3 cp`` of the file up (multipart, 8 MB parts, as the runner's).

Both exports end in one CompleteMultipartUpload of the same size in 8 MB parts,
each part with its CRC32 (``aws s3 cp`` and the runner both declare the
algorithm), which moto answers by joining the parts in Python, a cost of moto's
and not of either side. Each run times one such completion on its own (the bench
uploads the same number of parts, CRC32 included, and completes them), and the
exports are given with it and without it (their time minus that completion).

Prints each run's seconds and the load average, the median ratio of the CLIs'
time to the runner's per direction (target: at least 1.0x), the runner's RSS
(idle before, peak during, after: it must not move) and the database child's peak
RSS (target: under 200 MB).

Run: python bench/bench_sql.py [--mb 1000] [--runs 3] [--engines postgresql,mysql]
[--python .venv-runtime/bin/python] (the runner as shipped: the dev venv's rich,
which structlog imports, adds to each database child's start). The database child
runs in the task's folder, so it imports the runner installed in that venv, not
this checkout's: reinstall it after a change (``make bench`` does).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.aws.s3stream import crc32
from runner.localservice import LocalService
from runner.pipelinefile import definition_from_json
from tests.support.dbservers import DbServer, running_mariadb, running_postgres
from tests.support.s3server import start_moto_server, stop_moto_server

MB = 1_000_000
PART = 8 * 1024 * 1024  # the AWS CLI's part size, and the runner's
#: About 250 bytes a record: an order line with a free-text note.
NOTE = (
    "order {:>12}: "
    + "delivered to the loading dock; signed for by the night shift " * 3
)
BUCKET = "bench-sql"
TABLE_SQL = (
    "CREATE TABLE {name} (id BIGINT, name TEXT, amount NUMERIC(12, 2), note TEXT)"
)
SERVERS: dict[str, Callable[[], Any]] = {
    "postgresql": running_postgres,
    "mysql": running_mariadb,
}
LABEL = {"postgresql": "PostgreSQL", "mysql": "MariaDB"}


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


class Sampler:
    """The RSS of the runner, and the peak of its children's, every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.figures = {"before": self.rss(), "peak": 0.0, "child_peak": 0.0}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def rss(self) -> float:
        return float(self.proc.memory_info().rss) / MB

    def _sample(self) -> None:
        figures = self.figures
        while not self._done.wait(0.02):
            figures["peak"] = max(figures["peak"], self.rss())
            for child in self.proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    rss = child.memory_info().rss / MB
                    figures["child_peak"] = max(figures["child_peak"], rss)

    def stop(self) -> dict[str, float]:
        self._done.set()
        self._thread.join()
        return self.figures


def settle(pid: int) -> None:
    """Wait until the runner is idle: its RSS unchanged for 3 s (a minute at most:
    on a loaded machine its start takes a while)."""
    proc, last, since = psutil.Process(pid), -1, time.monotonic()
    deadline = since + 60
    while time.monotonic() < deadline and time.monotonic() - since < 3:
        rss = proc.memory_info().rss
        if rss != last:
            last, since = rss, time.monotonic()
        time.sleep(0.2)


def timed(argv: list[str], env: dict[str, str], stdout: Any = None) -> float:
    started = time.monotonic()
    subprocess.run(
        argv, check=True, env=env, stdout=stdout or subprocess.DEVNULL, timeout=1800
    )
    return time.monotonic() - started


class Clis:
    """The command lines a user would script: aws s3 cp, then psql or mariadb."""

    def __init__(self, db: DbServer, env: dict[str, str], scratch: Path) -> None:
        self.db, self.scratch = db, scratch
        self.aws = [str(Path(sys.executable).with_name("aws")), "s3", "cp", "--quiet"]
        # One GET, as the runner reads it: moto answers each of the CLI's ranged
        # GETs by copying the whole object, which would make the CLI ten times
        # slower. Uploads keep the CLI's defaults (8 MB parts, 10 at once).
        one_get = scratch / "aws-config"
        one_get.write_text("[default]\ns3 =\n  multipart_threshold = 64GB\n")
        self.env = env
        self.get_env = {**env, "AWS_CONFIG_FILE": str(one_get)}
        if db.engine == "postgresql":
            self.client = ["/usr/bin/psql", "-q", "-X", "-v", "ON_ERROR_STOP=1"]
            self.client += ["-h", db.host, "-p", str(db.port), "-U", db.user]
            self.client += ["-d", db.database]
            self.db_env = {**env, "PGPASSWORD": db.password}
        else:
            self.client = ["/usr/bin/mariadb", "--no-defaults", "-h", db.host]
            self.client += ["-P", str(db.port), "-u", db.user, db.database]
            self.db_env = {**env, "MYSQL_PWD": db.password}

    def load(self) -> float:
        local = self.scratch / "cli-in.csv"
        seconds = timed(
            [*self.aws, f"s3://{BUCKET}/in/data.csv", str(local)], self.get_env
        )
        if self.db.engine == "postgresql":
            sql = f"\\copy base FROM '{local}' WITH (FORMAT text, DELIMITER ',')"
            seconds += timed([*self.client, "-c", sql], self.db_env)
        else:
            sql = (
                f"LOAD DATA LOCAL INFILE '{local}' INTO TABLE base"
                " CHARACTER SET utf8mb4"
                " FIELDS TERMINATED BY ',' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n'"
            )
            seconds += timed([*self.client, "--local-infile=1", "-e", sql], self.db_env)
        local.unlink()
        return seconds

    def export(self) -> float:
        out = self.scratch / "cli-out.csv"
        if self.db.engine == "postgresql":
            sql = "\\copy (SELECT * FROM base) TO "
            sql += f"'{out}' WITH (FORMAT text, DELIMITER ',')"
            seconds = timed([*self.client, "-c", sql], self.db_env)
        else:
            argv = [*self.client, "--batch", "--skip-column-names"]
            with out.open("wb") as sink:
                seconds = timed([*argv, "-e", "SELECT * FROM base"], self.db_env, sink)
        seconds += timed([*self.aws, str(out), f"s3://{BUCKET}/cli/out.csv"], self.env)
        out.unlink()
        return seconds


def pipeline(db: DbServer, run: int) -> list[dict[str, Any]]:
    driver = (
        "org.postgresql.Driver" if db.engine == "postgresql" else "com.mysql.Driver"
    )
    database = {
        "id": "Db",
        "name": "Db",
        "type": "JdbcDatabase",
        "connectionString": db.url,
        "jdbcDriverClass": driver,
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
            "filePath": f"s3://{BUCKET}/out/{run}.csv",
        },
        {
            "id": "T",
            "name": "T",
            "type": "SqlDataNode",
            "database": {"ref": "Db"},
            "table": "runner_copy",
            "selectQuery": "SELECT * FROM runner_copy",
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


class Runner:
    """The local service and one ``runner run`` process, for all of an engine's runs."""

    def __init__(self, python: str, env: dict[str, str], scratch: Path) -> None:
        self.service = LocalService(
            host="127.0.0.1",
            port=0,
            state_path=scratch / "svc.db",
            time_scale=0.01,
            poll_hold_s=0.5,
        )
        self.service.start()
        self.log_path = scratch / "runner.log"
        argv = [python, "-m", "runner", "run"]
        argv += ["--endpoint-url", self.service.endpoint_url, "--region", "us-east-1"]
        argv += ["--work-dir", str(scratch / "work"), "--log-format", "json"]
        argv += ["--worker-group", "bench", "--heartbeat-interval", "5"]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        self.dp = boto3.client(
            "datapipeline",
            region_name="us-east-1",
            endpoint_url=self.service.endpoint_url,
        )
        self.finished = 0

    def run(self, db: DbServer, number: int) -> tuple[float, float]:
        pid = self.dp.create_pipeline(name="bench", uniqueId=f"bench-{number}")[
            "pipelineId"
        ]
        defn = definition_from_json({"objects": pipeline(db, number)})
        self.dp.put_pipeline_definition(
            pipelineId=pid, pipelineObjects=defn.pipeline_objects
        )
        self.dp.activate_pipeline(pipelineId=pid)
        self.finished += 2
        events = wait_tasks(self.log_path, self.finished)[-2:]
        if any(e.get("status") not in (None, "FINISHED") for e in events):
            raise RuntimeError(f"a copy failed: {events}")
        load, export = (float(e["duration_s"]) for e in events)
        return load, export

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.service.stop()


def wait_tasks(log_path: Path, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        lines = log_path.read_text(errors="replace").splitlines()
        events = [json.loads(line) for line in lines if '"task_finished"' in line]
        if len(events) >= count:
            return events
        time.sleep(0.2)
    raise TimeoutError("the runner did not finish its tasks")


def completion_s(s3: Any, size: int) -> float:
    """Seconds moto takes to complete an upload of ``size`` bytes in 8 MB parts,
    each with its CRC32, as both sides send them (moto answers an upload without a
    checksum algorithm by copying the whole object and checksumming it: about
    three times as long)."""
    upload = s3.create_multipart_upload(
        Bucket=BUCKET, Key="completion/probe", ChecksumAlgorithm="CRC32"
    )
    body, parts = b"x" * PART, []
    for number, start in enumerate(range(0, size, PART), start=1):
        piece = body[: min(PART, size - start)]
        checksum = crc32(piece)
        etag = s3.upload_part(
            Bucket=BUCKET,
            Key="completion/probe",
            PartNumber=number,
            UploadId=upload["UploadId"],
            Body=piece,
            ChecksumCRC32=checksum,
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag, "ChecksumCRC32": checksum})
    started = time.monotonic()
    s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key="completion/probe",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": parts},
    )
    seconds = time.monotonic() - started
    s3.delete_object(Bucket=BUCKET, Key="completion/probe")
    return seconds


def prepare(server: DbServer) -> DbServer:
    """The two tables (``base`` for the CLIs, ``runner_copy``), owned by ``dp``."""
    admin = server.admin()
    with admin.cursor() as cur:
        if server.engine == "mysql":
            cur.execute("CREATE DATABASE bench")
            cur.execute("GRANT ALL ON bench.* TO 'dp'@'%'")
            cur.execute("USE bench")
        for name in ("base", "runner_copy"):
            # UTF-8 text, and both sides' LOAD DATA says so: the server's work is
            # the same (MariaDB's own default here would be latin1)
            utf8 = " CHARACTER SET utf8mb4" if server.engine == "mysql" else ""
            cur.execute(TABLE_SQL.format(name=name) + utf8)
            if server.engine == "postgresql":
                cur.execute(f"ALTER TABLE {name} OWNER TO dp")
    admin.close()
    if server.engine == "mysql":
        return DbServer(**{**server.__dict__, "database": "bench"})
    return server


def truncate(server: DbServer) -> None:
    admin = server.admin()
    with admin.cursor() as cur:
        for name in ("base", "runner_copy"):
            cur.execute(f"TRUNCATE TABLE {name}")
    admin.close()


def bench_engine(
    server: DbServer,
    *,
    env: dict[str, str],
    scratch: Path,
    size: int,
    runs: int,
    python: str,
) -> dict[str, Any]:
    db = prepare(server)
    clis = Clis(db, env, scratch)
    s3 = boto3.client(
        "s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1"
    )
    runner = Runner(python, env, scratch / db.engine)
    rows: list[dict[str, float]] = []
    try:
        settle(runner.process.pid)
        sampler = Sampler(runner.process.pid)
        for number in range(runs):
            truncate(db)
            row: dict[str, float] = {"load_avg": os.getloadavg()[0]}
            order = ("runner", "cli") if number % 2 == 0 else ("cli", "runner")
            for side in order:
                if side == "runner":
                    row["load"], row["export"] = runner.run(db, number)
                    s3.delete_object(Bucket=BUCKET, Key=f"out/{number}.csv")
                else:
                    row["cli_load"], row["cli_export"] = clis.load(), clis.export()
            row["completion"] = completion_s(s3, size)
            rows.append(row)
            print_run(db.engine, number, row, size)
        time.sleep(2)
        rss = sampler.stop()
        rss["after"] = sampler.rss()
    finally:
        runner.close()
    return {"rows": rows, "rss": rss}


def print_run(engine: str, number: int, row: dict[str, float], size: int) -> None:
    print(
        f"  {LABEL[engine]} run {number + 1} (load average {row['load_avg']:.1f}): "
        f"S3->db runner {row['load']:.1f} s, CLIs {row['cli_load']:.1f} s; "
        f"db->S3 runner {row['export']:.1f} s, CLIs {row['cli_export']:.1f} s; "
        f"moto's completion of {size / MB:.0f} MB {row['completion']:.1f} s",
        flush=True,
    )


def summary(engine: str, result: dict[str, Any], size: int) -> None:
    rows = result["rows"]

    def ratio(ours: str, theirs: str, minus: str | None = None) -> str:
        cut = (lambda r: r[minus]) if minus else (lambda r: 0.0)
        figures = [(r[theirs] - cut(r)) / (r[ours] - cut(r)) for r in rows]
        ours_s = statistics.median(r[ours] - cut(r) for r in rows)
        return (
            f"{statistics.median(figures):.2f}x (runs: "
            + ", ".join(f"{f:.2f}" for f in figures)
            + f"; runner {size / MB / ours_s:.0f} MB/s)"
        )

    name = LABEL[engine]
    print(f"{name}: S3 -> table {ratio('load', 'cli_load')} (target >= 1.0x)")
    print(f"{name}: table -> S3 {ratio('export', 'cli_export')} with moto's completion")
    print(
        f"{name}: table -> S3 {ratio('export', 'cli_export', 'completion')} without it"
    )
    rss = result["rss"]
    print(
        f"{name}: runner RSS idle {rss['before']:.1f} MB, peak {rss['peak']:.1f} MB "
        f"({rss['peak'] - rss['before']:+.1f}), after {rss['after']:.1f} MB "
        f"({rss['after'] - rss['before']:+.1f}); database child peak "
        f"{rss['child_peak']:.1f} MB (target < 200)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engines", default="postgresql,mysql")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter for the runner (and its database child): `make bench` "
        "gives the runtime-only venv, as shipped",
    )
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
        size = upload_source(scratch, env, args.mb)
        for engine in args.engines.split(","):
            (scratch / engine).mkdir()
            with SERVERS[engine]() as server:
                result = bench_engine(
                    server,
                    env=env,
                    scratch=scratch,
                    size=size,
                    runs=args.runs,
                    python=args.python,
                )
            summary(engine, result, size)
    finally:
        stop_moto_server(moto)
        shutil.rmtree(scratch, ignore_errors=True)


def upload_source(scratch: Path, env: dict[str, str], size_mb: int) -> int:
    source = scratch / "data.csv"
    rows = make_csv(source, size_mb)
    size = source.stat().st_size
    s3 = boto3.client(
        "s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1"
    )
    s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(str(source), BUCKET, "in/data.csv")
    source.unlink()
    print(
        f"data: {size / MB:.0f} MB, {rows} records; host: {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
        flush=True,
    )
    return size


if __name__ == "__main__":
    main()
