"""Pruning the attempt folders: ``attempts/<pipeline>/<component>/<instance>/
<attempt>`` walked through descriptors with ``lstat``, the folders older than
``keep_days`` removed, the ones it leaves empty too.

Must not: follow a link (a link is removed as a link, never what it names), or
remove a folder it is told to keep (running attempts, the journal's). Split from
``workdir.py`` by concept: that module makes and locks the work dir; this one
only removes what is old in it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from runner import nofollow
from runner.nofollow import DIR_FLAGS

DAY_S = 86400.0
ATTEMPT_DEPTH = 4  # <pipeline>/<component>/<instance>/<attempt>


def prune_attempts(
    base: Path,
    keep_days: float,
    now: float | None,
    keep: Collection[Path],
    making: threading.Lock,
) -> int:
    """Remove what below ``base`` is untouched for more than ``keep_days``, except
    ``keep``; how many entries were removed. ``making`` is held while an attempt's
    folders are made: an emptied folder is removed only under it."""
    cutoff = (time.time() if now is None else now) - keep_days * DAY_S
    try:
        fd = os.open(base, DIR_FLAGS)
    except OSError:
        return 0  # nothing yet (or not a folder: never followed)
    try:
        walk = _Walk(cutoff, {Path(p) for p in keep}, making)
        return walk.prune(fd, base, ATTEMPT_DEPTH)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class _Walk:
    """One prune: older than ``cutoff`` goes, ``keep`` stays, and ``making`` is the
    work dir's lock on making an attempt's folders."""

    cutoff: float
    keep: set[Path]
    making: threading.Lock

    def prune(self, dir_fd: int, path: Path, depth: int) -> int:
        """Prune below ``path`` (open as ``dir_fd``), ``depth`` levels above the
        attempt folders; how many entries were removed."""
        removed = 0
        with os.scandir(dir_fd) as entries:
            found = list(entries)
        for entry in found:
            if path / entry.name in self.keep:
                continue
            try:
                folder = entry.is_dir(follow_symlinks=False)
                if depth > 1 and folder:
                    with nofollow.entered(dir_fd, entry.name, make=False) as sub:
                        removed += self.prune(sub, path / entry.name, depth - 1)
                    # only succeeds when empty; never while an attempt is entering it
                    with self.making, contextlib.suppress(OSError):
                        os.rmdir(entry.name, dir_fd=dir_fd)
                elif entry.stat(follow_symlinks=False).st_mtime < self.cutoff:
                    removed += nofollow.remove_entry(dir_fd, entry.name)
            except OSError:
                continue  # raced with another prune or a running attempt: next time
        return removed
