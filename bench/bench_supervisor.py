"""Supervisor figures: runner memory under a flood of task output, and cancel latency.

1. Output flood: a child writes ``--flood-mb`` MB (default 1024) to stdout with
   ``head -c``; the runner's RSS (psutil, sampled every 10 ms while it waits) must
   stay flat, because output goes to a file the runner never reads. Target: growth
   of 10 MB or less.
2. Cancel latency: a tree that obeys SIGTERM (the child, and a grandchild that called
   setsid) is killed with ``terminate(grace=10)``; the time from the call until the
   whole tree is gone and reaped. Target: 100 ms or less. Repeated ``--rounds`` times.

The bench makes itself a child subreaper first, as ``dp-runner run`` does.

Run: python bench/bench_supervisor.py [--flood-mb 1024] [--rounds 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner import supervisor
from runner.supervisor import Supervisor

MB = 1024 * 1024

# A task that obeys TERM: it forks a grandchild that calls setsid, then both wait.
TREE = """
import os, signal, sys
pid = os.fork()
if pid == 0:
    os.setsid()
    while True:
        signal.pause()
with open(sys.argv[1] + ".tmp", "w") as handle:
    handle.write(f"{os.getpid()} {pid}")
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    signal.pause()
"""


def spawn(scratch: Path, argv: list[str]) -> Supervisor:
    return Supervisor.spawn(
        argv,
        cwd=scratch,
        env=supervisor.task_environment(os.environ, {}),
        stdout=scratch / "StdOutput",
        stderr=scratch / "StdError",
        marker=f"bench-{time.monotonic_ns()}",
        log=structlog.get_logger(),
    )


def flood(scratch: Path, size_mb: int) -> None:
    me = psutil.Process()
    before = me.memory_info().rss
    peak = before
    started = time.monotonic()
    sup = spawn(scratch, ["head", "-c", str(size_mb * MB), "/dev/zero"])
    while (outcome := sup.wait_exit(0.01)) is None:
        peak = max(peak, me.memory_info().rss)
    elapsed = time.monotonic() - started
    after = me.memory_info().rss
    written = (scratch / "StdOutput").stat().st_size
    (scratch / "StdOutput").unlink()
    print(f"output flood: {written / MB:.0f} MB in {elapsed:.2f} s, exit {outcome}")
    print(
        f"  runner RSS before {before / MB:.1f} MB, peak {peak / MB:.1f} MB, "
        f"after {after / MB:.1f} MB; growth {(peak - before) / MB:.2f} MB "
        f"(target <= 10 MB)"
    )


def cancel_once(scratch: Path) -> tuple[float, bool]:
    ready = scratch / "ready"
    ready.unlink(missing_ok=True)
    sup = spawn(scratch, [sys.executable, "-c", TREE, str(ready)])
    pause = threading.Event()
    deadline = time.monotonic() + 10
    while not ready.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the tree did not start")
        pause.wait(0.005)
    pids = [int(x) for x in ready.read_text().split()]
    started = time.monotonic()
    sup.terminate(10.0)
    elapsed = time.monotonic() - started
    return elapsed, not any(psutil.pid_exists(pid) for pid in pids)


def cancel(scratch: Path, rounds: int) -> None:
    results = [cancel_once(scratch) for _ in range(rounds)]
    times_ms = sorted(t * 1000 for t, _ in results)
    all_gone = all(gone for _, gone in results)
    print(
        f"cancel latency over {rounds} rounds (child + setsid grandchild, obey TERM):"
    )
    print(
        f"  median {statistics.median(times_ms):.1f} ms, "
        f"p90 {times_ms[int(len(times_ms) * 0.9) - 1]:.1f} ms, "
        f"max {times_ms[-1]:.1f} ms (target <= 100 ms); "
        f"every tree gone and reaped: {all_gone}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    print(f"subreaper: {supervisor.enable_subreaper()}")
    with tempfile.TemporaryDirectory(prefix="bench-supervisor-") as tmp:
        scratch = Path(tmp)
        flood(scratch, args.flood_mb)
        cancel(scratch, args.rounds)


if __name__ == "__main__":
    main()
