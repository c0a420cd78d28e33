"""sd_notify in a few lines of stdlib: READY, STOPPING, STATUS and WATCHDOG.

It owns the notification protocol: one AF_UNIX datagram to ``$NOTIFY_SOCKET``, where a
leading ``@`` means the abstract namespace (sd_notify(3)). It must never raise into the
main loop and never matters when systemd is absent: with no ``NOTIFY_SOCKET`` every
call is a no-op that returns False.

Why it is built this way: systemd's maintainers call this protocol the API and
recommend reimplementing it over linking libsystemd (peers.md §3); the PyPI wrappers
are stale or need a C toolchain. After gunicorn's ``systemd.sd_notify``. The task's
environment drops ``NOTIFY_SOCKET`` and ``WATCHDOG_*``
(``supervisor.task_environment``), so only the runner speaks for the unit.
"""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send ``state`` (for example ``"READY=1"``); True when it was sent."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(
            socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
        ) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except (OSError, ValueError, UnicodeError):  # a gone or odd socket: never fatal
        return False
    return True


def ready() -> bool:
    return notify("READY=1")


def stopping() -> bool:
    return notify("STOPPING=1")


def status(text: str) -> bool:
    """A free-text status line for ``systemctl status`` (one line)."""
    return notify("STATUS=" + " ".join(text.splitlines()))


def watchdog() -> bool:
    return notify("WATCHDOG=1")


def watchdog_interval_s() -> float | None:
    """How often to send ``watchdog()``: half of ``WATCHDOG_USEC``
    (sd_watchdog_enabled(3)), or None when the watchdog is off or meant for
    another process."""
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = os.environ.get("WATCHDOG_PID", "")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2 / 1_000_000


#: Mounts that are never where a task writes its work.
_PSEUDO_MOUNTS = ("/proc", "/sys", "/dev")


def writable_paths(mountinfo: str | None = None) -> list[str] | None:
    """When the root file system is mounted read-only (systemd's
    ``ProtectSystem=strict``, a container's read-only root), the mount points that
    are writable: where tasks can write. None when ``/`` is writable. Reads
    ``/proc/self/mountinfo`` unless given its text; never raises."""
    if mountinfo is None:
        try:
            with open("/proc/self/mountinfo", encoding="utf-8") as file:
                mountinfo = file.read()
        except OSError:
            return None
    mounts: dict[str, bool] = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 5:
            mounts[fields[4]] = "rw" in fields[5].split(",")  # the last one wins
    if mounts.get("/", True):
        return None
    return sorted(
        point
        for point, writable in mounts.items()
        if writable and not point.startswith(_PSEUDO_MOUNTS)
    )
