"""Who a task runs as: the ``run_as`` user, and what running as that user means.

Owns: ``RunAs`` (a user resolved once, at start: uid, gid, supplementary groups,
home), ``resolve`` (when ``run_as`` is a configuration error), ``RunAs.environment``
(the task's identity variables, without the runner's AWS credentials) and
``chown_tree`` (handing a folder tree to a user without following a symlink).

Must not: spawn processes (``supervisor`` passes the ids to ``Popen``), decide which
folders a task gets (``workdir`` does), or log.

Why it is built this way:

- Resolved once: a ``pwd`` lookup may go to NSS (LDAP, sssd), so it is made at
  start, where a failure is a ``ConfigError`` (exit 78), never once per task.
- Only root can switch to another user, so ``run_as`` without root is an error, not
  ignored; a ``run_as`` that names root (uid 0) is refused too: it would open the
  work dir to tasks and isolate nothing.
- A task under ``run_as`` runs someone else's code, and the runner's credentials
  are the runner's: the variables that carry them or name where they are read
  (``CREDENTIAL_VARIABLES``) are dropped, and the task gets its own from the
  instance role (IMDS), as any process of that user would. ``HOME``, ``USER`` and
  ``LOGNAME`` are the user's, so that tools find their own files, not root's.
- ``chown_tree`` walks with ``os.fwalk`` (which never enters a symlinked folder and
  checks each folder it enters is the one it listed) and changes every entry with
  ``follow_symlinks=False``: a link planted in the tree is handed over as a link,
  its target never.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.errors import ConfigError

#: The runner's AWS credentials, or where boto3 and the AWS CLI read them: never
#: handed to a task that runs as ``run_as`` (``AWS_SECURITY_TOKEN`` is the old name
#: of the session token, ``AWS_DEFAULT_PROFILE`` the AWS CLI v1 name of the profile).
CREDENTIAL_VARIABLES = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    }
)


@dataclass(frozen=True, slots=True)
class RunAs:
    """A user that tasks run as. ``groups``: every group of the user, its primary
    group included (what ``setgroups`` gets)."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` without ``CREDENTIAL_VARIABLES``, with this user's ``HOME``,
        ``USER`` and ``LOGNAME``. Pure."""
        result = {k: v for k, v in env.items() if k not in CREDENTIAL_VARIABLES}
        result.update(HOME=self.home, USER=self.name, LOGNAME=self.name)
        return result


def resolve(name: str, *, euid: int | None = None) -> RunAs:
    """The user ``name`` (a user name, or a numeric uid that has an entry), for a
    runner whose effective uid is ``euid`` (default: this process's). Raises
    ``ConfigError`` when the runner is not root, the user is unknown, or it is
    root."""
    if (os.geteuid() if euid is None else euid) != 0:
        raise ConfigError(
            f"run_as={name}: only a runner started as root can run tasks as "
            "another user; unset run_as, or start the runner as root"
        )
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = _by_uid(name)
    if entry.pw_uid == 0:
        raise ConfigError(
            f"run_as={name}: names root (uid 0); run_as must be an unprivileged user"
        )
    groups = sorted(set(os.getgrouplist(entry.pw_name, entry.pw_gid)))
    return RunAs(
        name=entry.pw_name,
        uid=entry.pw_uid,
        gid=entry.pw_gid,
        groups=tuple(groups),
        home=entry.pw_dir,
    )


def _by_uid(name: str) -> pwd.struct_passwd:
    if name.isdigit():
        try:
            return pwd.getpwuid(int(name))
        except KeyError:
            pass
    raise ConfigError(f"run_as={name}: no such user on this host")


def chown_tree(top: Path, uid: int, gid: int) -> int:
    """Give ``top`` and everything below it to ``uid``:``gid``, links as links,
    never through a symlink (``top`` itself must not be one). Nothing when ``top``
    does not exist. Returns how many entries changed hands. Raises ``OSError``."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        top_fd = os.open(top, flags)
    except FileNotFoundError:
        return 0
    try:
        os.fchown(top_fd, uid, gid)
    finally:
        os.close(top_fd)
    count = 1
    for _, dirs, files, dir_fd in os.fwalk(top, follow_symlinks=False):
        for name in (*dirs, *files):
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
        count += len(dirs) + len(files)
    return count
