"""An attempt's process tree, found and killed in one of two ways: its cgroup
(``CgroupTree``) where the runner has cgroups, else the walk of the process table
(``ProcessTree``, the fallback). ``Supervisor`` holds one and asks it to kill the
tree or what the child left behind; ``cgroup.current()`` says which is in force.

It must not spawn or reap the child (``Supervisor`` does, through its ``Popen``),
nor wait with ``time.sleep``.

Why it is built this way:

- The cgroup is the tree: every process the task starts is in it whatever it does
  to its sessions or its environment, and the kernel says when it is empty
  (``cgroup.events``), so the check after a task's end costs one read, and the
  kill is ``kill.kill_cgroup``. The empty cgroup is removed when the attempt ends.
- The fallback snapshots the tree *before* the first signal, since a dead parent's
  children re-parent and drop out of it: the child's descendants (parent links
  find ``setsid`` grandchildren), the processes that carry the attempt's marker,
  and the runner's adopted orphans that the attempt's session or group claims (or
  all of them while only this attempt runs: ``proctable.tree``). What it misses is
  listed in the docs: an orphan that wiped its environment and left the session
  while several attempts run.
"""

from __future__ import annotations

import signal
import subprocess
import threading

import psutil

from runner.supervisor import kill, proctable
from runner.supervisor.cgroup import AttemptCgroup


class CgroupTree:
    """The members of the attempt's cgroup."""

    def __init__(self, popen: subprocess.Popen[bytes], group: AttemptCgroup) -> None:
        self._popen = popen
        self.group = group

    def kill(
        self, grace: float, cut_short: threading.Event | None = None
    ) -> tuple[signal.Signals, int]:
        """TERM, ``grace``, KILL the cgroup; the last signal sent and how many
        processes outlived the TERM."""
        _, after_term, _ = kill.kill_cgroup(self.group, grace, cut_short)
        self._popen.poll()  # our child is a zombie by now: Popen reaps it
        return (signal.SIGKILL if after_term else signal.SIGTERM), after_term

    def kill_leftovers(self, grace: float) -> int:
        """After the child's end: kill what is still in the cgroup; how many
        processes were found (one read of ``cgroup.events`` when none)."""
        if not self.group.populated():
            return 0
        found, _, _ = kill.kill_cgroup(self.group, grace)
        return found

    def close(self) -> bool:
        """Remove the empty cgroup; False while something is still in it."""
        return self.group.remove()


class ProcessTree:
    """The fallback: the child's tree as a scan of the process table finds it."""

    def __init__(self, popen: subprocess.Popen[bytes], marker: str) -> None:
        self._popen = popen
        self.pid = popen.pid
        self._marker = marker

    def kill(
        self,
        grace: float,
        cut_short: threading.Event | None = None,
        victims: dict[int, psutil.Process] | None = None,
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

    def kill_leftovers(self, grace: float) -> int:
        """After the child's end: kill what it left (descendants, marked or
        adopted processes); how many were found. Costs next to nothing when
        ``proctable.tree_may_remain`` rules leftovers out, else one scan."""
        if self._popen.returncode is not None and not proctable.tree_may_remain(
            self.pid
        ):
            return 0
        victims = self._snapshot()
        if victims:
            self.kill(grace, victims=victims)
        return len(victims)

    def close(self) -> bool:
        """Nothing to remove."""
        return True

    def _snapshot(self) -> dict[int, psutil.Process]:
        """The tree as it is now: the child (while unreaped), its descendants,
        processes of our uid (any, as root) that carry the marker, orphans the
        runner adopted that belong to this attempt, and their descendants."""
        unreaped = self._popen.returncode is None
        return proctable.tree(
            [self.pid] if unreaped else [], self._marker, session=self.pid
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
