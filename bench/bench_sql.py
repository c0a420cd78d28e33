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

The two sides are ``sql_sides.py``. ``--export-copies K`` makes each export read
the table K times over (``UNION ALL``, both sides): an export of K times the data,
to see the child's memory stay flat with the size.

Run: python bench/bench_sql.py [--mb 1000] [--runs 3] [--engines postgresql,mysql]
[--export-copies 1] [--python .venv-runtime/bin/python] (the runner as shipped:
the dev venv's rich, which structlog imports, adds to each database child's
start). The database child
runs in the task's folder, so it imports the runner installed in that venv, not
this checkout's: reinstall it after a change (``make bench`` does).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
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

from sql_sides import BUCKET, Clis, Runner, prepare, truncate

from runner.aws.s3stream import crc32
from tests.support.dbservers import DbServer, running_mariadb, running_postgres
from tests.support.s3server import start_moto_server, stop_moto_server

MB = 1_000_000
PART = 8 * 1024 * 1024  # the AWS CLI's part size, and the runner's
#: About 250 bytes a record: an order line with a free-text note.
NOTE = (
    "order {:>12}: "
    + "delivered to the loading dock; signed for by the night shift " * 3
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


def bench_engine(
    server: DbServer,
    *,
    env: dict[str, str],
    scratch: Path,
    size: int,
    runs: int,
    copies: int,
    python: str,
) -> dict[str, Any]:
    db = prepare(server)
    clis = Clis(db, env, scratch, copies)
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
                    row["load"], row["export"] = runner.run(db, number, copies)
                    s3.delete_object(Bucket=BUCKET, Key=f"out/{number}.csv")
                else:
                    row["cli_load"], row["cli_export"] = clis.load(), clis.export()
            row["completion"] = completion_s(s3, size * copies)
            rows.append(row)
            print_run(db.engine, number, row, size * copies)
        time.sleep(2)
        rss = sampler.stop()
        rss["after"] = sampler.rss()
    finally:
        runner.close()
    return {"rows": rows, "rss": rss}


def print_run(engine: str, number: int, row: dict[str, float], out: int) -> None:
    print(
        f"  {LABEL[engine]} run {number + 1} (load average {row['load_avg']:.1f}): "
        f"S3->db runner {row['load']:.1f} s, CLIs {row['cli_load']:.1f} s; "
        f"db->S3 runner {row['export']:.1f} s, CLIs {row['cli_export']:.1f} s; "
        f"moto's completion of {out / MB:.0f} MB {row['completion']:.1f} s",
        flush=True,
    )


def summary(engine: str, result: dict[str, Any], size: int, copies: int) -> None:
    rows = result["rows"]

    def ratio(ours: str, theirs: str, minus: str | None = None) -> str:
        moved = size * (copies if ours == "export" else 1)
        cut = (lambda r: r[minus]) if minus else (lambda r: 0.0)
        figures = [(r[theirs] - cut(r)) / (r[ours] - cut(r)) for r in rows]
        ours_s = statistics.median(r[ours] - cut(r) for r in rows)
        return (
            f"{statistics.median(figures):.2f}x (runs: "
            + ", ".join(f"{f:.2f}" for f in figures)
            + f"; runner {moved / MB / ours_s:.0f} MB/s)"
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
        "--export-copies",
        type=int,
        default=1,
        help="each export reads the table that many times (UNION ALL, both "
        "sides): an export of that many times --mb, for the child's memory",
    )
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
                    copies=args.export_copies,
                    python=args.python,
                )
            summary(engine, result, size, args.export_copies)
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
