"""The kill policy for snapshotted processes and for an attempt's cgroup, and
``kill_marked``, which applies them to what an earlier run of the runner left behind.

It owns signalling: each process through psutil (which checks the start time, so a
pid reused since the snapshot is never hit), the process groups that may still
hold some of them, and the wait for all of them to go. ``Supervisor`` (in
``__init__``) uses it for its child's tree; ``kill_marked`` for a tree that only
its marker ties to an attempt, after the runner was killed with ``kill -9``;
``kill_cgroup`` for the members of an attempt's cgroup (``cgroup.py``), the tree
that nothing the task does can leave.

It must not scan ``/proc`` (``proctable`` finds the victims), reap with
``waitpid(-1)`` (that steals a task's exit status), or sleep with ``time.sleep``.

Why it is built this way:

- trio's cancel policy (TERM, wait, KILL) made thorough. A second snapshot before
  the KILL catches what forked after the first one, and the wait after the KILL is
  bounded, because a process in uninterruptible sleep outlives SIGKILL; the caller
  is told how many did.
- ``kill_marked`` trusts nothing but the kernel's word. A row of another boot has
  no live process (``boot_id``). A process counts only if it was created after
  the attempt was journaled, since the marker is set only on a child spawned
  after that (``proctable.marked_tree``; its slack absorbs psutil's whole-second
  boot time): an older one carrying the marker is a stranger's (another runner
  on this host serving the same attempt, a copied environment), and so are its
  children. The journaled pid counts only with its start time, so a reused pid
  is never hit; with it, a process that dropped the marker is found too. A clock
  stepped back by more than the slack hides the tree: it is then left alone,
  never a stranger killed.
- ``kill_cgroup`` keeps the TERM, so that a task can clean up within
  ``kill_grace``, then lets the kernel KILL: ``cgroup.kill`` takes every member at
  once, forks in flight included. Without it (Linux < 5.14) each member is
  SIGKILLed, again on each look, until the cgroup is empty or the bound passes.
  A member is signalled through a pidfd, after checking that the process the
  pidfd holds is in the cgroup, so a pid reused meanwhile is never hit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable

import psutil
import structlog

from runner.supervisor import proctable
from runner.supervisor.cgroup import AttemptCgroup

#: After SIGKILL the kernel needs only a moment; this bounds the wait for the reap.
REAP_TIMEOUT_S = 2.0
#: Polling for "every process gone": fast at first (cancel latency), then gentle.
_POLL_FIRST_S = 0.001
_POLL_MAX_S = 0.02


@dataclasses.dataclass(frozen=True, slots=True)
class Sweep:
    """What ``kill_marked`` did: how many processes it found (after the second
    look), and how many of them were still alive after SIGKILL."""

    found: int
    survivors: int


def kill_marked(
    marker: str,
    *,
    boot_id: str,
    not_before: float,
    grace: float,
    log: structlog.typing.FilteringBoundLogger,
    pid: int | None = None,
    proc_start: float | None = None,
    cgroup: str | None = None,
) -> Sweep:
    """Kill what an earlier run of the runner left of one attempt: the members of
    its ``cgroup`` (the path the journal names; the cgroup is then removed), and
    the processes of our uid (any uid as root: a ``run_as`` user's too) carrying
    ``DP_RUNNER_ATTEMPT=marker`` created at or after ``not_before`` (the row's
    ``opened_at``), ``pid`` if it started at ``proc_start``, and their
    descendants; nothing when ``boot_id`` is another boot's. TERM (with the
    groups they lead), ``grace``, KILL; our zombies are reaped. Blocks up to
    about twice ``grace`` + 2 s; thread-safe. Never call it for an attempt that
    runs in this process: its marker would find that run too."""
    if boot_id != proctable.boot_id():
        return Sweep(found=0, survivors=0)  # nothing outlives a reboot
    found, survivors = 0, 0
    group = AttemptCgroup.journaled(cgroup) if cgroup is not None else None
    if group is not None:
        found, _, survivors = kill_cgroup(group, grace)
        group.remove(runner_gone=True)
    snapshot = functools.partial(
        proctable.marked_tree,
        marker,
        created_since=not_before - proctable.START_SLACK_S,
        pid=pid,
        proc_start=proc_start,
    )
    marked = _kill_snapshot(snapshot, grace)
    sweep = Sweep(found=found + marked.found, survivors=survivors + marked.survivors)
    if sweep.found:
        log.info("marked_tree_killed", marker=marker, **dataclasses.asdict(sweep))
    return sweep


def _kill_snapshot(
    snapshot: Callable[[], dict[int, psutil.Process]], grace: float
) -> Sweep:
    """TERM what ``snapshot`` finds (with the groups it leads), ``grace``, KILL."""
    if not (victims := snapshot()):
        return Sweep(found=0, survivors=0)
    leaders = [victim for victim in victims if _leads_group(victim)]

    def signal_all(signum: signal.Signals, procs: list[psutil.Process]) -> None:
        send(signum, procs, [pgid for pgid in leaders if group_in(pgid, procs)])

    _, survivors = term_then_kill(
        victims, grace, signal_all=signal_all, snapshot=snapshot, alive=adopted_alive
    )
    _reap_unowned(victims)
    return Sweep(found=len(victims), survivors=len(survivors))


def kill_cgroup(
    group: AttemptCgroup, grace: float, cut_short: threading.Event | None = None
) -> tuple[int, int, int]:
    """TERM every member of ``group``, wait ``grace`` (or until ``cut_short``)
    for it to empty, then KILL what is left (``cgroup.kill``, else member by
    member until it is empty) and wait up to ``REAP_TIMEOUT_S``. Our zombies
    among them are reaped (never a ``Supervisor``'s child). Returns how many
    processes were found, how many outlived the TERM and how many the KILL."""
    seen = set(group.pids())
    if not seen:
        return 0, 0, 0
    _signal_members(group, signal.SIGTERM, seen)
    after_term = _wait_empty(group, grace, seen, cut_short=cut_short)
    survivors = 0
    if after_term:
        resend = None if group.kill_all() else signal.SIGKILL
        survivors = _wait_empty(group, REAP_TIMEOUT_S, seen, resend=resend)
    _reap_unowned(seen)
    return len(seen), after_term, survivors


def _wait_empty(
    group: AttemptCgroup,
    timeout: float,
    seen: set[int],
    *,
    cut_short: threading.Event | None = None,
    resend: signal.Signals | None = None,
) -> int:
    """Wait up to ``timeout`` (or until ``cut_short``) for ``group`` to empty,
    signalling the members with ``resend`` on each look when given; adds every
    member seen to ``seen``. Returns how many are still in it."""
    deadline = time.monotonic() + timeout
    delay = _POLL_FIRST_S
    pause = cut_short or threading.Event()
    while True:
        members = group.pids()
        seen.update(members)
        remaining = deadline - time.monotonic()
        if not members or remaining <= 0 or pause.is_set():
            return len(members)
        if resend is not None:
            _signal_members(group, resend, members)
        pause.wait(min(delay, remaining))
        delay = min(delay * 2, _POLL_MAX_S)


def _signal_members(
    group: AttemptCgroup, signum: signal.Signals, pids: Iterable[int]
) -> None:
    """Signal each pid that is still in ``group``, through a pidfd: the process
    the pidfd holds is checked to be a member, so a reused pid is never hit."""
    for pid in pids:
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # gone
            continue
        try:
            if group.has(pid):
                signal.pidfd_send_signal(pidfd, signum)
        except OSError:  # ended meanwhile
            pass
        finally:
            os.close(pidfd)


def term_then_kill(
    victims: dict[int, psutil.Process],
    grace: float,
    *,
    signal_all: Callable[[signal.Signals, list[psutil.Process]], None],
    snapshot: Callable[[], dict[int, psutil.Process]],
    alive: Callable[[psutil.Process], bool],
    cut_short: threading.Event | None = None,
) -> tuple[list[psutil.Process], list[psutil.Process]]:
    """TERM, wait ``grace`` (or until ``cut_short``), then KILL what is left plus
    what a second ``snapshot`` finds (``victims`` grows by it, in place), and wait
    up to ``REAP_TIMEOUT_S`` for the kernel. Returns the processes that outlived
    the TERM and those that outlived the KILL."""
    signal_all(signal.SIGTERM, list(victims.values()))
    after_term = wait_gone(victims.values(), grace, alive, cut_short)
    if not after_term:
        return [], []
    # A second look catches what forked between the snapshot and the TERM.
    victims |= {p.pid: p for p in after_term} | snapshot()
    signal_all(signal.SIGKILL, list(victims.values()))
    return after_term, wait_gone(victims.values(), REAP_TIMEOUT_S, alive)


def send(
    signum: signal.Signals, procs: list[psutil.Process], groups: Iterable[int]
) -> None:
    """Signal each group, then each process; what is gone is skipped."""
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signum)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.send_signal(signum)


def group_in(pgid: int, procs: list[psutil.Process]) -> bool:
    """Whether a process of ``procs`` is still in group ``pgid``: then the group
    id cannot have been handed out again, and signalling it is safe."""
    for proc in procs:
        try:
            if os.getpgid(proc.pid) == pgid:
                return True
        except ProcessLookupError:
            continue
    return False


def wait_gone(
    procs: Iterable[psutil.Process],
    timeout: float,
    alive: Callable[[psutil.Process], bool],
    cut_short: threading.Event | None = None,
) -> list[psutil.Process]:
    """Wait up to ``timeout`` (or until ``cut_short`` is set) until ``alive`` says
    every process has ended (it reaps ours on the way); returns those still
    alive. Waits with ``Event.wait``."""
    pending = list(procs)
    deadline = time.monotonic() + timeout
    delay = _POLL_FIRST_S
    pause = cut_short or threading.Event()
    while True:
        pending = [p for p in pending if alive(p)]
        remaining = deadline - time.monotonic()
        if not pending or remaining <= 0 or pause.is_set():
            return pending
        pause.wait(min(delay, remaining))
        delay = min(delay * 2, _POLL_MAX_S)


def adopted_alive(proc: psutil.Process) -> bool:
    """False once ``proc`` has ended. A zombie we adopted is reaped by pid;
    another parent's zombie counts as ended (its parent, or init, reaps it)."""
    try:
        if not proc.is_running():
            return False
        if not proctable.is_zombie(proc):
            return True
        if proc.ppid() == os.getpid():
            proctable.reap(proc.pid)
    except psutil.NoSuchProcess:
        pass
    return False


def _reap_unowned(pids: Iterable[int]) -> None:
    """Reap the zombies among ``pids`` that are our children, by pid; never a
    ``Supervisor``'s child, whose ``Popen`` reaps it."""
    with proctable.OWNED_LOCK:
        for pid in set(pids) - proctable.OWNED:
            proctable.reap(pid)


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False
