"""The crash journal's share of a task: one attempt's four writes, timed.

Each attempt writes ``attempt_opened``, ``process_started``, ``status_pending`` and
``attempt_closed`` (each its own committed transaction, WAL, ``synchronous=NORMAL``)
with a 900-character task id and a status whose message is 4 KB. Timed on tmpfs
(``/dev/shm``) and on the disk the repository is on, WAL checkpoints included.
The worker bench's no-op task cycle is about 6 ms: the journal's share is printed
against that.

Run: python bench/bench_journal.py [--rounds N] [--dirs DIR ...] (a few seconds)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import structlog

from runner.task.journal import Journal
from runner.taskmodel import FinalStatus

TASK_ID = "t" * 900
STATUS = FinalStatus.failed("ExitCode:3", "stderr tail " * 340)
#: The worker bench's no-op cycle, for the share (bench_worker.py, overhead).
TASK_CYCLE_MS = 6.0
#: Target: the journal costs under 0.5 ms a task (under a tenth of a no-op cycle).
TARGET_MS = 0.5


def attempt_ms(base: str, rounds: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="bench-journal-", dir=base) as tmp:
        journal = Journal.open(Path(tmp) / "journal.db", log=structlog.get_logger())
        samples = []
        for n in range(rounds):
            task_id = f"{TASK_ID}{n}"
            began = time.perf_counter()
            journal.attempt_opened(task_id, "@Step_1", Path(tmp) / str(n), f"m:{n}")
            journal.process_started(task_id, 1000 + n, 1000 + n, 1.7e9)
            journal.status_pending(task_id, STATUS)
            journal.attempt_closed(task_id)
            samples.append((time.perf_counter() - began) * 1000)
        journal.close()
    return sorted(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument(
        "--dirs",
        nargs="+",
        default=["/dev/shm", str(Path(__file__).parent)],  # noqa: S108 - a tmpfs on purpose
    )
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    failed = False
    for base in args.dirs:
        samples = attempt_ms(base, args.rounds)
        median = statistics.median(samples)
        p95 = samples[int(0.95 * len(samples))]
        ok = median <= TARGET_MS
        failed |= not ok
        print(
            f"{base}: median {median:.3f} ms, p95 {p95:.3f} ms, max "
            f"{samples[-1]:.2f} ms an attempt; {100 * median / TASK_CYCLE_MS:.1f} % "
            f"of a no-op task (target: median <= {TARGET_MS} ms)  "
            f"{'PASS' if ok else 'FAIL'}"
        )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
