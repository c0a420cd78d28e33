"""The local service under load: a crowd answered, a slow client dropped, big
bodies refused with flat memory, memory back after each burst.

Starts `dp-runner local` as a child process (its own GIL; its RSS read with
psutil) and, from one asyncio loop of raw sockets, runs:
1. a crowd: `--clients` (500) connections at once, each one well-formed request
   (ListPipelines, DescribePipelines, GetPipelineDefinition, ValidatePipeline-
   Definition in turn); counts those answered within 30 s, and their latency;
2. a slow client that sends a byte a second: seconds until it is dropped;
3. `--big` (30) bodies of 50 MB at once: how many are refused 413, and the RSS
   peak while they are sent;
4. `--big` of the largest legal definition (100 objects of 15,360 bytes) at once
   to ValidatePipelineDefinition: all answered, and the RSS peak;
5. a body nested 100,000 deep: a 400.
The RSS is read before the bursts and 10 s after each. Targets (issue 13): every
request of the crowd answered; the slow client dropped at 10 s; the oversized
bodies refused with RSS flat; RSS back within 30 MB of its level 10 s after a
burst.

Run: python bench/bench_localservice_load.py [--clients 500] [--big 30] [--quick]
(--quick: a 100-client crowd, 5 big bodies, no 10 s settles: for development.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

SERVING = re.compile(r"serving the Data Pipeline API on (http://\S+)")
MB = 1024 * 1024
OVERSIZED = 50 * MB


def request(target: str, body: bytes, length: int | None = None) -> bytes:
    head = (
        "POST / HTTP/1.1\r\nHost: local\r\n"
        "Content-Type: application/x-amz-json-1.1\r\n"
        f"X-Amz-Target: DataPipeline.{target}\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\n\r\n"
    )
    return head.encode() + body


async def exchange(host: str, port: int, payload: bytes) -> tuple[int, bytes]:
    """Send one request; (status, body) of its answer."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(payload)
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await reader.readexactly(length)
    finally:
        writer.close()


def largest_definition(pipeline_id: str) -> bytes:
    """100 objects of about 15,300 UTF-8 bytes each: the DG's limits, filled."""
    objects = [
        {
            "id": f"Object{i:03}",
            "name": f"Object{i:03}",
            "fields": [
                {"key": "type", "stringValue": "ShellCommandActivity"},
                {"key": "workerGroup", "stringValue": "bench"},
                {"key": "command", "stringValue": "echo " + "x" * 10_000},
                {"key": "myNote", "stringValue": "é" * 2_600},
            ],
        }
        for i in range(100)
    ]
    return json.dumps({"pipelineId": pipeline_id, "pipelineObjects": objects}).encode()


class Service:
    """`dp-runner local` as a child, and its RSS."""

    def __init__(self, state: Path) -> None:
        root = Path(__file__).resolve().parent.parent
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runner", "local", "--port", "0", "--state", state],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.process.stderr.readline() if self.process.stderr else ""
        found = SERVING.search(line)
        if found is None:
            raise SystemExit(f"the service did not start: {line}")
        url = urlsplit(found.group(1))
        self.host, self.port = url.hostname or "", url.port or 0
        self.ps = psutil.Process(self.process.pid)
        self.pipeline_id = ""  # made by `prepare`
        self.small_definition: dict[str, Any] = {}

    def rss_mb(self) -> float:
        return float(self.ps.memory_info().rss) / MB

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class Peak:
    """Samples the service's RSS every 50 ms while in a `with` block."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.mb = max(self.mb, self.service.rss_mb())

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def settle(service: Service, seconds: float) -> float:
    threading.Event().wait(seconds)
    return service.rss_mb()


async def crowd(service: Service, clients: int) -> tuple[int, list[float], float]:
    """All at once; (answered, latencies in s, seconds until the last answer)."""
    bodies = [
        ("ListPipelines", {}),
        ("DescribePipelines", {"pipelineIds": [service.pipeline_id]}),
        ("GetPipelineDefinition", {"pipelineId": service.pipeline_id}),
        ("ValidatePipelineDefinition", service.small_definition),
    ]
    latencies: list[float] = []

    async def one(n: int) -> bool:
        target, body = bodies[n % len(bodies)]
        started = time.perf_counter()
        try:
            status, _ = await exchange(
                service.host, service.port, request(target, json.dumps(body).encode())
            )
        except OSError:
            return False
        latencies.append(time.perf_counter() - started)
        return status == 200

    started = time.perf_counter()
    done, pending = await asyncio.wait(
        [asyncio.create_task(one(n)) for n in range(clients)], timeout=30
    )
    for task in pending:
        task.cancel()
    answered = sum(1 for task in done if task.result())
    return answered, latencies, time.perf_counter() - started


async def slow_client(service: Service) -> float:
    """A byte a second; seconds from the first byte until the service drops it."""
    reader, writer = await asyncio.open_connection(service.host, service.port)
    payload = request("ListPipelines", b"{}")
    started = time.perf_counter()
    try:
        for byte in payload:
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1), 1.0) == b"":
                    break
            except TimeoutError:
                continue
    except OSError:
        pass
    finally:
        writer.close()
    return time.perf_counter() - started


async def oversized(service: Service, count: int) -> list[int]:
    """`count` bodies of 50 MB at once, each streamed after its headers."""

    async def one() -> int:
        reader, writer = await asyncio.open_connection(service.host, service.port)
        try:
            writer.write(request("PutPipelineDefinition", b"", length=OVERSIZED))
            chunk = b"x" * MB
            for _ in range(OVERSIZED // MB):
                writer.write(chunk)
                await writer.drain()
            return int((await reader.readline()).split()[1])
        except OSError:
            return 0
        finally:
            writer.close()

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def legal_bursts(service: Service, count: int, body: bytes) -> list[int]:
    payload = request("ValidatePipelineDefinition", body)

    async def one() -> int:
        return (await exchange(service.host, service.port, payload))[0]

    return list(await asyncio.gather(*(one() for _ in range(count))))


def prepare(service: Service) -> None:
    """A pipeline to describe, a small definition to validate."""

    async def create() -> dict[str, Any]:
        _, body = await exchange(
            service.host,
            service.port,
            request("CreatePipeline", b'{"name": "load", "uniqueId": "load"}'),
        )
        answer: dict[str, Any] = json.loads(body)
        return answer

    service.pipeline_id = asyncio.run(create())["pipelineId"]
    service.small_definition = {
        "pipelineId": service.pipeline_id,
        "pipelineObjects": [
            {
                "id": "Default",
                "name": "Default",
                "fields": [{"key": "scheduleType", "stringValue": "ondemand"}],
            },
            {
                "id": "A",
                "name": "A",
                "fields": [
                    {"key": "type", "stringValue": "ShellCommandActivity"},
                    {"key": "command", "stringValue": "true"},
                    {"key": "workerGroup", "stringValue": "bench"},
                ],
            },
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--big", type=int, default=30)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    clients, big, wait_s = (
        (100, 5, 2.0) if args.quick else (args.clients, args.big, 10.0)
    )
    with tempfile.TemporaryDirectory(prefix="bench-load-") as folder:
        service = Service(Path(folder) / "state.db")
        try:
            run(service, clients, big, wait_s)
        finally:
            service.stop()


def run(service: Service, clients: int, big: int, wait_s: float) -> None:
    prepare(service)
    before = settle(service, 2.0)
    print(f"RSS at rest: {before:.1f} MB")
    answered, latencies, elapsed = asyncio.run(crowd(service, clients))
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan")
    print(
        f"crowd: {answered}/{clients} answered (target {clients}/{clients}) in "
        f"{elapsed:.2f} s; latency p50 {statistics.median(latencies) * 1000:.0f} ms,"
        f" p99 {p99 * 1000:.0f} ms"
    )
    after = settle(service, wait_s)
    print(f"  RSS {wait_s:.0f} s after: {after:.1f} MB ({after - before:+.1f} MB)")
    dropped = asyncio.run(slow_client(service))
    print(f"slow client (a byte a second): dropped after {dropped:.1f} s (target 10)")
    with Peak(service) as peak:
        statuses = asyncio.run(oversized(service, big))
    refused = statuses.count(413)
    print(
        f"{big} bodies of 50 MB at once: {refused}/{big} refused 413; RSS peak "
        f"{peak.mb:.1f} MB ({peak.mb - before:+.1f} MB)"
    )
    after = settle(service, wait_s)
    print(f"  RSS {wait_s:.0f} s after: {after:.1f} MB ({after - before:+.1f} MB)")
    body = largest_definition(service.pipeline_id)
    with Peak(service) as peak:
        statuses = asyncio.run(legal_bursts(service, big, body))
    print(
        f"{big} legal definitions of {len(body) / MB:.1f} MB at once: "
        f"{statuses.count(200)}/{big} answered 200; RSS peak {peak.mb:.1f} MB "
        f"({peak.mb - before:+.1f} MB)"
    )
    after = settle(service, wait_s)
    print(
        f"  RSS {wait_s:.0f} s after: {after:.1f} MB ({after - before:+.1f} MB; "
        "target within 30 MB)"
    )
    deep = request("ListPipelines", b"[" * 100_000 + b"]" * 100_000)
    status, _ = asyncio.run(exchange(service.host, service.port, deep))
    print(f"a body nested 100,000 deep: {status} (target 400)")


if __name__ == "__main__":
    main()
