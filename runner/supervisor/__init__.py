"""One task's process tree: spawn it, watch it, kill all of it, reap it.

The ``supervisor`` package owns every contact with processes: the only code that
imports ``subprocess`` or ``psutil`` and calls ``os.killpg``/``os.waitpid``/``prctl``.
This module spawns and waits; ``kill`` signals (the TERM/grace/KILL policy, shared
with ``kill_marked``, which stops what a runner killed with ``kill -9`` left);
``proctable`` scans and reaps. It knows nothing about the API, tasks or statuses:
it turns an argv into an ``Outcome``.

Why it is built this way:

- The child runs in a session of its own, so its group is ours to signal and signals
  meant for the runner never reach it. Output goes to files that the parent closes
  right after the spawn: no pipes, no pump threads, flat memory whatever is printed.
- The end of the child is seen at once: the wait blocks in ``poll`` on a pidfd
  (Linux), together with a wake-up pipe that ``interrupt_wait`` writes, so a stop
  request from another thread ends the wait too. ``Popen.wait(timeout)`` would
  sleep-poll instead, adding milliseconds to every task. Without pidfds (other
  platforms) the wait falls back to ``Popen.wait``.
- Killing follows trio (TERM, wait, KILL), made thorough: the tree is *snapshotted
  before* the first signal, since a dead parent's children re-parent and drop out of
  it. The snapshot is the child's descendants (parent links find ``setsid``
  grandchildren), plus every process of our uid (any uid when the runner is root:
  tasks may run as ``run_as``) whose environment carries
  ``DP_RUNNER_ATTEMPT=<marker>`` (double-fork orphans, adopted by the runner when
  ``run`` made it a subreaper, else by init), plus their descendants. An orphan that
  wiped its environment cannot be told from another task's and is left to systemd
  (``KillMode=mixed``). Single pids are signalled through psutil, which checks the
  start time, so a reused pid is never hit.
- Reaping is by pid, never ``waitpid(-1)``. Our child is reaped only by its
  ``Popen``, adopted orphans by ``waitpid(pid, WNOHANG)``; ``reap_orphans`` skips
  every pid a live Supervisor owns (a registry whose lock is held across the spawn).

``execution.py`` calls ``wait_exit`` until the child ends, then ``kill_leftovers`` to
sweep what it left under the marker; or ``terminate`` to stop it early.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import psutil
import structlog

from runner.errors import SpawnError
from runner.runas import RunAs
from runner.supervisor import kill, proctable
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
from runner.taskmodel import Outcome

__all__ = [
    "MARKER_ENV",
    "Supervisor",
    "Sweep",
    "boot_id",
    "enable_subreaper",
    "kill_marked",
    "reap_orphans",
    "start_time",
    "task_environment",
]

#: The runner's own variables, never handed to a task (design.md §3, peers.md §3).
_SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
_SOCKET_VARIABLES = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
_RUNNER_VARIABLES = frozenset(_SYSTEMD_VARIABLES + _SOCKET_VARIABLES)
_RUNNER_PREFIX = "DP_RUNNER_"
_TASK_UMASK = 0o077


def task_environment(
    base: Mapping[str, str], extra: Mapping[str, str], *, run_as: RunAs | None = None
) -> dict[str, str]:
    """``base`` without the runner's own variables (systemd's and ``DP_RUNNER_*``),
    and under ``run_as`` without its AWS credentials and with the user's ``HOME``,
    ``USER`` and ``LOGNAME`` (``RunAs.environment``); updated with ``extra``. Pure."""
    env = {
        key: value
        for key, value in base.items()
        if key not in _RUNNER_VARIABLES and not key.startswith(_RUNNER_PREFIX)
    }
    if run_as is not None:
        env = run_as.environment(env)
    env.update(extra)
    return env


class Supervisor:
    """One running child and its tree. ``wait_exit``/``poll_nowait`` may be called
    from any thread; ``terminate`` and ``kill_leftovers`` are serialised by a lock."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        *,
        marker: str,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._popen = popen
        self.pid = popen.pid
        self._marker = marker
        self._started = time.monotonic()
        self._log = log
        self._lock = threading.Lock()
        self._outcome: Outcome | None = None
        self._terminated: Outcome | None = None
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
    ) -> Supervisor:
        """Start ``argv`` in a new session, in ``cwd``, with ``env`` plus the marker,
        stdin from /dev/null (or a socket on which ``stdin``'s bytes are handed over
        once the child is non-dumpable, see ``handoff.py``), stdout and
        stderr appended to the files (mode 0600, never through a symlink), umask 077;
        as ``run_as`` (uid, gid and groups) when given. Raises ``SpawnError`` when
        the files cannot be opened or the program cannot be started."""
        if not argv:
            raise SpawnError("cannot start a task with an empty command line")
        # Two O_APPEND descriptors on one file interleave safely: no special case.
        with (
            _open_output(stdout) as out_fd,
            _open_output(stderr) as err_fd,
            HandOff.prepared(stdin) as hand,
        ):
            popen = _popen(
                argv,
                cwd,
                {**env, MARKER_ENV: marker},
                (None if hand is None else hand.child_fd, out_fd, err_fd),
                run_as=run_as,
            )
            if hand is not None:
                uid = os.getuid() if run_as is None else run_as.uid
                hand.start(popen.pid, uid, log)
        log.debug("child_started", pid=popen.pid)
        return cls(popen, marker=marker, log=log)

    def poll_nowait(self) -> Outcome | None:
        """The outcome if the child has ended (reaping it), else None."""
        if self._popen.poll() is None:
            return None
        return self._record()

    def wait_exit(self, timeout: float | None) -> Outcome | None:
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
    ) -> Outcome:
        """Kill the whole tree: snapshot, SIGTERM group and pids, wait ``grace``
        (or until ``cut_short`` is set), SIGKILL the survivors, reap. Blocks about
        ``grace`` at most when the tree ignores SIGTERM, far less when it obeys.
        Returns ``killed=True`` when the child was still running; when it had already
        ended, its own outcome (and the leftovers are swept all the same). Safe to
        call twice."""
        with self._lock:
            if self._terminated is not None:
                return self._terminated
            running = self._popen.poll() is None
            signum, survivors = self._kill_tree(grace, cut_short=cut_short)
            outcome = dataclasses.replace(self._record(), killed=running)
            self._terminated = outcome
        self._log.info(
            "child_killed", pid=self.pid, signal=signum.name, survivors=survivors
        )
        return outcome

    def kill_leftovers(self, grace: float) -> int:
        """After the child ended by itself: kill what it left behind (descendants
        carrying the marker, such as a daemonised helper), with the same
        TERM/grace/KILL policy. Returns how many processes were found. Costs
        next to nothing when ``proctable.tree_may_remain`` rules leftovers out
        (a subreaper with no stray child), else one scan of the process table."""
        with self._lock:
            if self._popen.returncode is not None and not proctable.tree_may_remain(
                self.pid
            ):
                return 0
            victims = self._snapshot()
            if not victims:
                return 0
            self._kill_tree(grace, victims)
        self._log.info("child_leftovers_killed", pid=self.pid, count=len(victims))
        return len(victims)

    def _kill_tree(
        self,
        grace: float,
        victims: dict[int, psutil.Process] | None = None,
        cut_short: threading.Event | None = None,
    ) -> tuple[signal.Signals, int]:
        """TERM, wait ``grace`` (or until ``cut_short``), KILL, reap. Returns the
        last signal sent and how many processes outlived the TERM."""
        if victims is None:
            victims = self._snapshot()
        alive, _ = kill.term_then_kill(
            victims,
            grace,
            signal_all=self._signal_all,
            snapshot=self._snapshot,
            alive=self._alive,
            cut_short=cut_short,
        )
        # A victim that died while its parent lived re-parented to us (when we are
        # a subreaper) once that parent died in turn: reap it by pid.
        for pid in victims:
            if pid != self.pid:
                proctable.reap(pid)
        return (signal.SIGKILL if alive else signal.SIGTERM), len(alive)

    def _snapshot(self) -> dict[int, psutil.Process]:
        """The tree as it is now: the child (while unreaped), its descendants,
        processes of our uid (any, as root) that carry the marker, and their
        descendants."""
        return proctable.tree(
            [self.pid] if self._popen.returncode is None else [], self._marker
        )

    def _signal_all(self, signum: signal.Signals, procs: list[psutil.Process]) -> None:
        """The child's group id is its pid. Signal the group only while the child
        is unreaped (its pid cannot be reused) or a snapshotted process is still
        in the group (a live group id is never handed out again)."""
        unreaped = self._popen.returncode is None
        groups = [self.pid] if unreaped or kill.group_in(self.pid, procs) else []
        kill.send(signum, procs, groups)

    def _alive(self, proc: psutil.Process) -> bool:
        """False once ``proc`` has ended. Our child is reaped through Popen."""
        if proc.pid == self.pid:
            return self._popen.poll() is None
        return kill.adopted_alive(proc)

    def _record(self) -> Outcome:
        """The outcome of the reaped child, measured once."""
        if self._outcome is None:
            rc = self._popen.returncode
            assert rc is not None  # noqa: S101 - only called after poll/wait returned
            duration = time.monotonic() - self._started
            self._outcome = Outcome(
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
) -> subprocess.Popen[bytes]:
    """Start the child (as ``run_as`` when given: ``Popen`` sets the groups, the
    gid and the uid in the child, after ``cwd`` and before the exec) and register
    its pid, both under the registry lock. ``fds``: stdin (None: /dev/null),
    stdout, stderr."""
    in_fd, out_fd, err_fd = fds
    try:
        with proctable.OWNED_LOCK:
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
