"""Staging throughput and memory: runner.aws.s3 against plain boto3, on moto's server.

Two data sets, each moved both ways through moto's standalone S3 server on
127.0.0.1 (a child process, so it does not share this process's GIL or memory):
1,000 small files (4 KiB each) and one 200 MB object.

For each, ``runner.aws.s3.S3`` (``upload_dir``/``download_prefix``, ``upload_file``/
``download_file``) is compared with what ``aws s3 cp --recursive`` does with boto3
alone, written as a sequential loop of ``client.upload_file``/``download_file`` with the
default TransferConfig, and with the AWS CLI's own ``aws s3 cp --recursive`` (awscli,
a dev dependency, run in-process). Prints MB/s, files/s, and the process's RSS before
each run and its peak during it (psutil, sampled every 10 ms): the runner's memory
must stay flat.

Each transfer runs in a fresh child process, so its RSS figures are its own and not
what an earlier transfer left in the allocator.

Run: python bench/bench_staging.py [--files 1000] [--big-mb 200]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import psutil
import structlog

from runner.aws.s3 import S3

MB = 1_000_000
_RUNNING = re.compile(rb"Running on http://127\.0\.0\.1:(\d+)")


@contextmanager
def moto_server(log_path: Path) -> Iterator[str]:
    """moto's standalone server on a port the OS picks; yields its endpoint URL."""
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not (match := _RUNNING.search(log_path.read_bytes())):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"moto did not start: {log_path.read_text()}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{int(match.group(1))}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def peak_rss() -> Iterator[dict[str, int]]:
    """Sample this process's RSS every 10 ms; ``before`` and ``peak`` in bytes."""
    me = psutil.Process()
    result = {"before": me.memory_info().rss, "peak": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            result["peak"] = max(result["peak"], me.memory_info().rss)

    thread = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    thread.start()
    try:
        yield result
    finally:
        done.set()
        thread.join()
        result["peak"] = max(result["peak"], me.memory_info().rss)


def measure(label: str, size_bytes: int, files: int, fn: Callable[[], object]) -> None:
    with peak_rss() as rss:
        started = time.monotonic()
        fn()
        elapsed_s = time.monotonic() - started
    before, peak = rss["before"] / 2**20, rss["peak"] / 2**20
    print(
        f"{label:<40} {elapsed_s:7.2f} s {size_bytes / MB / elapsed_s:8.1f} MB/s "
        f"{files / elapsed_s:7.0f} files/s  RSS {before:5.0f} MiB "
        f"-> peak {peak:5.0f} MiB (+{peak - before:.0f})",
        flush=True,
    )


def boto3_upload_loop(client: Any, src: Path, bucket: str, prefix: str) -> None:
    for path in sorted(src.rglob("*")):
        if path.is_file():
            key = prefix + path.relative_to(src).as_posix()
            client.upload_file(str(path), bucket, key)


def boto3_download_loop(client: Any, bucket: str, prefix: str, dest: Path) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix
    ):
        for item in page.get("Contents", []):
            path = dest / item["Key"][len(prefix) :]
            path.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, item["Key"], str(path))


def aws_cli(*args: str) -> Callable[[], object]:
    """The AWS CLI's ``aws s3 ...``, run in this process so its RSS is measured too."""

    def run() -> None:
        from awscli.clidriver import create_clidriver  # noqa: PLC0415 - optional

        if create_clidriver().main(["s3", *args, "--only-show-errors"]) != 0:
            raise RuntimeError(f"aws s3 {' '.join(args)} failed")

    return run


def cases(root: Path, bucket: str) -> dict[str, Callable[[], object]]:
    """Every measured transfer, by name; each runs in a fresh process."""
    s3 = S3(region=None, log=structlog.get_logger())
    s3.exists(f"s3://{bucket}/big.bin")  # its client made before the clock starts
    client = boto3.session.Session().client("s3")
    small, big = root / "small", root / "big.bin"
    b = f"s3://{bucket}"
    return {
        "runner S3.upload_dir": lambda: s3.upload_dir(small, f"{b}/up/runner/"),
        "boto3 upload_file loop": lambda: boto3_upload_loop(
            client, small, bucket, "up/boto3/"
        ),
        "aws s3 cp --recursive (upload)": aws_cli(
            "cp", "--recursive", str(small), f"{b}/up/cli/"
        ),
        "runner S3.download_prefix": lambda: s3.download_prefix(
            f"{b}/small/", root / "out"
        ),
        "boto3 download_file loop": lambda: boto3_download_loop(
            client, bucket, "small/", root / "out"
        ),
        "aws s3 cp --recursive (download)": aws_cli(
            "cp", "--recursive", f"{b}/small/", str(root / "out")
        ),
        "runner S3.upload_file": lambda: s3.upload_file(big, f"{b}/up/runner.bin"),
        "boto3 client.upload_file": lambda: client.upload_file(
            str(big), bucket, "up/boto3.bin"
        ),
        "runner S3.download_file": lambda: s3.download_file(
            f"{b}/big.bin", root / "out" / "big.bin"
        ),
        "boto3 client.download_file": lambda: client.download_file(
            bucket, "big.bin", str(root / "out" / "big.bin")
        ),
    }


def run_case(name: str, root: Path, bucket: str, size_bytes: int, files: int) -> None:
    """In a fresh child: one transfer, measured; the output folder is removed."""
    structlog.configure(  # the figures only: the runner's info lines stay out
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    (root / "out").mkdir()
    try:
        measure(name, size_bytes, files, cases(root, bucket)[name])
    finally:
        shutil.rmtree(root / "out", ignore_errors=True)


def prepare(root: Path, bucket: str, count: int, big_mb: int) -> None:
    client = boto3.session.Session().client("s3")
    client.create_bucket(Bucket=bucket)
    for n in range(count):
        path = root / "small" / f"d{n % 10}" / f"f{n:05}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(4096))
    boto3_upload_loop(client, root / "small", bucket, "small/")
    with (root / "big.bin").open("wb") as file:
        for _ in range(big_mb):
            file.write(os.urandom(MB))
    client.upload_file(str(root / "big.bin"), bucket, "big.bin")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--big-mb", type=int, default=200)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    bucket = "bench"
    if args.case:
        big = args.case.endswith("_file")
        size = args.big_mb * MB if big else args.files * 4096
        run_case(args.case, args.root, bucket, size, 1 if big else args.files)
        return
    with tempfile.TemporaryDirectory(prefix="bench-staging-") as tmp:
        run_all(Path(tmp), bucket, args.files, args.big_mb)


def run_all(root: Path, bucket: str, files: int, big_mb: int) -> None:
    """Start moto, put the data in place, then measure each case in a fresh child."""
    with moto_server(root / "moto.log") as endpoint:
        os.environ.update(
            AWS_ENDPOINT_URL_S3=endpoint,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106 - a dummy for moto
            AWS_DEFAULT_REGION="us-east-1",
            AWS_REGION="us-east-1",
        )
        prepare(root, bucket, files, big_mb)
        print(f"{files} files of 4 KiB, one object of {big_mb} MB; a process per line")
        sizes = ["--files", str(files), "--big-mb", str(big_mb)]
        for name in cases(root, bucket):
            argv = [sys.executable, __file__, "--case", name, "--root", str(root)]
            subprocess.run([*argv, *sizes], check=True)


if __name__ == "__main__":
    main()
