"""Running things as another user in tests: ``nobody`` (uid 65534) through
``setpriv``, a Python interpreter that ``nobody`` can run, and folders given to a
user.

Load it from the root conftest with ``pytest_plugins = ["tests.support.users"]``.

The suite runs as root in CI. A runner or a task started as ``nobody`` needs an
interpreter and this checkout that ``nobody`` can read, and the checkout (or the
interpreter, pyenv's) may sit under a 0700 home such as ``/root``. The
``nobody_python`` fixture (session) first asks ``nobody`` to import the runner
with this interpreter, started the way the runner starts a task (``Popen`` with
``user=``: ``setpriv`` would keep root's capabilities until its exec, and so
reach an interpreter that a task cannot); when it cannot, it builds a copy once
per session under
``/tmp``: a venv (``--without-pip``) on an interpreter of the same version that
``nobody`` can run, holding the runner's runtime dependencies (hard links when
``/tmp`` is on the same file system, else copies: about 40 MB) and the
``runner`` package. Set ``DPR_TEST_COPY_PYTHON=1`` to build the copy even when it
is not needed (to test this fixture). Folders for such processes come from
``mkdtemp(dir="/tmp")``: pytest's own temporary folders are 0700.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from runner.localservice import LocalService
from tests.support.runners import RunnerProcess, runner_command

NOBODY = 65534
REPO = Path(__file__).resolve().parents[2]
_IMPORTS = "import runner, boto3, structlog, psutil, pydantic_core, click, tenacity"


def as_user(uid: int, argv: list[str], *, umask: str | None = None) -> list[str]:
    """``argv`` run as ``uid`` (and gid ``uid``, no supplementary group) through
    ``setpriv``, or as it is for uid 0; with ``umask`` set first when given."""
    if uid != 0:
        argv = [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            *argv,
        ]
    if umask is not None:
        argv = ["sh", "-c", f'umask {umask}; exec "$@"', "sh", *argv]
    return argv


def run_as(uid: int, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as ``uid`` (gid ``uid``, no other group) to its end, switched
    by ``Popen`` as the runner switches a task, so that the exec itself is the
    user's: ``setpriv`` keeps root's capabilities until its exec, so a program
    under a 0700 folder starts through it, but not as a task. Output as text."""
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
        user=uid,
        group=uid,
        extra_groups=[],
    )


def folder_for(uid: int, tmp_folders: list[Path]) -> Path:
    """A fresh folder under /tmp (``mkdtemp``, 0700), given to ``uid``."""
    folder = Path(tempfile.mkdtemp(dir="/tmp", prefix="dp-runner-test-"))
    tmp_folders.append(folder)
    os.chown(folder, uid, uid)
    return folder


@pytest.fixture
def tmp_folders() -> Iterator[list[Path]]:
    """Folders made by ``folder_for`` in this test, removed at its end (kept for
    a look when ``DPR_KEEP`` is set)."""
    made: list[Path] = []
    yield made
    for folder in made:
        if not os.environ.get("DPR_KEEP"):
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def nobody_python() -> Iterator[str]:
    """An interpreter that ``nobody`` can run and that imports this runner."""
    if os.geteuid() != 0:
        pytest.skip("needs root (to act as another user)")
    if not os.environ.get("DPR_TEST_COPY_PYTHON") and _imports_runner(sys.executable):
        yield sys.executable
        return
    root = Path(tempfile.mkdtemp(dir="/tmp", prefix="dp-runner-python-"))
    try:
        yield str(_build_copy(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def spawn_runner_as(
    service: LocalService,
    tmp_path: Path,
    tmp_folders: list[Path],
    nobody_python: str,
) -> Iterator[Callable[..., RunnerProcess]]:
    """``dp-runner run`` as ``uid`` (root, or through ``setpriv``) under
    ``umask 000``, on ``work_dir`` (default: a fresh folder given to ``uid``);
    killed and reaped at teardown."""
    started: list[RunnerProcess] = []

    def spawn(uid: int, *args: str, work_dir: Path | None = None) -> RunnerProcess:
        folder = folder_for(uid, tmp_folders) if work_dir is None else work_dir
        log_path = tmp_path / f"runner-as-{uid}-{len(started)}.log"
        command = runner_command(
            service.endpoint_url, folder, "--worker-group", "wg", *args
        )
        command[0] = sys.executable if uid == 0 else nobody_python
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                as_user(uid, command, umask="000"),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd="/",
            )
        runner = RunnerProcess(process, log_path, folder)
        started.append(runner)
        return runner

    yield spawn
    for runner in started:
        if runner.process.poll() is None:
            runner.process.kill()
        runner.process.wait(10)


def _imports_runner(python: str) -> bool:
    return _answer(python, f"{_IMPORTS}; print(runner.__file__)") is not None


def _answer(python: str, code: str) -> str | None:
    """What ``python -c code`` prints as nobody; None when it cannot run."""
    try:
        probe = run_as(NOBODY, [python, "-c", code])
    except OSError:  # the exec itself was refused
        return None
    return probe.stdout.strip() if probe.returncode == 0 else None


def _build_copy(root: Path) -> Path:
    old_umask = os.umask(0o022)
    try:
        root.chmod(0o755)
        venv = root / "venv"
        subprocess.run(
            [_interpreter(), "-m", "venv", "--without-pip", str(venv)],
            check=True,
            capture_output=True,
        )
        (site,) = venv.glob("lib/python3*/site-packages")
        for dist in _runtime_distributions():
            _copy_files(dist, site)
        shutil.copytree(
            REPO / "runner",
            site / "runner",
            ignore=shutil.ignore_patterns("__pycache__"),
            copy_function=_link_or_copy,
        )
    finally:
        os.umask(old_umask)
    python = venv / "bin" / "python"
    if not _imports_runner(str(python)):
        pytest.fail(f"nobody cannot import the runner with the copy in {root}")
    return python


def _interpreter() -> str:
    """An interpreter of this version that nobody can run."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [
        os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
        shutil.which(f"python{version}") or "",
        f"/usr/bin/python{version}",
        f"/usr/local/bin/python{version}",
    ]
    check = "import sys, venv; print('%d.%d' % sys.version_info[:2])"
    for candidate in filter(None, candidates):
        if _answer(candidate, check) == version:
            return candidate
    pytest.fail(f"no Python {version} that nobody can run: tried {candidates}")


def _runtime_distributions() -> list[importlib.metadata.Distribution]:
    """The distributions dp-runner needs at run time (no extras), not itself."""
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = ["dp-runner"]
    while pending:
        name = re.sub(r"[-_.]+", "-", pending.pop()).lower()
        if name in found:
            continue
        dist = found[name] = importlib.metadata.distribution(name)
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return [dist for name, dist in found.items() if name != "dp-runner"]


def _copy_files(dist: importlib.metadata.Distribution, site: Path) -> None:
    for entry in dist.files or []:
        if ".." in entry.parts or "__pycache__" in entry.parts:
            continue  # scripts outside site-packages, and byte code
        source = Path(str(dist.locate_file(entry)))
        target = site / entry
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(source, target)


def _link_or_copy(source: str | Path, target: str | Path) -> None:
    with contextlib.suppress(FileExistsError):
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
