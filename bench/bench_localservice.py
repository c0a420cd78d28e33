"""Task-API throughput of the local service: full cycles per second on loopback.

A cycle is PollForTask, ReportTaskProgress (the ack) and SetTaskStatus FINISHED,
made with boto3 exactly as a runner makes them. The service runs in a child
process (so it does not share the GIL with the clients); `--clients` threads in
this process (default 8) run cycles until the tasks are used up. Prints cycles/s
and p50/p99 latency per call. Target: at least 300 cycles/s.

Run: python bench/bench_localservice.py [--tasks 3000] [--clients 8]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

_SERVE = """
import sys
from runner.localservice import LocalService
svc = LocalService(poll_hold_s=1.0)
svc.start()
print(svc.endpoint_url, flush=True)
sys.stdin.read()
svc.stop()
"""


def client(endpoint_url: str) -> Any:
    return boto3.client(
        "datapipeline",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - dummy
        config=Config(retries={"max_attempts": 1}, max_pool_connections=4),
    )


def create_tasks(dp: Any, count: int) -> None:
    """One ondemand pipeline per 100 activities, activated at once."""
    for start in range(0, count, 100):
        objects = [
            {
                "id": "Default",
                "name": "Default",
                "fields": [{"key": "scheduleType", "stringValue": "ondemand"}],
            }
        ]
        objects += [
            {
                "id": f"A{i}",
                "name": f"A{i}",
                "fields": [
                    {"key": "type", "stringValue": "ShellCommandActivity"},
                    {"key": "command", "stringValue": "true"},
                    {"key": "workerGroup", "stringValue": "bench"},
                ],
            }
            for i in range(start, min(count, start + 100))
        ]
        pid = dp.create_pipeline(name="bench", uniqueId=f"bench-{start}")["pipelineId"]
        answer = dp.put_pipeline_definition(pipelineId=pid, pipelineObjects=objects)
        if answer["errored"]:
            raise SystemExit(f"bench definition rejected: {answer}")
        dp.activate_pipeline(pipelineId=pid)


def worker(
    endpoint_url: str, latencies: dict[str, list[float]], done: list[tuple[int, float]]
) -> None:
    """Run cycles until a poll comes back empty; record (cycles, last cycle end)."""
    dp = client(endpoint_url)
    mine: dict[str, list[float]] = {"poll": [], "ack": [], "status": []}
    cycles = 0
    last_end = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        task = dp.poll_for_task(workerGroup="bench", hostname="bench").get("taskObject")
        t1 = time.perf_counter()
        if task is None:
            break
        dp.report_task_progress(taskId=task["taskId"])
        t2 = time.perf_counter()
        dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
        t3 = time.perf_counter()
        mine["poll"].append(t1 - t0)
        mine["ack"].append(t2 - t1)
        mine["status"].append(t3 - t2)
        cycles += 1
        last_end = t3
    for key, values in mine.items():
        latencies[key].extend(values)
    done.append((cycles, last_end))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        endpoint_url = proc.stdout.readline().strip() if proc.stdout else ""
        create_tasks(client(endpoint_url), args.tasks)
        latencies: dict[str, list[float]] = {"poll": [], "ack": [], "status": []}
        done: list[tuple[int, float]] = []
        threads = [
            threading.Thread(target=worker, args=(endpoint_url, latencies, done))
            for _ in range(args.clients)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # up to the last completed cycle (the final empty polls wait out the hold)
        elapsed = max(end for _, end in done) - started
        total = sum(cycles for cycles, _ in done)
        print(
            f"{total} cycles, {args.clients} clients, {elapsed:.2f} s: "
            f"{total / elapsed:.0f} cycles/s"
        )
        for key, values in latencies.items():
            values.sort()
            p50 = statistics.median(values) * 1000
            p99 = values[int(len(values) * 0.99) - 1] * 1000
            print(f"  {key:<7} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
