"""Taking the staging folders back from the task's user before the runner reads or
removes them.

Under ``run_as`` another task of the same user may still be writing the staging
folders: each folder is made the runner's, 0700, *before* it is listed, so that
what is listed cannot change after, and what is neither a folder nor a regular
file of the folders' owner is removed: a symlink is never followed (design.md
§3), and a hard link to someone else's file is not uploaded.

Must not: follow a link or open a path through one. Split from ``staging.py`` by
concept: that module moves files to and from S3; this one makes the folders safe
to read.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from runner import nofollow

#: The mode of a folder taken back: the runner's alone.
DIR_MODE = 0o700


def take_back(top: Path) -> None:
    """Make ``top`` and every folder in it the runner's and 0700, each before it is
    listed, and remove what is neither a folder nor a regular file of ``top``'s
    owner. Nothing when ``top`` does not exist. Opens nothing through a symlink,
    one descriptor at a time: every folder above the one being opened is the
    runner's already (``top``'s parent too), so no path on the way can change.
    Raises ``OSError``."""
    euid, owner = os.geteuid(), -1
    if euid != 0:  # a task of a runner that is not root is the runner's own user
        with contextlib.suppress(FileNotFoundError):
            os.chmod(top, DIR_MODE)  # readable again, if the task made it not
    pending = [top]
    while pending:
        path = pending.pop()
        try:
            fd = os.open(path, nofollow.DIR_FLAGS)
        except FileNotFoundError:
            if path == top:
                return
            raise
        try:
            found = os.fstat(fd)
            owner = found.st_uid if owner < 0 else owner
            if found.st_uid != euid:  # root, taking a run_as user's folder back
                os.fchown(fd, euid, os.getegid())
            os.fchmod(fd, DIR_MODE)
            pending.extend(path / name for name in drop_foreign(fd, owner))
        finally:
            os.close(fd)


def drop_foreign(dir_fd: int, owner: int) -> list[str]:
    """Remove the entries of the folder ``dir_fd`` (the runner's: they cannot
    change) that are neither folders nor regular files of ``owner``; make its
    folders 0700 and return their names."""
    folders = []
    with os.scandir(dir_fd) as entries:
        found = list(entries)
    for entry in found:
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            os.chmod(entry.name, DIR_MODE, dir_fd=dir_fd)
            folders.append(entry.name)
        elif not stat.S_ISREG(info.st_mode) or info.st_uid != owner:
            os.unlink(entry.name, dir_fd=dir_fd)
    return folders
