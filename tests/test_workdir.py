"""The work dir on disk: its modes whatever the umask, symlinks never followed, a
folder of another user, pruning by ``lstat``, and handing folders to ``run_as``.

In-process, on real folders. The runner's own start (under ``umask 000``, as root
and as ``nobody``) is tested end to end in test_daemon_workdir.py.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.errors import ConfigError, SpawnError
from runner.runas import RunAs
from runner.workdir import LOCK_NAME, RUNNER_ID_NAME, WorkDir

NOBODY = RunAs(name="nobody", uid=65534, gid=65534, groups=(65534,), home="/")
OLD_S = 30 * 86400.0
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown)")


@pytest.fixture(autouse=True)
def umask_000() -> Iterator[None]:
    """Every test here runs under the loosest umask: modes must not depend on it."""
    old = os.umask(0)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def victim(tmp_path: Path, name: str = "victim") -> Path:
    path = tmp_path / name
    path.write_text("keep me\n")
    return path


def age(path: Path, seconds: float = OLD_S) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def test_a_new_work_dir_and_its_lock_are_private(tmp_path: Path) -> None:
    work = WorkDir(tmp_path / "a" / "work")
    opened = work.lock()
    assert (opened.shared, opened.mode_was) == (False, None)
    assert mode(work.root) == 0o700
    assert mode(work.root / LOCK_NAME) == 0o600
    assert (work.root / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    work.taskrunner_id()
    assert mode(work.root / RUNNER_ID_NAME) == 0o600
    assert mode(work.logs_dir()) == 0o700


def test_an_existing_open_work_dir_is_tightened_and_says_so(tmp_path: Path) -> None:
    root = tmp_path / "work"
    root.mkdir(mode=0o755)
    (root / LOCK_NAME).write_text("")
    (root / LOCK_NAME).chmod(0o644)
    opened = WorkDir(root).lock()
    assert opened.mode_was == 0o755
    assert mode(root) == 0o700
    assert mode(root / LOCK_NAME) == 0o600


def test_under_run_as_the_work_dir_is_passable_not_listable(tmp_path: Path) -> None:
    work = WorkDir(tmp_path / "work", run_as=NOBODY)
    work.lock()
    assert mode(work.root) == 0o711
    paths = work.attempt("p", "c", "i", "a")
    for folder in (work.root / "attempts", *paths.root.parents[:4], paths.root):
        assert mode(folder) == 0o711, folder
    assert mode(paths.workdir) == 0o700


def test_a_symlinked_work_dir_is_resolved_once(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    work = WorkDir(tmp_path / "link")
    assert work.lock().root == real
    assert work.root == real
    assert work.attempt("p", "c", "i", "a").root.is_relative_to(real)


@pytest.mark.parametrize("name", [LOCK_NAME, RUNNER_ID_NAME])
def test_a_symlinked_file_is_refused_and_its_target_untouched(
    tmp_path: Path, name: str
) -> None:
    target = victim(tmp_path)
    root = tmp_path / "work"
    root.mkdir()
    (root / name).symlink_to(target)
    work = WorkDir(root)
    if name == RUNNER_ID_NAME:
        work.lock()
    opens = work.taskrunner_id if name == RUNNER_ID_NAME else work.lock
    with pytest.raises(ConfigError, match="is a symlink"):
        opens()
    assert target.read_text() == "keep me\n"


def test_a_fifo_in_place_of_the_id_is_refused_without_blocking(
    tmp_path: Path,
) -> None:
    work = WorkDir(tmp_path)
    os.mkfifo(tmp_path / RUNNER_ID_NAME)
    with pytest.raises(ConfigError, match="not a regular file"):
        work.taskrunner_id()


def test_the_runner_id_is_kept(tmp_path: Path) -> None:
    work = WorkDir(tmp_path)
    first = work.taskrunner_id()
    assert first.startswith("dp-runner-")
    assert work.taskrunner_id() == first


def test_a_symlinked_logs_folder_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "logs").symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="through a symlink"):
        WorkDir(tmp_path).logs_dir()


@pytest.mark.parametrize("level", [0, 1, 2, 3, 4])
def test_a_symlink_on_the_way_to_an_attempt_is_never_followed(
    tmp_path: Path, level: int
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    work = WorkDir(tmp_path / "work")
    work.lock()
    parts = ("p", "c", "i", "a")
    paths = work.attempt_paths(*parts)
    link = work.root.joinpath("attempts", *parts[:level])
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside)
    with pytest.raises(SpawnError, match="through a symlink"):
        work.make_attempt(paths)
    assert list(outside.iterdir()) == []


def test_a_staging_folder_left_by_a_crash_is_removed(tmp_path: Path) -> None:
    work = WorkDir(tmp_path)
    paths = work.attempt("p", "c", "i", "a")
    (paths.staging / "input1").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data").write_text("keep me\n")
    (paths.staging / "input1" / "link").symlink_to(outside)
    work.make_attempt(paths)
    assert not paths.staging.exists()
    assert (outside / "data").read_text() == "keep me\n"


def test_pruning_removes_a_link_as_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    old_files = outside / "a" / "b" / "c"
    old_files.mkdir(parents=True)
    (old_files / "precious").write_text("keep me\n")
    for folder in (old_files, old_files.parent, old_files.parent.parent):
        age(folder)
    work = WorkDir(tmp_path / "work")
    work.lock()
    attempts = work.root / "attempts"
    attempts.mkdir()
    (attempts / "x").symlink_to(outside)
    (attempts / "p").mkdir()
    (attempts / "p" / "y").symlink_to(outside / "a")
    for link in (attempts / "x", attempts / "p" / "y"):
        age(link)
    assert work.prune_attempts(7) == 2
    assert (old_files / "precious").read_text() == "keep me\n"
    assert not (attempts / "x").is_symlink()
    assert not (attempts / "p").exists()


def test_pruning_keeps_recent_and_kept_attempts(tmp_path: Path) -> None:
    work = WorkDir(tmp_path)
    old = work.attempt("p", "c", "i", "old")
    kept = work.attempt("p", "c", "i", "kept")
    new = work.attempt("p", "c", "j", "new")
    (old.workdir / "sub").mkdir()
    (old.workdir / "sub" / "f").write_text("x")
    for paths in (old, kept):
        age(paths.root)
    assert work.prune_attempts(7, keep=[kept.root]) == 1
    assert not old.root.exists()
    assert kept.root.is_dir()
    assert new.root.is_dir()


def test_a_prune_never_removes_a_folder_an_attempt_is_being_made_in(
    tmp_path: Path,
) -> None:
    """A prune running beside new attempts (the runner prunes on its housekeeping
    thread while tasks start) removes the empty folders it finds, but never one a
    new attempt is on its way through: each new attempt is made, none refused."""
    work = WorkDir(tmp_path / "work")
    work.lock()
    done = threading.Event()
    rounds = [0]

    def prune() -> None:
        while not done.is_set():
            work.prune_attempts(7)
            rounds[0] += 1

    pruner = threading.Thread(target=prune, daemon=True)
    pruner.start()
    refused: list[str] = []
    try:
        for n in range(1000):
            try:
                made = work.attempt(f"df-{n}", "Act", "@Act_1", "@Act_1_Attempt=1")
            except SpawnError as exc:
                refused.append(str(exc))
            else:  # the tree stays small: the prune goes round often
                shutil.rmtree(made.root.parents[2], ignore_errors=True)
    finally:
        done.set()
        pruner.join(30)
    assert rounds[0] > 0
    assert refused == []


@needs_root
def test_a_work_dir_of_another_user_gets_a_folder_of_ours(tmp_path: Path) -> None:
    shared = tmp_path / "volume"
    shared.mkdir(mode=0o777)
    os.chown(shared, 65534, 65534)
    work = WorkDir(shared)
    opened = work.lock()
    assert opened.shared
    assert work.root == shared / "dp-runner-0"
    assert mode(work.root) == 0o700
    assert mode(shared) == 0o777  # not ours to change
    assert os.stat(work.root).st_uid == 0


@needs_root
def test_a_folder_of_ours_that_another_user_owns_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "volume"
    (shared / "dp-runner-0").mkdir(parents=True)
    for folder in (shared, shared / "dp-runner-0"):
        os.chown(folder, 65534, 65534)
    with pytest.raises(ConfigError, match="not to this runner"):
        WorkDir(shared).lock()


@needs_root
def test_hand_over_gives_work_and_staging_never_a_link_target(tmp_path: Path) -> None:
    target = victim(tmp_path)
    work = WorkDir(tmp_path / "work", run_as=NOBODY)
    work.lock()
    paths = work.attempt("p", "c", "i", "a")
    (paths.workdir / "command.sh").write_text("true\n")
    (paths.staging / "input1").mkdir(parents=True)
    (paths.staging / "input1" / "data").write_text("x")
    (paths.workdir / "link").symlink_to(target)
    work.hand_over(paths)
    for path in (
        paths.workdir,
        paths.workdir / "command.sh",
        paths.workdir / "link",
        paths.staging,
        paths.staging / "input1" / "data",
    ):
        assert os.lstat(path).st_uid == 65534, path
    assert os.stat(target).st_uid == 0
    assert os.stat(paths.root).st_uid == 0
    # a restart that runs the same attempt again takes work/ back first
    work.make_attempt(paths)
    assert os.stat(paths.workdir).st_uid == 0
    assert not paths.staging.exists()


def test_hand_over_without_run_as_changes_nothing(tmp_path: Path) -> None:
    work = WorkDir(tmp_path)
    paths = work.attempt("p", "c", "i", "a")
    work.hand_over(paths)
    assert os.stat(paths.workdir).st_uid == os.geteuid()


def test_deleting_the_lock_file_does_not_release_the_work_dir(tmp_path: Path) -> None:
    """The kernel holds the lock on the work dir itself: a second runner (its own
    open file description) is refused even once ``dp-runner.lock`` is gone."""
    first = WorkDir(tmp_path / "w")
    first.lock()
    (first.root / LOCK_NAME).unlink()
    with pytest.raises(ConfigError, match="another runner"):
        WorkDir(tmp_path / "w").lock()
    first.unlock()
    WorkDir(tmp_path / "w").lock()  # released with the descriptor
