"""The runner's work dir: where it is, who may enter it, its lock, its stable id,
and the per-attempt folders.

One runner per work dir: ``WorkDir.lock()`` takes an exclusive ``flock`` on a
descriptor of the work dir itself and holds it for the life of the process, so a
second runner on the same dir fails at once with ``ConfigError`` (exit 78) instead of
sharing attempt folders and a journal. The lock is the kernel's on the folder, not on
a file in it: deleting or replacing ``dp-runner.lock`` (which only tells the holder's
pid) cannot release it. The kernel drops the lock when the process dies, however it
dies, so there is no stale-lock cleanup to get wrong.

Attempt folders follow the Java runner's layout,
``attempts/<pipelineId>/<componentId>/<instanceId>/<attemptId>/`` with ``StdOutput`` and
``StdError`` in it. Every path part comes from the service and is passed through
``safe_path_part`` by the caller, so nothing escapes the folder. Old folders are pruned
after ``keep_attempts`` days.

Must not: log (``lock`` returns what it changed; the daemon says so), or run a task.

Why it is safe against what a task plants in it (design.md §3):

- The configured path may itself be a symlink: ``lock`` resolves it once. Inside,
  nothing is opened through a symlink: the files are opened with ``O_NOFOLLOW`` (here
  the lock and ``taskrunner-id``; the logs, the journal and the attempt files where
  they are written), and the folders of an attempt are made and entered one level at
  a time, each relative to its parent's descriptor, with ``O_NOFOLLOW``. A symlink
  on the way is refused, never followed.
- Modes never depend on the umask: ``fchmod`` sets folders to 0700 and files to 0600.
  Under ``run_as``, the work dir, ``attempts`` and each folder of an attempt are 0711,
  so that the task's user can pass through them to its own ``work/`` but list
  nothing. An existing work dir of ours with another mode is set right, and ``lock``
  reports it.
- A work dir that belongs to another user (a container volume mounted root-owned
  0777) is not ours to tighten: the runner uses ``dp-runner-<uid>`` in it, a folder
  of its own, and fails only when it cannot make one.
- Pruning (``prune.py``, split by concept) walks through descriptors with ``lstat``
  and removes with ``shutil.rmtree(dir_fd=...)``: a link is removed as a link,
  never what it names. It removes the folders it leaves empty only under the
  lock ``make_attempt`` holds while it walks, so a pipeline's folder just made
  for a new attempt is never removed before the attempt's own folder is in it.
- Under ``run_as`` the attempt's ``work/`` and ``staging/`` stay the runner's while
  the runner writes into them (the script, the staged files), and go to the user
  only when the process is about to start (``hand_over``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import threading
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from runner import nofollow, prune
from runner.attempt import AttemptPaths
from runner.errors import ConfigError, SpawnError, refusal
from runner.logs import LOG_DIR_NAME
from runner.nofollow import DIR_FLAGS, PASSABLE_DIR, PRIVATE_DIR
from runner.runas import RunAs, chown_tree

LOCK_NAME = "dp-runner.lock"
RUNNER_ID_NAME = "taskrunner-id"
ATTEMPTS_NAME = "attempts"


@dataclass(frozen=True, slots=True)
class Opened:
    """What ``lock`` found and changed. ``root`` is the folder in use: the resolved
    ``configured`` path, or ``dp-runner-<uid>`` in it when ``shared`` (the configured
    folder belongs to another user). ``mode_was``: the mode an existing ``root``
    had, when it had to be changed."""

    configured: Path
    root: Path
    shared: bool
    mode_was: int | None


@dataclass(slots=True)
class WorkDir:
    """A work dir on disk. Not thread-safe to lock; the rest is safe to share.
    ``run_as``: the user tasks run as, if any (it sets the folders' modes)."""

    root: Path
    run_as: RunAs | None = None
    _lock_fd: int | None = None
    #: Held while an attempt's folders are made, and while a prune removes an
    #: emptied folder: the prune never removes a level an attempt is entering.
    _tree: threading.Lock = field(default_factory=threading.Lock)

    @property
    def dir_mode(self) -> int:
        """The mode of the work dir, ``attempts`` and an attempt's folders."""
        return PASSABLE_DIR if self.run_as is not None else PRIVATE_DIR

    def lock(self) -> Opened:
        """Resolve the folder, make it (or ``dp-runner-<uid>`` in it) ours with
        ``dir_mode``, and take the runner lock; ``root`` becomes the folder in use.

        Raises ``ConfigError`` when the folder cannot be made or used, the lock is
        a symlink, or another runner holds it; ``HostFaultError`` on a full disk,
        an I/O error or no memory (``errors.TRANSIENT_ERRNOS``)."""
        configured = self.root
        resolved = Path(os.path.realpath(configured))
        try:
            created = _make_folder(resolved)
            fd = os.open(resolved, DIR_FLAGS)
        except OSError as exc:
            raise refusal(
                f"work_dir={configured}: cannot use it: {exc.strerror}", exc
            ) from exc
        fd, root = _own_folder(fd, resolved)
        try:
            mode_was = nofollow.set_mode(fd, self.dir_mode)
            self._lock_fd = _take_lock(fd, root)
        except OSError as exc:
            raise refusal(f"work_dir={root}: cannot use it: {exc}", exc) from exc
        finally:
            os.close(fd)
        self.root = root
        shared = root != resolved
        return Opened(configured, root, shared, None if created else mode_was)

    def unlock(self) -> None:
        """Release the lock (also released by the kernel at exit)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def taskrunner_id(self) -> str:
        """The runner's stable id: generated once, then read back on every start.
        Raises ``ConfigError`` when ``taskrunner-id`` is a symlink or unusable."""
        path = self.root / RUNNER_ID_NAME
        try:
            with nofollow.folder(self.root) as dir_fd:
                try:
                    fd = nofollow.open_private(dir_fd, RUNNER_ID_NAME, os.O_RDONLY)
                except FileNotFoundError:
                    return _new_runner_id(dir_fd)
                with os.fdopen(fd, "rb") as file:
                    existing = file.read(4096).decode("utf-8", "replace").strip()
                return existing or _new_runner_id(dir_fd)
        except OSError as exc:
            raise refusal(nofollow.refusal(path, exc), exc) from exc

    def logs_dir(self) -> Path:
        """``logs/`` (0700), made if absent; a folder, never a symlink. Raises
        ``ConfigError``."""
        path = self.root / LOG_DIR_NAME
        try:
            with (
                nofollow.folder(self.root) as dir_fd,
                nofollow.entered(dir_fd, LOG_DIR_NAME) as fd,
            ):
                nofollow.set_mode(fd, PRIVATE_DIR)
        except OSError as exc:
            raise refusal(nofollow.refusal(path, exc), exc) from exc
        return path

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
        """Create the folder ``paths`` names and its ``work/``, one level at a time
        and never through a symlink, each the runner's with ``dir_mode`` (``work/``
        0700); a ``staging/`` left by a crash is removed. Returns ``paths``.
        Raises ``SpawnError`` (a symlink or a file on the way, a full disk)."""
        try:
            with (
                self._tree,
                nofollow.folder(self.root) as root_fd,
                self._attempt_folder(root_fd, paths) as fd,
            ):
                nofollow.remove_entry(fd, paths.staging.name)
                with nofollow.entered(fd, paths.workdir.name) as work_fd:
                    _reclaim(work_fd)
        except OSError as exc:
            raise SpawnError(nofollow.refusal(paths.root, exc)) from exc
        return paths

    def hand_over(self, paths: AttemptPaths) -> None:
        """Under ``run_as``, give the attempt's ``work/`` and ``staging/`` and all in
        them to its user (right before the process starts); else nothing. Raises
        ``SpawnError``."""
        if self.run_as is None:
            return
        for top in (paths.workdir, paths.staging):
            try:
                chown_tree(top, self.run_as.uid, self.run_as.gid)
            except OSError as exc:
                raise SpawnError(
                    f"cannot give {top} to run_as user {self.run_as.name}: {exc}"
                ) from exc

    def prune_attempts(
        self,
        keep_days: float,
        now: float | None = None,
        *,
        keep: Collection[Path] = (),
    ) -> int:
        """Remove attempt folders untouched for more than ``keep_days``, except those
        in ``keep`` (running attempts, and those the journal still holds), and
        anything else as old that is not a folder (a link is removed as a link);
        returns how many. Walks ``attempts/<pipeline>/<component>/<instance>/
        <attempt>`` with ``lstat``, removing the folders it leaves empty."""
        base = self.root / ATTEMPTS_NAME
        return prune.prune_attempts(base, keep_days, now, keep, self._tree)

    @contextlib.contextmanager
    def _attempt_folder(self, root_fd: int, paths: AttemptPaths) -> Iterator[int]:
        """Enter ``attempts/.../<attempt>`` from ``root_fd``, making each level."""
        fd = os.dup(root_fd)
        try:
            for name in paths.root.relative_to(self.root).parts:
                parent, fd = fd, -1
                try:
                    fd = nofollow.enter(parent, name)
                finally:
                    os.close(parent)
                nofollow.set_mode(fd, self.dir_mode)
            yield fd
        finally:
            if fd >= 0:
                os.close(fd)


# ------------------------------------------------------------------ module helpers


def _make_folder(path: Path) -> bool:
    """Make ``path`` (0700) and its parents; False when it was there already."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, PRIVATE_DIR)
    except FileExistsError:
        return False
    return True


def _own_folder(fd: int, path: Path) -> tuple[int, Path]:
    """``fd``/``path`` when the folder is ours, else ``dp-runner-<uid>`` in it (made
    0700 if absent, and ours). Closes ``fd`` when it returns another. Raises
    ``ConfigError``."""
    euid, owner = os.geteuid(), os.fstat(fd).st_uid
    if owner == euid:
        return fd, path
    name = f"dp-runner-{euid}"
    try:
        sub = nofollow.enter(fd, name)
    except OSError as exc:
        raise ConfigError(
            f"work_dir={path} belongs to uid {owner}, and this runner (uid {euid}) "
            f"cannot make its own folder {name} in it: {exc.strerror}"
        ) from exc
    finally:
        os.close(fd)
    sub_owner = os.fstat(sub).st_uid
    if sub_owner != euid:
        os.close(sub)
        raise ConfigError(
            f"work_dir={path / name} belongs to uid {sub_owner}, not to this runner "
            f"(uid {euid}); remove it or choose another work_dir"
        )
    return sub, path / name


def _take_lock(dir_fd: int, root: Path) -> int:
    """The work dir locked (a descriptor of the folder itself, which is returned
    and must stay open), and our pid in the lock file. Raises ``ConfigError``."""
    lock_fd = os.dup(dir_fd)  # its own descriptor: the caller closes ``dir_fd``
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        raise ConfigError(
            f"work_dir={root}: another runner (pid {_holder(dir_fd)}) holds it;"
            " give each runner its own --work-dir"
        ) from None
    try:
        fd = nofollow.open_private(dir_fd, LOCK_NAME, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        os.close(lock_fd)
        raise refusal(nofollow.refusal(root / LOCK_NAME, exc), exc) from exc
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    finally:
        os.close(fd)
    return lock_fd


def _holder(dir_fd: int) -> str:
    """The pid the lock file names, for the refusal's message."""
    try:
        fd = nofollow.open_private(dir_fd, LOCK_NAME, os.O_RDONLY)
    except OSError:
        return "unknown"
    try:
        return os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
    finally:
        os.close(fd)


def _new_runner_id(dir_fd: int) -> str:
    new_id = f"dp-runner-{uuid.uuid4()}"
    tmp = RUNNER_ID_NAME + ".tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=dir_fd)  # a crash's leftover (or a link, as a link)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    with os.fdopen(
        nofollow.open_private(dir_fd, tmp, flags), "w", encoding="utf-8"
    ) as file:
        file.write(new_id + "\n")
    os.replace(tmp, RUNNER_ID_NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    return new_id


def _reclaim(fd: int) -> None:
    """``work/``: the runner's, 0700 (a ``run_as`` user had it before a crash)."""
    found = os.fstat(fd)
    if found.st_uid != os.geteuid():
        os.fchown(fd, os.geteuid(), os.getegid())
    if stat.S_IMODE(found.st_mode) != PRIVATE_DIR:
        os.fchmod(fd, PRIVATE_DIR)
