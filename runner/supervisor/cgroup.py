"""The runner's cgroup (v2) and one cgroup per attempt: find out whether the runner
may have them, make them, put a task's first process in one, and remove them.

It owns the runner's place in the cgroup2 hierarchy: ``setup`` (called once, by
``contain``, in ``dp-runner run`` and ``exec`` only; never at import, never in the
test process), the ``Containment`` it settled on (the start-up line says which and
why), and ``AttemptCgroup``. It never signals a process: ``kill.kill_cgroup`` stops
the members of an attempt's cgroup.

Why it is built this way:

- A cgroup is the one set of processes that nothing the task does can leave: not
  ``setsid``, not a wiped environment, not a double fork. Only writing
  ``cgroup.procs`` moves a process out, and that takes write access to the
  cgroups on both sides: a task that runs as ``run_as`` has none; a task that runs
  as the runner's own user has (the docs say so).
- The runner writes only where the cgroup it was started in is its own: delegated
  by systemd (``Delegate=yes``, which marks the cgroup with the ``trusted.delegate``
  or ``user.delegate`` attribute), or on a host or in a container whose PID 1 is
  not systemd (a cgroup namespace's root, or root on such a host) where it can
  create a cgroup. Under systemd without the mark (a login session, a unit
  without ``Delegate=yes``) it writes nothing: systemd owns those cgroups.
- cgroup v2 has no processes in inner nodes once controllers are on, so the
  runner makes a group of its own, ``dp-runner-<pid>-<start>`` (unique per runner
  process, so runners and tests on one host never collide), moves itself into its
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
import itertools
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

CGROUP = "cgroup"
FALLBACK = "process-tree"

_MOUNTINFO = Path("/proc/self/mountinfo")
_OWN_CGROUP = Path("/proc/self/cgroup")
_SYSTEMD_BOOTED = Path("/run/systemd/system")  # sd_booted(): PID 1 is systemd
_DELEGATE_ATTRIBUTES = ("trusted.delegate", "user.delegate")
_GROUP_NAME = re.compile(r"dp-runner-(\d+)-(\d+)")
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
    FALLBACK, "not set up: only dp-runner run and exec put tasks in cgroups"
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
    found = _locate()
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
        return _cgroup_of(pid) == _relative(self.path)

    def remove(self) -> bool:
        """Remove the cgroup and, when its runner is gone, that runner's empty
        group. False while a process is still in it."""
        try:
            self.path.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            return False
        group = self.path.parent
        if _GROUP_NAME.fullmatch(group.name) and not _alive(group.name):
            _remove_group(group)
        return True


# ------------------------------------------------------------------ the hierarchy


def _locate() -> tuple[Path, str] | str:
    """The runner's cgroup directory and why it may write there, or why not."""
    found = _own_directory()
    if isinstance(found, str):
        return found
    directory, own = found
    if not _SYSTEMD_BOOTED.is_dir():
        return directory, f"the runner's cgroup {own} is its own (PID 1 is not systemd)"
    if _delegated(directory):
        return directory, f"systemd delegated the runner's cgroup {own} (Delegate=yes)"
    return (
        f"systemd owns the runner's cgroup {own} (no Delegate=yes): the runner does"
        " not write into it"
    )


def _own_directory() -> tuple[Path, str] | str:
    """The runner's cgroup as a writable directory, and as the kernel names it;
    or why there is none."""
    if not sys.platform.startswith("linux"):
        return "not Linux: no cgroups"
    mount = _cgroup2_mount()
    if mount is None:
        return "no cgroup2 hierarchy is mounted"
    mountpoint, root, read_only = mount
    own = _cgroup_of(os.getpid())
    if own is None:
        return "the runner is in no cgroup2 group (/proc/self/cgroup)"
    if read_only:
        return f"cgroup2 is mounted read-only at {mountpoint}"
    relative = os.path.relpath(own, root)
    if relative.startswith(".."):
        return f"the runner's cgroup {own} is outside the cgroup2 mount {mountpoint}"
    return Path(os.path.normpath(mountpoint / relative)), own


def _cgroup2_mount() -> tuple[Path, str, bool] | None:
    """The cgroup2 mount that is visible (the last one listed: a later mount on
    the same point hides an earlier one): its mount point, the cgroup it shows as
    its root, and whether it is read-only."""
    found = None
    try:
        lines = _MOUNTINFO.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        fields, _, rest = line.partition(" - ")
        if rest.split(" ", 1)[0] != "cgroup2":
            continue
        parts = fields.split(" ")
        options = parts[5].split(",")
        found = (Path(_unescape(parts[4])), _unescape(parts[3]), "ro" in options)
    return found


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def _cgroup_of(pid: int) -> str | None:
    """``pid``'s cgroup2 path (the ``0::`` line of /proc/PID/cgroup)."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def _relative(path: Path) -> str | None:
    """``path`` (a directory on the cgroup2 mount) as /proc/PID/cgroup names it."""
    mount = _cgroup2_mount()
    if mount is None:
        return None
    mountpoint, root, _ = mount
    return os.path.normpath(os.path.join(root, os.path.relpath(path, mountpoint)))


def _delegated(directory: Path) -> bool:
    for attribute in _DELEGATE_ATTRIBUTES:
        with contextlib.suppress(OSError):
            if os.getxattr(directory, attribute) == b"1":
                return True
    return False


def _make_group(origin: Path) -> Path | str:
    """``origin/dp-runner-<pid>-<start>`` with the runner in its leaf, or why not."""
    group = origin / f"dp-runner-{os.getpid()}-{_start_ticks(os.getpid())}"
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
            if _GROUP_NAME.fullmatch(entry.name) and not _alive(entry.name):
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


def _alive(name: str) -> bool:
    """Whether the runner that made the group ``name`` still runs."""
    match = _GROUP_NAME.fullmatch(name)
    if match is None:
        return False
    pid, ticks = int(match.group(1)), match.group(2)
    return _start_ticks(pid) == ticks


def _start_ticks(pid: int) -> str:
    """``pid``'s start time in clock ticks since boot (/proc/PID/stat field 22),
    or "" when it is gone: with the pid, unique for the boot."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]
