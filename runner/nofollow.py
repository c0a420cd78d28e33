"""Opening files and folders in a tree that someone else may write to: never
through a symlink, with modes that do not depend on the umask.

Owns: the work dir's modes (``PRIVATE_DIR`` 0700, ``PASSABLE_DIR`` 0711,
``PRIVATE_FILE`` 0600) and the descriptor-relative primitives that ``workdir``
(the work dir and the attempt folders) and ``activities.staging`` (the folders a
task wrote) are built on.

Must not: decide which folder gets which mode or owner (their owners do), or log.

Why it is built this way: a check then an open (``is_symlink()``, then ``open``)
leaves a window in which a link can replace the file; ``O_NOFOLLOW`` closes it for
the last component, and walking a tree one level at a time, each ``openat``
relative to its parent's descriptor with ``O_NOFOLLOW | O_DIRECTORY``, closes it
for every other component. A symlink where a folder or file is expected is an
``OSError`` (``ELOOP``, or ``ENOTDIR`` under ``O_DIRECTORY``), never followed.
``O_NONBLOCK`` keeps a FIFO planted in place of a file from blocking the open.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

PRIVATE_DIR = 0o700
PASSABLE_DIR = 0o711
PRIVATE_FILE = 0o600
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_RULE = "the runner opens nothing in its work dir through a symlink"


def open_private(dir_fd: int, name: str, flags: int) -> int:
    """``name`` in ``dir_fd``, never through a symlink (``ELOOP``) and only a
    regular file (else ``EINVAL``); created, or made, 0600."""
    fd = os.open(name, flags | FILE_FLAGS, PRIVATE_FILE, dir_fd=dir_fd)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", name)
    if stat.S_IMODE(mode) != PRIVATE_FILE:
        os.fchmod(fd, PRIVATE_FILE)
    return fd


def refusal(path: Path, exc: OSError) -> str:
    """What to tell an operator about ``exc`` on ``path``."""
    if exc.errno == errno.ELOOP:
        return f"{path} is a symlink: {_RULE}; remove it"
    if exc.errno == errno.ENOTDIR:
        return f"{path}: a symlink or a file stands where a folder should: {_RULE}"
    return f"cannot use {path}: {exc.strerror or exc}"


@contextlib.contextmanager
def folder(path: Path) -> Iterator[int]:
    """A descriptor of the folder ``path``, a path that is trusted as it is (the
    resolved work dir)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def entered(dir_fd: int, name: str, *, make: bool = True) -> Iterator[int]:
    """``enter``, closed at the end of the block."""
    fd = enter(dir_fd, name, make=make)
    try:
        yield fd
    finally:
        os.close(fd)


def enter(dir_fd: int, name: str, *, make: bool = True) -> int:
    """Folder ``name`` of ``dir_fd``, made (0700) if absent and ``make``, never
    through a symlink: ``ELOOP`` for a link, ``ENOTDIR`` for a file."""
    if make:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, PRIVATE_DIR, dir_fd=dir_fd)
    return os.open(name, DIR_FLAGS, dir_fd=dir_fd)


def set_mode(fd: int, mode: int) -> int | None:
    """Give the open file ``mode``; the mode it had, when that was another."""
    was = stat.S_IMODE(os.fstat(fd).st_mode)
    if was == mode:
        return None
    os.fchmod(fd, mode)
    return was


def remove_entry(dir_fd: int, name: str) -> bool:
    """Remove ``name`` of ``dir_fd``: a folder with all in it, anything else (a
    link) as itself. False when there was nothing."""
    try:
        is_dir = stat.S_ISDIR(os.lstat(name, dir_fd=dir_fd).st_mode)
    except FileNotFoundError:
        return False
    if is_dir:
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)
    return True
