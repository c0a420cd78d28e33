"""The runner's work dir: its lock, its stable ids, and the per-attempt folders.

One runner per work dir: ``WorkDir.lock()`` takes an exclusive ``flock`` on
``dp-runner.lock`` and holds it for the life of the process, so a second runner on the
same dir fails at once with ``ConfigError`` (exit 78) instead of sharing attempt
folders. The kernel drops the lock when the process dies, however it dies, so there is
no stale-lock cleanup to get wrong.

Attempt folders follow the Java runner's layout,
``attempts/<pipelineId>/<componentId>/<instanceId>/<attemptId>/`` with ``StdOutput`` and
``StdError`` in it. Every path part comes from the service and is passed through
``safe_path_part`` by the caller, so nothing escapes the folder. Old folders are pruned
after ``keep_attempts`` days.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from runner.errors import ConfigError
from runner.taskmodel import AttemptPaths

LOCK_NAME = "dp-runner.lock"
RUNNER_ID_NAME = "taskrunner-id"
ATTEMPTS_NAME = "attempts"
_DAY_S = 86400.0


@dataclass(slots=True)
class WorkDir:
    """A work dir on disk. Not thread-safe to lock; the rest is safe to share."""

    root: Path
    _lock_file: IO[str] | None = None

    def lock(self) -> None:
        """Create the dir (mode 0700) and take the runner lock.

        Raises ``ConfigError`` when the dir cannot be made or another runner holds it.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            handle = (self.root / LOCK_NAME).open("a+", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"work_dir={self.root}: cannot use it: {exc}") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ConfigError(
                f"work_dir={self.root}: another runner (pid {holder}) holds "
                f"{LOCK_NAME}; give each runner its own --work-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def unlock(self) -> None:
        """Release the lock (also released by the kernel at exit)."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def taskrunner_id(self) -> str:
        """The runner's stable id: generated once, then read back on every start."""
        path = self.root / RUNNER_ID_NAME
        try:
            existing = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            existing = ""
        if existing:
            return existing
        new_id = f"dp-runner-{uuid.uuid4()}"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(new_id + "\n", encoding="utf-8")
        tmp.replace(path)
        return new_id

    def attempt_paths(self, *parts: str) -> AttemptPaths:
        """The folder of one attempt, not yet made. ``parts`` must be safe
        (``activities.safe_path_part``); an empty or dotted part is refused."""
        for part in parts:
            if not part or part in {".", ".."} or "/" in part or "\0" in part:
                raise ValueError(f"unsafe attempt path part {part!r}")
        return AttemptPaths(self.root.joinpath(ATTEMPTS_NAME, *parts))

    def attempt(self, *parts: str) -> AttemptPaths:
        """Create and return the folder of one attempt (see ``attempt_paths``)."""
        return self.make_attempt(self.attempt_paths(*parts))

    def make_attempt(self, paths: AttemptPaths) -> AttemptPaths:
        """Create the folder ``paths`` names (and its ``work/``); returns it."""
        paths.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return paths

    def prune_attempts(
        self,
        keep_days: float,
        now: float | None = None,
        *,
        keep: Collection[Path] = (),
    ) -> int:
        """Remove attempt folders untouched for more than ``keep_days``, except those
        in ``keep`` (running attempts, and those the journal still holds); returns
        how many. Walks ``attempts/<pipeline>/<component>/<instance>/<attempt>``."""
        base = self.root / ATTEMPTS_NAME
        cutoff = (time.time() if now is None else now) - keep_days * _DAY_S
        kept = {Path(path) for path in keep}
        removed = 0
        for attempt_dir in base.glob("*/*/*/*"):
            if attempt_dir in kept:
                continue
            try:
                if attempt_dir.is_dir() and attempt_dir.stat().st_mtime < cutoff:
                    shutil.rmtree(attempt_dir)
                    removed += 1
            except OSError:
                continue  # raced with another prune or a running attempt: next time
        for depth in ("*/*/*", "*/*", "*"):
            for folder in base.glob(depth):
                with contextlib.suppress(OSError):  # only succeeds when empty
                    folder.rmdir()
        return removed
