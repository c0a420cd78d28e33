"""The two sides of ``bench_sql.py``: the command lines a user would script
(``aws s3 cp`` with ``psql`` or ``mariadb``), and the runner (a real ``python -m
runner run`` process against the local service, given a pipeline of two
CopyActivities), and the tables they fill (``prepare``, ``truncate``). Each export
reads ``export_query(copies, table)``: the table, or that many copies of it
(``UNION ALL``), the same on both sides."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3

from runner.localservice import LocalService
from runner.pipelinefile import definition_from_json
from tests.support.dbservers import DbServer
from tests.support.sqltasks import database_object

BUCKET = "bench-sql"
TABLE_SQL = (
    "CREATE TABLE {name} (id BIGINT, name TEXT, amount NUMERIC(12, 2), note TEXT)"
)


def export_query(copies: int, table: str) -> str:
    """The export's query: ``table``, or ``copies`` of it one after the other."""
    return " UNION ALL ".join([f"SELECT * FROM {table}"] * copies)  # noqa: S608


def timed(argv: list[str], env: dict[str, str], stdout: Any = None) -> float:
    started = time.monotonic()
    subprocess.run(
        argv, check=True, env=env, stdout=stdout or subprocess.DEVNULL, timeout=1800
    )
    return time.monotonic() - started


class Clis:
    """The command lines a user would script: aws s3 cp, then psql or mariadb."""

    def __init__(
        self, db: DbServer, env: dict[str, str], scratch: Path, copies: int
    ) -> None:
        self.db, self.scratch, self.copies = db, scratch, copies
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
            sql = f"\\copy ({export_query(self.copies, 'base')}) TO "
            sql += f"'{out}' WITH (FORMAT text, DELIMITER ',')"
            seconds = timed([*self.client, "-c", sql], self.db_env)
        else:
            argv = [*self.client, "--batch", "--skip-column-names"]
            with out.open("wb") as sink:
                select = export_query(self.copies, "base")
                seconds = timed([*argv, "-e", select], self.db_env, sink)
        seconds += timed([*self.aws, str(out), f"s3://{BUCKET}/cli/out.csv"], self.env)
        out.unlink()
        return seconds


def pipeline(db: DbServer, run: int, copies: int) -> list[dict[str, Any]]:
    database = database_object(db)
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
            "selectQuery": export_query(copies, "runner_copy"),
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

    def run(self, db: DbServer, number: int, copies: int) -> tuple[float, float]:
        pid = self.dp.create_pipeline(name="bench", uniqueId=f"bench-{number}")[
            "pipelineId"
        ]
        defn = definition_from_json({"objects": pipeline(db, number, copies)})
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
