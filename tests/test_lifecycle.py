"""``lifecycle.Lifecycle``, the one order of ``run``, ``run --local`` and ``exec``
(issue 23): a real runner process built by it against the local service over real
HTTP, with a watcher that writes when each of its steps is called.

What is asserted is what the service received and when (``RecordedCall.at`` and
the watcher's stamps are both ``CLOCK_MONOTONIC``, one clock for every process on
the host): the preflight's runner heartbeat comes before the watcher's
``prepare``, the worker's first poll after it, and ``start``, then ``stop``, come
in that order; a ``prepare`` that fails stops the run before the worker starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from runner.localservice import LocalService
from tests.support.pipelines import REGION
from tests.support.runners import REPO

#: A runner composed by ``Lifecycle`` with a recording watcher. Argv: endpoint,
#: work dir, the watcher's record, and "fail" for a ``prepare`` that fails.
SCRIPT = """
import json, sys, time
from pathlib import Path
from runner.aws.session import new_session
from runner.config import load_settings
from runner.errors import ConfigError
from runner.lifecycle import Lifecycle
from runner.signals import LOCAL_RUN_ENDED

endpoint, work_dir, record, mode = sys.argv[1:5]

def stamp(step):
    with open(record, "a") as out:
        out.write(json.dumps({"step": step, "at": time.monotonic()}) + "\\n")

class Recording:
    def prepare(self, runner):
        stamp("prepare")
        if mode == "fail":
            raise ConfigError("the watcher's prepare failed")
        return {}

    def start(self, runner):
        stamp("start")
        runner.signals.inbox.put(LOCAL_RUN_ENDED)  # end as run --local's watch ends

    def stop(self):
        stamp("stop")

settings = load_settings(config_file=None, overrides={
    "endpoint_url": endpoint, "region": "%s", "worker_groups": ["wg"],
    "work_dir": Path(work_dir), "log_format": "json", "drain_timeout": 1.0,
})
try:
    runner = Lifecycle(
        settings, Recording(), session=new_session("%s", ("test", "test"))
    ).run()
except ConfigError:
    stamp("raised")
else:
    stamp("returned")
""" % (REGION, REGION)  # noqa: UP031 - the script's braces stay as they are


def compose(service: LocalService, tmp_path: Path, mode: str) -> list[dict[str, Any]]:
    """Run the script to its end; the watcher's stamps, in order."""
    record = tmp_path / "record.jsonl"
    command = [sys.executable, "-c", SCRIPT, service.endpoint_url]
    command += [str(tmp_path / "work"), str(record), mode]
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return [json.loads(line) for line in record.read_text().splitlines()]


def first_at(service: LocalService, operation: str) -> float | None:
    calls = service.calls(operation)
    return calls[0].at if calls else None


def test_one_order_preflight_prepare_worker_start_dispatch_stop(
    service: LocalService, tmp_path: Path
) -> None:
    stamps = compose(service, tmp_path, "ok")
    assert [s["step"] for s in stamps] == ["prepare", "start", "stop", "returned"]
    at = {s["step"]: s["at"] for s in stamps}
    preflight = first_at(service, "ReportTaskRunnerHeartbeat")
    assert preflight is not None
    assert preflight < at["prepare"]
    first_poll = first_at(service, "PollForTask")
    assert first_poll is None or first_poll > at["prepare"]


def test_a_prepare_that_fails_never_starts_the_worker(
    service: LocalService, tmp_path: Path
) -> None:
    stamps = compose(service, tmp_path, "fail")
    assert [s["step"] for s in stamps] == ["prepare", "raised"]
    assert service.calls("ReportTaskRunnerHeartbeat")  # the preflight ran
    assert service.calls("PollForTask") == []
