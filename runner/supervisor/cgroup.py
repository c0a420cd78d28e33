"""The runner's cgroup (v2) and one cgroup per attempt: make them, put a task's first
process in one, tell what is in one, and remove them.

It owns the runner's place in the cgroup2 hierarchy: ``setup`` (called once, by
``contain``, in ``dp-runner run`` and ``run --local`` only; never at import, nor in
the test process), the ``Containment`` it settled on (the start-up line says which
and why), and ``AttemptCgroup``. It never signals a process one by one:
``kill.kill_cgroup`` stops the members of an attempt's cgroup, with
``AttemptCgroup.kill_all`` (``cgroup.kill``) for the KILL.

Why it is built this way:

- A cgroup is the one set of processes that nothing the task does can leave: not
  ``setsid``, not a wiped environment, not a double fork. Only writing
  ``cgroup.procs`` moves a process out, and that takes write access to the
  cgroups on both sides: a task that runs as ``run_as`` has none; a task that runs
  as the runner's own user has (the docs say so).
- The runner writes only where the cgroup it was started in is its own:
  ``delegation.locate`` says whether it is, and why (delegated by systemd, or PID
  1 is not systemd), or why not.
- cgroup v2 has no processes in inner nodes once controllers are on, so the
  runner makes a group of its own, ``dp-runner-<pid>-<random>`` (unique per runner
  process, so runners and tests on one host never collide; the pid is the one the
  runner sees, which may be another pid namespace's), moves itself into its
  leaf ``runner``, and makes each attempt's cgroup beside that leaf.
- A child is started in its attempt's cgroup from its first instruction: the
  runner steps into the cgroup for the ``fork`` and back out right after
  (``AttemptCgroup.entered``, under the spawn lock), so no process of the task is
  ever outside it, even for a moment. Moving a process costs about 25 µs here.
- Where no cgroup can be had, ``Containment`` says why and the supervisor uses
  the old scheme (``tree.py``: the walk, the subreaper and the marker).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import errno
import hashlib
import itertools
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from runner.errors import SpawnError
from runner.supervisor import delegation

CGROUP = "cgroup"
FALLBACK = "process-tree"

_GROUP_NAME = re.compile(r"dp-runner-\d+-[0-9a-f]{8}")
#: A runner moves into its leaf milliseconds after making its group: a younger
#: group with an empty leaf is starting, not abandoned.
_STARTING_S = 10.0
_LEAF = "runner"
_ATTEMPT_PREFIX = "task-"
_ATTEMPT_NAME = re.compile(r"task-[0-9a-f]{1,64}-\d{1,12}")
_serial = itertools.count(1)


@dataclasses.dataclass(frozen=True, slots=True)
class Containment:
    """How the runner contains its tasks: ``mechanism`` is ``CGROUP`` (each attempt
    in a cgroup of its own, below ``group``) or ``FALLBACK``; ``reason`` says why."""

    mechanism: str
    reason: str
    group: Path | None = None
    leaf: Path | None = None
    origin: Path | None = None

    def fields(self) -> dict[str, str]:
        """For the start-up line."""
        found = {"containment": self.mechanism, "containment_reason": self.reason}
        if self.group is not None:
            found["cgroup"] = str(self.group)
        return found


_NOT_SET_UP = Containment(
    FALLBACK, "not set up: only dp-runner run puts its tasks in cgroups"
)
_current = _NOT_SET_UP


def current() -> Containment:
    """What ``setup`` settled on (the fallback before it, or without it)."""
    return _current


def setup() -> Containment:
    """Make the runner's group and move the runner into its leaf, where the
    runner's cgroup is delegated to it; else the fallback, with the reason. Once
    per process; the group is removed at exit (``release``)."""
    global _current  # noqa: PLW0603 - one runner process, one place in the hierarchy
    if _current is not _NOT_SET_UP:
        return _current
    found = delegation.locate()
    if isinstance(found, str):
        _current = Containment(FALLBACK, found)
        return _current
    origin, reason = found
    _sweep_stale(origin)
    made = _make_group(origin)
    if isinstance(made, str):
        _current = Containment(FALLBACK, made)
        return _current
    _current = Containment(CGROUP, reason, made, made / _LEAF, origin)
    atexit.register(release)
    return _current


def release() -> None:
    """At exit: move the runner back to the cgroup it started in and remove its
    leaf and group (a group that still holds an attempt's cgroup stays: the
    journal names it for the next start)."""
    state = _current
    if state.mechanism != CGROUP or state.origin is None or state.leaf is None:
        return
    with contextlib.suppress(OSError):
        _move(os.getpid(), state.origin)
        state.leaf.rmdir()
        if state.group is not None:
            state.group.rmdir()


class AttemptCgroup:
    """One attempt's cgroup: ``<group>/task-<digest>-<n>``, made before the spawn,
    removed (``remove``) once it is empty."""

    def __init__(self, path: Path) -> None:
        self.path = path
        #: As /proc/PID/cgroup names it: what ``has`` compares with.
        self._name = delegation.relative(path)

    @classmethod
    def create(cls, digest: str) -> AttemptCgroup | None:
        """A new, empty cgroup for an attempt, or None under the fallback. Raises
        ``OSError`` when the kernel refuses it."""
        state = _current
        if state.mechanism != CGROUP or state.group is None:
            return None
        name = f"{_ATTEMPT_PREFIX}{digest}-{next(_serial)}"
        path = state.group / name
        path.mkdir(mode=0o755)
        return cls(path)

    @classmethod
    @contextlib.contextmanager
    def made(
        cls, marker: str, on_cgroup: Callable[[str], None] | None
    ) -> Iterator[AttemptCgroup | None]:
        """For a spawn: a new cgroup for the attempt whose processes carry
        ``marker`` (None under the fallback), handed to ``on_cgroup`` before
        anything runs in it; removed again when the spawn fails. Raises
        ``SpawnError``."""
        digest = hashlib.sha256(marker.encode()).hexdigest()[:12]
        try:
            group = cls.create(digest)
        except OSError as exc:
            message = f"cannot create the attempt's cgroup: {exc.strerror}"
            raise SpawnError(message) from exc
        if group is None:
            yield None
            return
        try:
            if on_cgroup is not None:
                on_cgroup(str(group.path))
            yield group
        except BaseException:
            group.remove()
            raise

    @classmethod
    def journaled(cls, path: str) -> AttemptCgroup | None:
        """The attempt cgroup a journal row names, if it still exists and is one
        (a cgroup2 directory named like ours: nothing else is ever touched)."""
        candidate = Path(path)
        if not _ATTEMPT_NAME.fullmatch(candidate.name):
            return None
        if not _GROUP_NAME.fullmatch(candidate.parent.name):
            return None
        if not (candidate / "cgroup.procs").is_file():
            return None
        return cls(candidate)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """The runner inside this cgroup for the block (a ``fork`` in it starts
        the child here), then back in its leaf. Hold the spawn lock: no other
        thread may fork meanwhile. Raises ``OSError``."""
        leaf = _current.leaf
        if leaf is None:
            raise OSError(errno.ENOENT, "the runner has no cgroup of its own")
        _move(os.getpid(), self.path)
        try:
            yield
        finally:
            _move(os.getpid(), leaf)

    def pids(self) -> list[int]:
        """The members now (no zombies: the kernel drops a process at its exit)."""
        try:
            text = (self.path / "cgroup.procs").read_text(encoding="ascii")
        except OSError:  # removed: nothing is in it
            return []
        return [int(line) for line in text.split()]

    def populated(self) -> bool:
        """Whether a process is in it (or in a cgroup below it)."""
        try:
            events = (self.path / "cgroup.events").read_text(encoding="ascii")
        except OSError:
            return False
        return "populated 1" in events.splitlines()

    def kill_all(self) -> bool:
        """SIGKILL every member at once through ``cgroup.kill`` (Linux >= 5.14),
        forks in flight included. False where the kernel has no ``cgroup.kill``."""
        try:
            (self.path / "cgroup.kill").write_text("1", encoding="ascii")
        except FileNotFoundError:
            return False
        return True

    def has(self, pid: int) -> bool:
        """Whether ``pid`` is in this cgroup now."""
        return self._name is not None and delegation.cgroup_of(pid) == self._name

    def remove(self, *, runner_gone: bool = False) -> bool:
        """Remove the cgroup and, with ``runner_gone`` (a journal row of an
        earlier run), that runner's group when it is empty. False while a process
        is still in it."""
        try:
            self.path.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            return False
        group = self.path.parent
        if runner_gone and _GROUP_NAME.fullmatch(group.name):
            _remove_group(group)
        return True


def _make_group(origin: Path) -> Path | str:
    """``origin/dp-runner-<pid>-<random>`` with the runner in its leaf, or why not."""
    group = origin / f"dp-runner-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        group.mkdir(mode=0o755)
    except OSError as exc:
        return f"cannot create a cgroup in {origin}: {exc.strerror}"
    try:
        (group / _LEAF).mkdir(mode=0o755)
        _move(os.getpid(), group / _LEAF)
    except OSError as exc:
        _remove_group(group)
        return f"cannot move the runner into {group / _LEAF}: {exc.strerror}"
    return group


def _move(pid: int, directory: Path) -> None:
    (directory / "cgroup.procs").write_text(str(pid), encoding="ascii")


def _sweep_stale(origin: Path) -> None:
    """Remove what runners that are gone (a ``kill -9`` leaves it) left empty:
    their leaves, their attempts' empty cgroups, their groups. A cgroup with a
    process in it stays (``rmdir`` refuses it) for the journal's recovery."""
    with contextlib.suppress(OSError):
        for entry in origin.iterdir():
            if _GROUP_NAME.fullmatch(entry.name) and _abandoned(entry):
                _remove_group(entry)


def _remove_group(group: Path) -> None:
    """Remove ``group``'s empty cgroups, then ``group`` if that left it empty."""
    with contextlib.suppress(OSError):
        for entry in group.iterdir():
            if entry.name == _LEAF or _ATTEMPT_NAME.fullmatch(entry.name):
                with contextlib.suppress(OSError):
                    entry.rmdir()
    with contextlib.suppress(OSError):
        group.rmdir()


def _abandoned(group: Path) -> bool:
    """Whether the runner that made ``group`` is gone: the group is older than a
    start takes, and its leaf holds no process (the kernel's word, whatever pid
    namespace that runner was in) or was never made."""
    try:
        if time.time() - group.stat().st_ctime <= _STARTING_S:
            return False
        events = (group / _LEAF / "cgroup.events").read_text(encoding="ascii")
    except FileNotFoundError:
        return True  # the leaf was never made (or the group went meanwhile)
    except OSError:
        return False
    return "populated 0" in events.splitlines()
