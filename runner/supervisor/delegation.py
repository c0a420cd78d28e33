"""Whether the runner may divide its own cgroup (v2), and where that cgroup is.

It owns reading the kernel's and systemd's word on it: the visible cgroup2 mount
(``/proc/self/mountinfo``), a process's cgroup (``/proc/PID/cgroup``), whether
PID 1 is systemd and whether systemd delegated the cgroup. It writes nothing:
``cgroup.py`` makes and moves, from what ``locate`` says.

Why it is built this way:

- The runner writes only where its cgroup is its own: delegated by systemd
  (``Delegate=yes`` marks the unit's cgroup with the ``trusted.delegate`` or
  ``user.delegate`` attribute), or on a host or in a container whose PID 1 is not
  systemd (a cgroup namespace's root, or root on such a host). Under systemd
  without the mark (a login session, a unit without ``Delegate=yes``) it writes
  nothing, even as root: systemd owns those cgroups and would fight over them.
- The mount is the last cgroup2 line of mountinfo, the one a path resolves to
  when mounts are stacked; one mounted read-only (``ProtectControlGroups=yes``,
  a container's default, a test's bind mount) means no cgroups, and says so.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path

_MOUNTINFO = Path("/proc/self/mountinfo")
_SYSTEMD_BOOTED = Path("/run/systemd/system")  # sd_booted(): PID 1 is systemd
_DELEGATE_ATTRIBUTES = ("trusted.delegate", "user.delegate")


def locate() -> tuple[Path, str] | str:
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
    mount = cgroup2_mount()
    if mount is None:
        return "no cgroup2 hierarchy is mounted"
    mountpoint, root, read_only = mount
    own = cgroup_of(os.getpid())
    if own is None:
        return "the runner is in no cgroup2 group (/proc/self/cgroup)"
    if read_only:
        return f"cgroup2 is mounted read-only at {mountpoint}"
    relative = os.path.relpath(own, root)
    if relative.startswith(".."):
        return f"the runner's cgroup {own} is outside the cgroup2 mount {mountpoint}"
    return Path(os.path.normpath(mountpoint / relative)), own


def cgroup2_mount() -> tuple[Path, str, bool] | None:
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


def cgroup_of(pid: int) -> str | None:
    """``pid``'s cgroup2 path (the ``0::`` line of /proc/PID/cgroup)."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def relative(path: Path) -> str | None:
    """``path`` (a directory on the cgroup2 mount) as /proc/PID/cgroup names it."""
    mount = cgroup2_mount()
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
