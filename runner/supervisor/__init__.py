"""One task's process tree: spawn it, watch it, kill all of it, reap it.

The ``supervisor`` package owns every contact with processes: the only code that
imports ``subprocess`` or ``psutil``, calls ``os.killpg``/``os.waitpid``/``prctl``
or writes a cgroup. This module spawns and waits; ``environment`` builds the
task's environment; ``delegation`` says whether the runner's cgroup is its own;
``cgroup`` makes the runner's and each attempt's cgroup (``contain`` sets it up in
``dp-runner run``); ``tree`` finds and kills an attempt's tree, by its cgroup or
by the fallback walk; ``kill`` signals (the TERM/grace/KILL policy, shared with
``kill_marked``, which stops what a runner killed with ``kill -9`` left);
``proctable`` scans and reaps. It knows nothing about the API, tasks or statuses:
it turns an argv into an ``ProcessExit``.

Why it is built this way:

- The child runs in a session of its own, so its group is ours to signal and signals
  meant for the runner never reach it. Output goes to files that the parent closes
  right after the spawn: no pipes, no pump threads, flat memory whatever is printed.
- The end of the child is seen at once: the wait blocks in ``poll`` on a pidfd
  (Linux), together with a wake-up pipe that ``interrupt_wait`` writes, so a stop
  request from another thread ends the wait too. ``Popen.wait(timeout)`` would
  sleep-poll instead, adding milliseconds to every task. Without pidfds (other
  platforms) the wait falls back to ``Popen.wait``.
- Containment is a cgroup of the attempt's own where the runner has cgroups
  (``cgroup.py``): the child is started in it, and the tree is whatever is in it.
- Killing follows trio (TERM, wait, KILL), made thorough (``tree.py``): the
  cgroup's members, ``cgroup.kill`` for the KILL; under the fallback, a snapshot
  taken *before* the first signal of the child's descendants (parent links find
  ``setsid`` grandchildren), every process of our uid (any uid when the runner is
  root: tasks may run as ``run_as``) whose environment carries
  ``DP_RUNNER_ATTEMPT=<marker>``, and the orphans the runner adopted as a
  subreaper that the attempt's session or group claims, plus their descendants.
  Single pids are signalled through psutil or a pidfd, which check that the
  process is the same, so a reused pid is never hit.
- Reaping is by pid, never ``waitpid(-1)``. Our child is reaped only by its
  ``Popen``, adopted orphans by ``waitpid(pid, WNOHANG)``; ``reap_orphans`` skips
  every pid a live Supervisor owns (a registry whose lock is held across the spawn).

``execution.py`` calls ``wait_exit`` until the child ends, then ``kill_leftovers`` to
sweep what it left; or ``terminate`` to stop it early.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import structlog

from runner.attempt import ProcessExit
from runner.errors import SpawnError
from runner.runas import RunAs
from runner.supervisor import cgroup, proctable
from runner.supervisor.cgroup import AttemptCgroup, Containment
from runner.supervisor.environment import task_environment
from runner.supervisor.exitwatch import ExitWatch
from runner.supervisor.handoff import HandOff
from runner.supervisor.kill import Sweep, kill_marked
from runner.supervisor.proctable import (
    MARKER_ENV,
    boot_id,
    enable_subreaper,
    reap_orphans,
    start_time,
)
from runner.supervisor.tree import CgroupTree, ProcessTree

__all__ = [
    "MARKER_ENV",
    "Containment",
    "Supervisor",
    "Sweep",
    "boot_id",
    "contain",
    "containment",
    "enable_subreaper",
    "kill_marked",
    "reap_orphans",
    "start_time",
    "task_environment",
]

_TASK_UMASK = 0o077


def contain() -> Containment:
    """Set up how ``dp-runner run`` contains its tasks: make the runner a child
    subreaper, and give it a cgroup of its own where it may (else the fallback,
    with the reason). Once per process, never in a library use or a test process.
    """
    enable_subreaper()
    return cgroup.setup()


def containment() -> Containment:
    """What ``contain`` settled on, for the start-up line."""
    return cgroup.current()


class Supervisor:
    """One running child and its tree. ``wait_exit``/``poll_nowait`` may be called
    from any thread; ``terminate`` and ``kill_leftovers`` are serialised by a lock."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        *,
        marker: str,
        log: structlog.typing.FilteringBoundLogger,
        group: AttemptCgroup | None = None,
    ) -> None:
        self._popen = popen
        self.pid = popen.pid
        self._tree: CgroupTree | ProcessTree = (
            ProcessTree(popen, marker) if group is None else CgroupTree(popen, group)
        )
        self._started = time.monotonic()
        self._log = log
        self._lock = threading.Lock()
        self._outcome: ProcessExit | None = None
        self._terminated: ProcessExit | None = None
        self._watch = ExitWatch.open(popen.pid)

    @classmethod
    def spawn(
        cls,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        stdout: Path,
        stderr: Path,
        marker: str,
        log: structlog.typing.FilteringBoundLogger,
        run_as: RunAs | None = None,
        stdin: bytes | None = None,
        on_cgroup: Callable[[str], None] | None = None,
    ) -> Supervisor:
        """Start ``argv`` in a new session, in ``cwd``, with ``env`` plus the marker,
        stdin from /dev/null (or a socket on which ``stdin``'s bytes are handed over
        once the child is non-dumpable, see ``handoff.py``), stdout and
        stderr appended to the files (mode 0600, never through a symlink), umask 077;
        as ``run_as`` (uid, gid and groups) when given; in a cgroup of its own when
        the runner has cgroups, whose path ``on_cgroup`` is given before the spawn
        (to journal it). Raises ``SpawnError`` when the files or the cgroup cannot
        be made or the program cannot be started."""
        if not argv:
            raise SpawnError("cannot start a task with an empty command line")
        # Two O_APPEND descriptors on one file interleave safely: no special case.
        with (
            _open_output(stdout) as out_fd,
            _open_output(stderr) as err_fd,
            HandOff.prepared(stdin) as hand,
            AttemptCgroup.made(marker, on_cgroup) as group,
        ):
            popen = _popen(
                argv,
                cwd,
                {**env, MARKER_ENV: marker},
                (None if hand is None else hand.child_fd, out_fd, err_fd),
                run_as=run_as,
                group=group,
            )
            if hand is not None:
                uid = os.getuid() if run_as is None else run_as.uid
                hand.start(popen.pid, uid, log)
        log.debug("child_started", pid=popen.pid)
        return cls(popen, marker=marker, log=log, group=group)

    def poll_nowait(self) -> ProcessExit | None:
        """The outcome if the child has ended (reaping it), else None."""
        if self._popen.poll() is None:
            return None
        return self._record()

    def wait_exit(self, timeout: float | None) -> ProcessExit | None:
        """Block up to ``timeout`` seconds (forever when None) for the child to
        end, or until ``interrupt_wait``; None if it is still running. Waits on
        this child's pid only."""
        if self._watch is not None and self._popen.returncode is None:
            self._watch.wait(timeout)
            return self.poll_nowait()
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self._record()

    def interrupt_wait(self) -> None:
        """End a ``wait_exit`` in progress early (thread-safe), so that a stop
        requested by another thread is acted on at once. Without pidfds the wait
        ends at its timeout instead."""
        if self._watch is not None:
            self._watch.wake()

    def terminate(
        self, grace: float, cut_short: threading.Event | None = None
    ) -> ProcessExit:
        """Kill the whole tree: SIGTERM it, wait ``grace`` (or until ``cut_short``
        is set), SIGKILL the survivors, reap; then remove the attempt's cgroup.
        Blocks about ``grace`` at most when the tree ignores SIGTERM, far less when
        it obeys. Returns ``killed=True`` when the child was still running; when
        it had already ended, its own outcome (and the leftovers are swept all the
        same). Safe to call twice."""
        with self._lock:
            if self._terminated is not None:
                return self._terminated
            running = self._popen.poll() is None
            signum, survivors = self._tree.kill(grace, cut_short)
            outcome = dataclasses.replace(self._record(), killed=running)
            self._terminated = outcome
            self._close_tree()
        self._log.info(
            "child_killed", pid=self.pid, signal=signum.name, survivors=survivors
        )
        return outcome

    def kill_leftovers(self, grace: float) -> int:
        """After the child ended by itself: kill what it left behind (what is
        still in its cgroup; or, under the fallback, descendants, marked and
        adopted processes), with the same TERM/grace/KILL policy, and remove the
        cgroup. Returns how many processes were found. Costs one read of the
        cgroup's ``cgroup.events``, or under the fallback next to nothing when
        ``proctable.tree_may_remain`` rules leftovers out, else one scan."""
        with self._lock:
            found = self._tree.kill_leftovers(grace)
            self._close_tree()
        if found:
            self._log.info("child_leftovers_killed", pid=self.pid, count=found)
        return found

    def _close_tree(self) -> None:
        """Remove the attempt's cgroup (once empty); say so when it cannot be."""
        if not self._tree.close() and isinstance(self._tree, CgroupTree):
            self._log.warning("cgroup_not_removed", cgroup=str(self._tree.group.path))

    def _record(self) -> ProcessExit:
        """The outcome of the reaped child, measured once."""
        if self._outcome is None:
            rc = self._popen.returncode
            assert rc is not None  # noqa: S101 - only called after poll/wait returned
            duration = time.monotonic() - self._started
            self._outcome = ProcessExit(
                returncode=rc if rc >= 0 else None,
                signal=-rc if rc < 0 else None,
                duration_s=duration,
            )
            with proctable.OWNED_LOCK:
                proctable.OWNED.discard(self.pid)
            if self._watch is not None:
                self._watch.close()
            self._log.debug("child_exited", pid=self.pid, duration_s=round(duration, 3))
        return self._outcome


# ------------------------------------------------------------------ module helpers


@contextlib.contextmanager
def _open_output(path: Path) -> Iterator[int]:
    """An output file for the child, opened for append (never through a symlink),
    closed in the parent."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise SpawnError(f"cannot open the output file {path}: {exc.strerror}") from exc
    try:
        yield fd
    finally:
        os.close(fd)


def _popen(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    fds: tuple[int | None, int, int],
    *,
    run_as: RunAs | None = None,
    group: AttemptCgroup | None = None,
) -> subprocess.Popen[bytes]:
    """Start the child (as ``run_as`` when given: ``Popen`` sets the groups, the
    gid and the uid in the child, after ``cwd`` and before the exec; in ``group``
    when given, the runner stepping into it for the fork) and register its pid,
    all under the registry lock, which every spawn holds. ``fds``: stdin (None:
    /dev/null), stdout, stderr."""
    in_fd, out_fd, err_fd = fds
    inside = contextlib.nullcontext() if group is None else group.entered()
    try:
        with proctable.OWNED_LOCK, inside:
            popen = subprocess.Popen(  # noqa: S603 - running the task's command is our job
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL if in_fd is None else in_fd,
                stdout=out_fd,
                stderr=err_fd,
                start_new_session=True,
                close_fds=True,
                umask=_TASK_UMASK,
                user=None if run_as is None else run_as.uid,
                group=None if run_as is None else run_as.gid,
                extra_groups=None if run_as is None else list(run_as.groups),
            )
            proctable.OWNED.add(popen.pid)
    except OSError as exc:
        where = exc.filename or argv[0]
        raise SpawnError(f"cannot start {argv[0]!r}: {exc.strerror} ({where})") from exc
    except ValueError as exc:  # a NUL byte in argv or env
        raise SpawnError(f"cannot start {argv[0]!r}: {exc}") from exc
    return popen
