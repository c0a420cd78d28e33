"""The per-task budget in instructions (callgrind): the runner against the bare loop.

The wall ratio of ``bench_worker.py``'s overhead phase moves with the host's noise
(rounds of one run range over +-0.3 on a shared VM); instructions do not. Here each
side runs under ``valgrind --tool=callgrind`` (its children, the task's ``bash``,
untraced), against the same local service:

1. ``--warmup`` no-op tasks, so that imports, caches and the first call's set-up are
   behind it;
2. the counters are zeroed (``callgrind_control --zero``) while it waits in a poll;
3. ``--tasks`` no-op tasks (``true``), one at a time;
4. the counters are dumped (``callgrind_control --dump``) while it waits in the
   next poll.

Instructions per task = the dump's total / ``--tasks``. The runner is
``python -m runner run --max-tasks 1`` as shipped; the bare loop is
``bench_worker_harness.BASELINE`` (the same three calls and the same ``bash script``),
given one task more than it is handed so that it waits in a poll at the dump.
The service holds empty polls for 60 s, so neither side polls in a loop meanwhile.

Budget (issue 23): the runner's instructions per no-op task at most 1.6 times the
bare loop's.

Must not: edit or monkeypatch the runner; it is measured as shipped.

Run: python bench/bench_worker.py --only instructions (about 5 minutes; valgrind
needed). ``callgrind_annotate`` on the kept ``runner.callgrind`` file (its path is
printed) shows where the runner's instructions go.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_worker_harness import (
    BASELINE,
    Results,
    TimedService,
    clean_env,
    client,
    runner,
    service,
    statuses,
    submit,
    wait_until,
)

#: The budget: the runner's instructions per no-op task over the bare loop's.
BUDGET = 1.6
#: How long the service holds an empty poll: longer than any phase here.
POLL_HOLD_S = 60.0
#: What one task may take under callgrind (about 50 times slower than native).
TASK_TIMEOUT_S = 30.0


def callgrind(out: Path) -> tuple[str, ...]:
    """The command prefix: callgrind, its output named after the process, the
    counters collected from the start (zeroed after the warm-up)."""
    return (
        "valgrind",
        "--tool=callgrind",
        "--quiet",
        f"--callgrind-out-file={out}.%p",
        "--trace-children=no",
        "--dump-instr=no",
    )


def control(command: str, pid: int) -> None:
    """``callgrind_control --zero`` or ``--dump`` for ``pid``."""
    subprocess.run(
        ["callgrind_control", f"--{command}", str(pid)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def dumped_total(out: Path, pid: int) -> int:
    """The instructions in the first dump of ``pid`` (its ``totals:`` line)."""
    dump = Path(f"{out}.{pid}.1")
    wait_until(dump.exists, 60)
    for line in dump.read_text().splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {dump}")


def measure(
    svc: TimedService,
    dp: Any,
    side: tuple[str, int, Path],
    args: argparse.Namespace,
) -> int:
    """Warm up, zero, run ``--tasks``, dump: the instructions of those tasks.
    ``side``: the worker group, the process's pid and its callgrind output."""
    group, pid, out = side
    done = len(statuses(svc))

    def finished(count: int) -> Callable[[], bool]:
        return lambda: len(statuses(svc)) >= done + count

    submit(dp, group, ["true"] * args.warmup)
    wait_until(finished(args.warmup), TASK_TIMEOUT_S * args.warmup)
    control("zero", pid)
    submit(dp, group, ["true"] * args.tasks)
    wait_until(finished(args.warmup + args.tasks), TASK_TIMEOUT_S * args.tasks)
    control("dump", pid)
    return dumped_total(out, pid)


def runner_side(scratch: Path, args: argparse.Namespace) -> tuple[int, Path]:
    """The runner's instructions for ``--tasks`` no-op tasks; its dump file."""
    out = scratch / "runner.callgrind"
    with (
        service(scratch, POLL_HOLD_S) as svc,
        runner(
            svc,
            scratch,
            "run",
            "--max-tasks",
            "1",
            "--heartbeat-interval",
            "1",
            python=args.python,
            wrap=callgrind(out),
            start_timeout_s=300.0,
        ) as proc,
    ):
        dp = client(svc.endpoint_url)
        total = measure(svc, dp, ("run", proc.pid, out), args)
        return total, Path(f"{out}.{proc.pid}.1")


def loop_side(scratch: Path, args: argparse.Namespace) -> int:
    """The bare loop's instructions for ``--tasks`` no-op tasks."""
    out = scratch / "loop.callgrind"
    work = scratch / "loop-work"
    work.mkdir()
    with service(scratch, POLL_HOLD_S) as svc:
        count = args.warmup + args.tasks + 1  # it waits in a poll at the dump
        command = [*callgrind(out), sys.executable, "-c", BASELINE]
        command += [svc.endpoint_url, "base", str(count), str(work)]
        proc = subprocess.Popen(command, env=clean_env(scratch))
        try:
            dp = client(svc.endpoint_url)
            return measure(svc, dp, ("base", proc.pid, out), args)
        finally:
            proc.kill()
            proc.wait(30)


def instructions(scratch: Path, res: Results, args: argparse.Namespace) -> None:
    """The phase: both sides, their instructions per task and the ratio."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("instructions: valgrind (callgrind) is not installed")
    print(
        f"instructions (callgrind), {args.tasks} no-op tasks after "
        f"{args.warmup} to warm up:",
        flush=True,
    )
    loop = loop_side(scratch, args) / args.tasks
    ran, dump = runner_side(scratch, args)
    per_task = ran / args.tasks
    kept = Path(args.keep_dump) if args.keep_dump else None
    if kept is not None:
        shutil.copyfile(dump, kept)
    res.figure(f"bare loop: {loop / 1e6:.2f} M instructions per task")
    res.figure(
        f"runner: {per_task / 1e6:.2f} M instructions per task"
        + (f" (dump kept: {kept})" if kept else "")
    )
    ratio = per_task / loop
    res.figure(f"instructions ratio {ratio:.2f} (target <= {BUDGET})", ratio <= BUDGET)
