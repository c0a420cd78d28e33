"""What a start does about the journal's leftovers: kill the trees the last run left,
then send, once, the final statuses it never got confirmed.

It owns the recovery policy (design.md §3: "on start the runner kills what the last
run left, sends the unsent statuses, and never runs an attempt beside an orphan of
itself"). It runs once, before the first poll; the worker refuses to run an attempt
that ``Recovery.blocked_attempts`` names.

It must not signal processes itself (``supervisor.kill_marked`` does), retry a
status beyond its budget (a row that was not sent stays for the next start), or
log a task id in full.

Why it is built this way:

- A row whose runner is alive (its pid, with the start time the row records) is
  that runner's: it is left whole and its attempt is blocked. One runner per work
  dir is the lock's job; this is the check that no lock can be talked out of.
- Each leftover row is first made safe: its tree is killed, found by the marker
  and checked by boot id and start time, so a reused pid is never hit.
- A row whose tree outlived SIGKILL (uninterruptible sleep) is left whole and its
  attempt is blocked: its status is not sent either, since a FINISHED or FAILED
  lets dependents or a retry start while the old processes still write.
- A row that had a process and no status was cut short by the restart: it gets
  FAILED ``RunnerRestarted``, journaled before it is sent like any status. A row
  with neither (the runner died before the process started) is closed without a
  status: the service offers the attempt again after its lease runs out, and
  nothing of it is alive to run beside.
- One budget bounds the whole recovery (the shutdown's status budget, passed in):
  the statuses are retried until it runs out, and none is tried after it; a
  service that is down or stalls cannot hold up the start for the status's
  normal 15 minutes. Confirmed, or TaskNotFound/PipelineDeleted (the service
  moved on), closes the row with one log line; any other error, or no time
  left, leaves it for the next start.
- ``stop`` (the runner's first stop signal) ends the recovery between two rows
  and cuts a status's retries short; the rows not done stay for the next start.
  A try in flight cannot be cut: the daemon runs ``recover`` on a thread of its
  own and abandons it (``daemon.start``).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass

from structlog.typing import FilteringBoundLogger

from runner import supervisor
from runner.aws.client import Client
from runner.task import commit
from runner.task.journal import Journal
from runner.task.journalfile import JournalEntry
from runner.taskmodel import FinalStatus

RESTARTED_ERROR_ID = "RunnerRestarted"
RESTARTED_MESSAGE = (
    "dp-runner was restarted while this attempt ran (it crashed or was killed);"
    " the attempt's processes were stopped and it did not complete"
)
#: Two start times of one process, as psutil reads them, differ by less.
_SAME_START_S = 0.01


@dataclass(frozen=True, slots=True)
class Recovery:
    """What ``recover`` did, for its log line and for the worker.

    ``leftovers``: rows of earlier runs. ``processes_found``/``processes_survived``:
    processes of theirs that were alive / outlived SIGKILL. ``restarted``: rows
    given FAILED RunnerRestarted. ``sent``/``dropped``/``unsent``: statuses
    confirmed / dropped on TaskNotFound / left for the next start. ``closed``:
    rows closed without a status. ``blocked_attempts``: attempt ids that must not
    run: a process of theirs is still alive.
    """

    leftovers: int
    processes_found: int
    processes_survived: int
    restarted: int
    sent: int
    dropped: int
    unsent: int
    closed: int
    blocked_attempts: frozenset[str]
    #: Rows left whole: the runner that wrote them is alive.
    live_runners: int = 0

    def blocks(self, attempt_id: str) -> bool:
        """Whether ``attempt_id`` must not run (a process of it is still alive)."""
        return attempt_id in self.blocked_attempts


def recover(
    journal: Journal,
    client: Client,
    *,
    kill_grace: float,
    log: FilteringBoundLogger,
    budget_s: float,
    stop: threading.Event | None = None,
) -> Recovery:
    """Recover every leftover row of ``journal``, oldest first, and log one
    ``journal_recovered`` line with the counts. Blocks: per row up to about
    ``kill_grace`` + 2 s for its tree, and the statuses all together until
    ``budget_s`` from the start (a try in flight then ends within the client's
    short timeouts). ``stop`` ends it between two rows and cuts the retries
    short. Raises ``ConfigError`` (no credentials) and ``sqlite3.Error`` (the
    journal cannot be written); nothing else."""
    stop = stop or threading.Event()
    run = _Run(journal, client, kill_grace, time.monotonic() + budget_s, stop)
    leftovers = journal.leftovers()
    log.info("journal_recovering", leftovers=len(leftovers))
    for entry in leftovers:
        if stop.is_set():
            run.tally["unsent"] += entry.status is not None
            continue  # left whole for the next start
        run.recover(entry, log.bind(task_id=entry.digest, attempt_id=entry.attempt_id))
    counts = {key: run.tally[key] for key in _COUNTS}
    recovery = Recovery(
        leftovers=len(leftovers), blocked_attempts=frozenset(run.blocked), **counts
    )
    log.info(
        "journal_recovered",
        leftovers=len(leftovers),
        blocked=sorted(run.blocked),
        stopped=stop.is_set(),
        **counts,
    )
    return recovery


_COUNTS = (
    "processes_found",
    "processes_survived",
    "restarted",
    "sent",
    "dropped",
    "unsent",
    "closed",
    "live_runners",
)


class _Run:
    """One recovery: its settings, its status deadline and what it did."""

    def __init__(
        self,
        journal: Journal,
        client: Client,
        grace: float,
        deadline: float,
        stop: threading.Event,
    ) -> None:
        self.journal = journal
        self.client = client
        self.grace = grace
        self.deadline = deadline
        self.stop = stop
        self.tally: Counter[str] = Counter()
        self.blocked: set[str] = set()

    def recover(self, entry: JournalEntry, log: FilteringBoundLogger) -> None:
        """Kill the row's tree, then send its status or close it; a row of a live
        runner is left whole."""
        if _runner_alive(entry, self.journal.boot_id):
            log.warning("journal_row_live_runner", runner_pid=entry.runner_pid)
            if entry.attempt_id:
                self.blocked.add(entry.attempt_id)
            self.tally["live_runners"] += 1
            return
        found, survivors = self._kill_tree(entry, log)
        self.tally["processes_found"] += found
        self.tally["processes_survived"] += survivors
        if survivors:
            self.blocked.add(entry.attempt_id)
            return
        status = entry.status
        if status is None and (entry.pid is not None or found):
            status = FinalStatus.failed(RESTARTED_ERROR_ID, RESTARTED_MESSAGE)
            self.journal.status_pending(entry.task_id, status)
            self.tally["restarted"] += 1
        if status is None:
            self.journal.attempt_closed(entry.task_id)
            log.info("journal_attempt_closed", reason="no_process_no_status")
            self.tally["closed"] += 1
            return
        self.tally[self._send(entry, status, log)] += 1

    def _kill_tree(
        self, entry: JournalEntry, log: FilteringBoundLogger
    ) -> tuple[int, int]:
        """Kill what is left of the row's tree; (found, survivors)."""
        if entry.marker is None:
            return 0, 0  # a status journaled before the attempt opened: no process
        sweep = supervisor.kill_marked(
            entry.marker,
            boot_id=entry.boot_id,
            not_before=entry.opened_at,
            grace=self.grace,
            log=log,
            pid=entry.pid,
            proc_start=entry.proc_start,
            cgroup=entry.cgroup,
        )
        if sweep.survivors:
            log.error(
                "journal_tree_survived",
                found=sweep.found,
                survivors=sweep.survivors,
                pid=entry.pid,
            )
        return sweep.found, sweep.survivors

    def _send(
        self, entry: JournalEntry, status: FinalStatus, log: FilteringBoundLogger
    ) -> str:
        """Send one journaled status, once; which count it adds to."""
        fields = {"status": status.status.value, "error_id": status.error_id}
        if self._until() <= time.monotonic():  # no time left: the next start
            log.warning("journal_status_not_sent", code="NoTimeLeft", **fields)
            return "unsent"
        sent = commit.send(
            self.client,
            self.journal,
            entry.task_id,
            status,
            until=self._until,
            wake=(self.stop,),
        )
        if sent.delivery == "sent":
            log.info("journal_status_sent", **fields)
            return "sent"
        if sent.delivery == "not_sent":
            log.warning("journal_status_not_sent", code=sent.error, **fields)
            return "unsent"
        log.info("journal_status_dropped", code=sent.error, **fields)
        return "dropped"

    def _until(self) -> float:
        """The statuses' deadline: the budget's end, or now once stopped."""
        return time.monotonic() if self.stop.is_set() else self.deadline


def _runner_alive(entry: JournalEntry, boot: str) -> bool:
    """Whether the runner that wrote ``entry`` still runs: the same boot, and its
    pid alive with the start time the row records (a reused pid starts later)."""
    pid, started = entry.runner_pid, entry.runner_start
    if pid is None or started is None or entry.boot_id != boot:
        return False
    if pid == os.getpid():
        return False  # this runner: an earlier run's row cannot be its own
    now_started = supervisor.start_time(pid)
    return now_started is not None and abs(now_started - started) < _SAME_START_S
