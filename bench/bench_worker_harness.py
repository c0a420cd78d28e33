"""The harness of the worker benches: the local service, the real runner, figures.

Owns: ``TimedService`` (the local service, also stamping when each answer is built:
``RecordedCall.at`` is the request's ARRIVAL, and the ack latency and the cancel
figure count from the ANSWER), the runner as a child process
(``python -m runner run ... --log-format json``, as tests/conftest.py starts it),
pipeline submission through boto3, and the PASS/FAIL lines.

Must not: change or monkeypatch anything in ``runner/``; the runner is measured as
shipped, from the service's side of the wire. Not a bench by itself: see
``bench_worker.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psutil
from botocore.config import Config

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from runner.localservice import LocalService  # noqa: E402 - after the path fix-up

MB = 1024 * 1024
REGION = "us-east-1"

#: The bare loop: the three calls and the shell a no-op task needs, nothing else
#: (no log, no journal, no heartbeat). Argv: endpoint, group, tasks, work dir.
BASELINE = """
import os, socket, subprocess, sys, boto3
from botocore.config import Config
url, group, count, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
dp = boto3.client("datapipeline", endpoint_url=url, region_name="us-east-1",
                  config=Config(retries={"total_max_attempts": 1}, read_timeout=120))
host = socket.gethostname()
for _ in range(count):
    task = dp.poll_for_task(workerGroup=group, hostname=host)["taskObject"]
    dp.report_task_progress(taskId=task["taskId"])
    attempt = task["objects"][task["attemptId"]]
    command = [f["stringValue"] for f in attempt["fields"] if f["key"] == "command"][0]
    script = os.path.join(work, "script.sh")
    with open(script, "w") as handle:
        handle.write(command)
    with open(os.path.join(work, "StdOutput"), "ab") as out, \\
            open(os.path.join(work, "StdError"), "ab") as err:
        subprocess.run(["bash", script], cwd=work, stdin=subprocess.DEVNULL,
                       stdout=out, stderr=err, start_new_session=True, check=False)
    dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
"""


@dataclass(frozen=True, slots=True)
class Answer:
    """One answered request: operation, request and answer bodies, answer time."""

    operation: str
    raw: bytes  # the request body, parsed only when a figure needs it
    body: bytes
    at: float  # time.monotonic() when the answer was built

    @property
    def request(self) -> dict[str, Any]:
        return dict(json.loads(self.raw)) if self.raw else {}


class TimedService(LocalService):
    """The local service, also stamping when each answer is ready to be sent."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answers: list[Answer] = []

    def handle(
        self, target: str | None, raw: bytes
    ) -> tuple[int, bytes | None, str | None]:
        status, body, cut = super().handle(target, raw)
        operation = (target or "").rpartition(".")[2]
        self.answers.append(Answer(operation, raw, body or b"", time.monotonic()))
        return status, body, cut

    def answered(self, operation: str, group: str | None = None) -> list[Answer]:
        return [
            a
            for a in list(self.answers)
            if a.operation == operation
            and (group is None or a.request.get("workerGroup") == group)
        ]


@dataclass
class Results:
    """Every figure, with its verdict; ack samples pooled across phases."""

    lines: list[tuple[str, bool | None]] = field(default_factory=list)
    ack_ms: dict[str, list[float]] = field(default_factory=dict)

    def figure(self, text: str, ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("  PASS" if ok else "  FAIL")
        self.lines.append((text, ok))
        print(f"  {text}{verdict}", flush=True)

    @property
    def failed(self) -> bool:
        return any(ok is False for _, ok in self.lines)


def clean_env(scratch: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "DP_RUNNER_", "NOTIFY_SOCKET", "WATCHDOG_"))
    }
    env.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106 - a dummy for the local service
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(scratch / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(scratch / "no-aws-creds"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def client(endpoint_url: str) -> Any:
    return boto3.client(
        "datapipeline",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - a dummy for the local service
        config=Config(retries={"total_max_attempts": 1}, read_timeout=120),
    )


@contextmanager
def service(scratch: Path, poll_hold_s: float) -> Iterator[TimedService]:
    svc = TimedService(
        state_path=scratch / f"service-{time.monotonic_ns()}.db",
        poll_hold_s=poll_hold_s,
    )
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


@contextmanager
def runner(
    svc: LocalService,
    scratch: Path,
    group: str,
    *flags: str,
    python: str,
    wrap: tuple[str, ...] = (),
    start_timeout_s: float = 20.0,
) -> Iterator[psutil.Process]:
    """The real runner (under ``wrap``, e.g. valgrind, when given); yields once it
    logged ``worker_started``."""
    name = f"runner-{time.monotonic_ns()}"
    log_path = scratch / f"{name}.log"
    command = [
        *wrap,
        *(python, "-m", "runner", "run", "--endpoint-url", svc.endpoint_url),
        *("--region", REGION, "--worker-group", group, "--log-format", "json"),
        *("--work-dir", str(scratch / name), "--drain-timeout", "5", *flags),
    ]
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env=clean_env(scratch),
        )
    try:
        wait_until(
            lambda: b'"worker_started"' in log_path.read_bytes(),
            start_timeout_s,
            proc,
        )
        yield psutil.Process(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_until(
    predicate: Callable[[], object],
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the runner exited early ({proc.returncode})")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout} s")
        time.sleep(0.01)


def submit(dp: Any, group: str, commands: list[str]) -> str:
    """One ondemand pipeline with one independent activity per command."""
    objects: list[dict[str, Any]] = [
        {
            "id": "Default",
            "name": "Default",
            "fields": [{"key": "scheduleType", "stringValue": "ondemand"}],
        }
    ]
    for i, command in enumerate(commands):
        fields = {"type": "ShellCommandActivity", "command": command}
        fields |= {"workerGroup": group, "maximumRetries": "0"}
        objects.append(
            {
                "id": f"A{i}",
                "name": f"A{i}",
                "fields": [{"key": k, "stringValue": v} for k, v in fields.items()],
            }
        )
    pid = dp.create_pipeline(name="bench", uniqueId=os.urandom(8).hex())["pipelineId"]
    answer = dp.put_pipeline_definition(pipelineId=pid, pipelineObjects=objects)
    if answer["errored"]:
        raise SystemExit(f"bench definition rejected: {answer}")
    dp.activate_pipeline(pipelineId=pid)
    return str(pid)


def statuses(svc: TimedService) -> list[Answer]:
    return [a for a in svc.answered("SetTaskStatus") if b"__type" not in a.body]


def handed_out(svc: TimedService, group: str) -> list[tuple[str, float]]:
    """(taskId, answer time) of every PollForTask that handed out a task."""
    found = []
    for answer in svc.answered("PollForTask", group):
        task = json.loads(answer.body or b"{}").get("taskObject")
        if task:
            found.append((str(task["taskId"]), answer.at))
    return found


def ack_latencies_ms(svc: TimedService, group: str) -> list[float]:
    """From each PollForTask answer to the arrival of that task's first
    ReportTaskProgress (``RecordedCall.at`` is the arrival time)."""
    first_ack: dict[str, float] = {}
    for call in svc.calls("ReportTaskProgress"):
        first_ack.setdefault(str(call.request.get("taskId")), call.at)
    return [
        (first_ack[task_id] - at) * 1000
        for task_id, at in handed_out(svc, group)
        if task_id in first_ack
    ]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def spread(values: list[float]) -> str:
    return (
        f"p50 {pct(values, 0.5):.1f} / p90 {pct(values, 0.9):.1f} / "
        f"p99 {pct(values, 0.99):.1f} / max {max(values):.1f} ms (n={len(values)})"
    )
