"""The cancel phase of the worker bench: how fast a canceled task's tree is dead.

A bash task with a child (``sleep 600 & wait``) that obeys SIGTERM is set
TRY_CANCEL; from the service's answer ``canceled: true`` until every process of
the tree has ended (zombie or gone), psutil polled every 0.5 ms. Target: <= 100 ms.
Split from ``bench_worker.py`` by concept (a phase of its own; that file was past
350 lines).

Must not: edit or monkeypatch the runner; it is measured as shipped.

Run: python bench/bench_worker.py --only cancel
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

import psutil
from bench_worker_harness import (
    Results,
    TimedService,
    ack_latencies_ms,
    client,
    runner,
    service,
    spread,
    submit,
    wait_until,
)


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def cancel_once(
    svc: TimedService, dp: Any, proc: psutil.Process
) -> tuple[float, float]:
    """One canceled task; (ms to the tree's death, ms to its reaping)."""
    pipeline_id = submit(dp, "cancel", ["sleep 600 & wait"])
    tree: list[psutil.Process] = []

    def started() -> bool:
        tree[:] = proc.children(recursive=True)
        return any(p.name() == "sleep" for p in tree)

    wait_until(started, 20)
    # A random phase against the runner's heartbeat and its supervising tick.
    time.sleep(random.uniform(0.0, 0.5))  # noqa: S311 - a phase, not a secret
    (instance,) = dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE")["ids"]
    sent = time.monotonic()
    dp.set_status(pipelineId=pipeline_id, objectIds=[instance], status="TRY_CANCEL")
    while any(alive(p) for p in tree):
        time.sleep(0.0005)
    dead = time.monotonic()
    while any(psutil.pid_exists(p.pid) for p in tree):
        time.sleep(0.0005)
    reaped = time.monotonic()
    answered = [
        a.at
        for a in svc.answered("ReportTaskProgress")
        if a.at > sent and b'"canceled":true' in a.body
    ]
    return (dead - answered[0]) * 1000, (reaped - answered[0]) * 1000


def cancel(scratch: Path, res: Results, args: argparse.Namespace) -> None:
    print(f"cancel, bash + child obeying SIGTERM, {args.cancel_rounds} rounds:")
    with (
        service(scratch, 0.5) as svc,
        runner(
            *(svc, scratch, "cancel", "--max-tasks", "1"),
            *("--heartbeat-interval", "0.23"),  # not a multiple of the 50 ms tick
            python=args.python,
        ) as proc,
    ):
        dp = client(svc.endpoint_url)
        results = [cancel_once(svc, dp, proc) for _ in range(args.cancel_rounds)]
        res.ack_ms["cancel"] = ack_latencies_ms(svc, "cancel")
    dead = [d for d, _ in results]
    reaped = [r for _, r in results]
    res.figure(f"canceled answer -> tree dead: {spread(dead)}")
    res.figure(f"canceled answer -> tree reaped: {spread(reaped)}")
    res.figure(
        f"worst tree death {max(dead):.1f} ms (target <= 100 ms)", max(dead) <= 100
    )
