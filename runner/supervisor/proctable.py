"""The process table as the supervisor sees it: which processes belong to a task's
tree, which children of the runner nobody owns, and how to reap one by pid.

It owns the registry of live Supervisor children (``OWNED``), the subreaper switch,
and every scan of ``/proc`` (through psutil), and the boot id. It never signals
anything: killing is ``kill.py``'s job, for ``Supervisor`` and ``kill_marked``.

Why it is built this way:

- A tree is found from ONE scan: parent links (which find ``setsid`` descendants),
  plus the processes of our uid whose environment carries the attempt's marker
  (double-fork orphans adopted by init when the runner is not a subreaper), plus
  the orphans the runner adopted as a subreaper that the attempt's session or
  group claims, or all of them while no other attempt runs (``adopted``): the
  marker alone is in the task's hands, and ``env -i`` wipes it. A
  runner that is root looks at every uid's: its tasks may run as ``run_as`` (or a
  ``run_as`` of the run before a restart), and the marker is known only to what
  inherited it, since only its own uid (and root) can read an environment. Fresh
  ``Process`` objects each time, never ``process_iter``'s shared cache: thread-safe,
  and a pid reused since an earlier scan is never mistaken for what it was.
- That scan reads every process's environment: milliseconds on a busy host. After a
  task ends by itself it is usually unnecessary, and ``tree_may_remain`` says so
  cheaply: when the runner is a subreaper, every surviving descendant of a task
  hangs below the runner through a child the runner did not spawn, and an empty
  process group plus no such child means nothing is left.
- Reaping is by pid, never ``waitpid(-1)``, which would steal another task's exit
  status (it would read 0: FINISHED).
- After a ``kill -9`` of the runner, ``marked_tree`` finds what the last run left
  (see its docstring): a process counts only when it was created after the attempt
  was journaled, so neither a reused pid nor someone else's copy of the marker is
  ever taken for ours. ``boot_id`` tells whether that run was on this boot at all.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import threading
from collections.abc import Collection, Iterable
from pathlib import Path

import psutil

MARKER_ENV = "DP_RUNNER_ATTEMPT"

_PR_SET_CHILD_SUBREAPER = 36
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

#: How much earlier than the attempt's journal row a process of it may seem to start:
#: psutil's create_time on Linux is /proc/stat's btime, whole seconds, plus the start
#: in clock ticks, so it reads up to 1 s early; 2 s leaves room for a small clock slew.
START_SLACK_S = 2.0
#: Two readings of one process's create_time differ when btime flips a second.
_SAME_START_S = 1.5

#: Pids of live Supervisor children, so reap_orphans never steals their status.
#: ``OWNED_LOCK`` is held across the spawn, so a child cannot exist unregistered.
OWNED: set[int] = set()
OWNED_LOCK = threading.Lock()

_subreaper = threading.Event()


def enable_subreaper() -> bool:
    """Make this process a child subreaper (Linux), so orphaned descendants of
    tasks re-parent to it and can be found and reaped. Called only by
    ``dp-runner run``; never at import, never in the test process. False when the
    platform or the kernel says no."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        enabled = int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False
    if enabled:
        _subreaper.set()
    return enabled


def reap_orphans(exclude: Collection[int]) -> list[int]:
    """Reap zombie children of this process that no ``Supervisor`` owns and that
    are not in ``exclude``, by pid with ``WNOHANG``. Non-blocking; returns the
    reaped pids. Only for a process whose children all come from Supervisors (the
    ``run`` daemon): any other ``Popen`` child would lose its exit status."""
    with OWNED_LOCK:
        skip = OWNED.union(exclude)
        return [
            child.pid
            for child in psutil.Process().children()
            if child.pid not in skip and is_zombie(child) and reap(child.pid)
        ]


def tree_may_remain(pgid: int) -> bool:
    """Whether anything of the tree whose reaped leader had the process group
    ``pgid`` may still run. False only when that is certain without a full scan:
    the runner is a subreaper, the group is empty, and every child of the runner
    is a Supervisor's own (so no orphan of any task hangs below it)."""
    if not _subreaper.is_set():
        return True
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        pass
    except PermissionError:  # a member exists that is not ours to signal
        return True
    else:
        return True
    return _has_foreign_children()


def _has_foreign_children() -> bool:
    try:
        # WNOWAIT: only asks whether any child exists; nothing is reaped.
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False  # no child at all: the common case with one slot
    with OWNED_LOCK:
        owned = set(OWNED)
    return any(child.pid not in owned for child in psutil.Process().children())


def tree(
    roots: list[int], marker: str, *, session: int | None = None
) -> dict[int, psutil.Process]:
    """``roots``, the processes of our uid (any, as root) that carry ``marker``,
    the orphans this runner adopted that belong to the attempt whose session and
    group id is ``session`` (``adopted``), and all their descendants, from one
    scan of the process table."""
    procs, children, marked = _scan(marker)
    roots.extend(marked)
    if session is not None:
        roots.extend(adopted(children.get(os.getpid(), []), session))
    return _descendants(roots, procs, children)


def adopted(strays: Iterable[int], session: int) -> list[int]:
    """Which of the runner's children ``strays`` belong to the attempt whose child
    leads session and group ``session``: none unless the runner is a subreaper
    (then every child it did not spawn is an orphan of a task); all of them while
    no other attempt's child runs; else those still in that session or group."""
    if not _subreaper.is_set():
        return []
    with OWNED_LOCK:
        owned = set(OWNED)
    unowned = [pid for pid in strays if pid != session and pid not in owned]
    if not owned - {session}:
        return unowned
    return [pid for pid in unowned if session in _session_and_group(pid)]


def _session_and_group(pid: int) -> tuple[int, ...]:
    try:
        return os.getsid(pid), os.getpgid(pid)
    except OSError:  # gone
        return ()


def marked_tree(
    marker: str,
    *,
    created_since: float,
    pid: int | None = None,
    proc_start: float | None = None,
) -> dict[int, psutil.Process]:
    """What an earlier run of this runner left of one attempt, from one scan: the
    processes of our uid (any, as root) that carry ``marker`` and were created at
    or after
    ``created_since`` (epoch seconds), ``pid`` when its create time is
    ``proc_start``, and all their descendants.

    A marked process created earlier is not the attempt's (the marker is set only
    on a child spawned after the attempt was journaled): it is another runner's on
    this host serving the same attempt, or a copy of the environment. It is left
    alone, and so are its descendants, which carry the marker too."""
    procs, children, marked = _scan(marker)
    roots: list[int] = []
    foreign: list[int] = []
    for marked_pid in marked:
        recent = _create_time(procs[marked_pid]) >= created_since
        (roots if recent else foreign).append(marked_pid)
    if pid is not None and pid in procs and _started_at(procs[pid], proc_start):
        roots.append(pid)
    excluded = _descendants(foreign, procs, children)
    ours = _descendants(roots, procs, children)
    return {key: proc for key, proc in ours.items() if key not in excluded}


def _scan(
    marker: str,
) -> tuple[dict[int, psutil.Process], dict[int, list[int]], list[int]]:
    """Every process but us, by pid; children by parent pid; the pids of our uid
    (of any uid when we are root) whose environment carries ``marker``."""
    procs: dict[int, psutil.Process] = {}
    children: dict[int, list[int]] = {}
    marked: list[int] = []
    me, uid = os.getpid(), None if os.geteuid() == 0 else os.getuid()
    for pid in (pid for pid in psutil.pids() if pid != me):
        try:
            proc = psutil.Process(pid)
            ppid = proc.ppid()
            ours = uid is None or proc.uids().real == uid
        except psutil.Error:
            continue
        procs[proc.pid] = proc
        children.setdefault(ppid, []).append(proc.pid)
        if ours and _environ(proc).get(MARKER_ENV) == marker:
            marked.append(proc.pid)
    return procs, children, marked


def _descendants(
    roots: Iterable[int],
    procs: dict[int, psutil.Process],
    children: dict[int, list[int]],
) -> dict[int, psutil.Process]:
    found: dict[int, psutil.Process] = {}
    queue = [pid for pid in roots if pid in procs]
    while queue:
        pid = queue.pop()
        if pid not in found:
            found[pid] = procs[pid]
            queue.extend(children.get(pid, ()))
    return found


def _started_at(proc: psutil.Process, start: float | None) -> bool:
    """Whether ``proc`` is the process that started at ``start``, not another
    that got its pid since."""
    return start is not None and abs(_create_time(proc) - start) < _SAME_START_S


def _create_time(proc: psutil.Process) -> float:
    """``proc``'s create time (cached in the object at its creation), or +inf
    when it is gone: a gone process is never a reason to spare its tree."""
    try:
        return proc.create_time()
    except psutil.Error:
        return float("inf")


@functools.cache
def boot_id() -> str:
    """This boot's id (Linux: a random UUID the kernel makes at boot), or "" where
    there is none. Read once: it cannot change while we run."""
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return ""


def start_time(pid: int) -> float | None:
    """psutil's create time of ``pid`` in epoch seconds (what the journal records
    next to the pid), or None when it is gone."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _environ(proc: psutil.Process) -> dict[str, str]:
    try:
        return proc.environ()
    except psutil.Error:  # gone, a zombie, or not ours to read
        return {}


def is_zombie(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def reap(pid: int) -> bool:
    """Reap one zombie child by pid; False if it is not ours or not ended."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == pid
