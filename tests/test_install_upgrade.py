"""``systemd/install.sh`` as an operator meets it: finding a Python on a host whose
``python3`` is too old, an upgrade that cannot download (the running install stays),
an offline install from ``make wheelhouse``, a rollback, and a ``--root`` tree that
works once copied to its prefix.

The staged tree's scripts name ``/opt/dp-runner.venvs/...``: they run only where the
tree is placed. Each check runs them in a new mount namespace whose ``/opt`` is a
tmpfs holding a copy of the staged ``opt/`` (``at_opt``), as a package would place it;
the host's ``/opt`` is never touched. "No index" cuts every source pip has here:
``PIP_CONFIG_FILE=/dev/null`` drops the machine's pip.conf (its extra indexes and
find-links), the ``PIP_*`` variables are removed, and the index is a local port that
is bound and never listens (refused at once, and held so no one else takes it).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.runners import REPO

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root"),
]

INSTALL = REPO / "systemd" / "install.sh"
PYTHON311 = Path(sys.executable).resolve()
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
AL2023 = 'NAME="Amazon Linux"\nVERSION="2023"\nID="amzn"\nID_LIKE="fedora"\n'


def stand_in_python39(folder: Path) -> None:
    """A ``python3`` that is 3.9, as Amazon Linux 2023's is for its whole life."""
    python3 = folder / "python3"
    python3.write_text("#!/bin/sh\necho 'Python 3.9.16'\n")
    python3.chmod(0o755)


def install(
    root: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(INSTALL), "--root", str(root), "--prefix", "/opt/dp-runner", *args],
        capture_output=True, text=True, timeout=800, check=False, env=env,
    )  # fmt: skip


def at_opt(root: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """``command`` in a mount namespace where /opt holds a copy of ``root/opt``."""
    script = 'mount -t tmpfs dp-runner-test /opt && cp -a "$0/opt/." /opt/ && exec "$@"'
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
         str(root), *command],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def current(root: Path) -> str:
    return os.readlink(root / "opt" / "dp-runner")


def runs_at_its_prefix(root: Path) -> str:
    done = at_opt(root, "/opt/dp-runner/bin/dp-runner", "--version")
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def host_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH whose first ``python3`` is 3.9, with a ``python3.11`` present."""
    folder = tmp_path_factory.mktemp("bin")
    stand_in_python39(folder)
    (folder / "python3.11").symlink_to(PYTHON311)
    return f"{folder}:{SYSTEM_PATH}"


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make wheelhouse``, built once: the module's installs take their wheels from
    it, so that pip builds this project and resolves the lock once, not per install
    (tests/test_install.py installs from the index)."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    made = subprocess.run(
        ["make", "-C", str(REPO), "wheelhouse", f"WHEELHOUSE={folder / 'wheels'}",
         f"WHEELVENV={folder / 'venv'}", f"PYTHON={PYTHON311}"],
        capture_output=True, text=True, timeout=800, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    return folder / "wheels"


@pytest.fixture(scope="module")
def installed(
    tmp_path_factory: pytest.TempPathFactory, host_path: str, wheelhouse: Path
) -> Path:
    """``install.sh --root R --prefix /opt/dp-runner --wheels W``, found Python."""
    root = tmp_path_factory.mktemp("root")
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"} | {"PATH": host_path}
    done = install(root, env, "--wheels", str(wheelhouse))
    assert done.returncode == 0, done.stdout + done.stderr
    return root


@pytest.fixture
def no_index() -> Iterator[dict[str, str]]:
    """An environment in which pip has no source at all."""
    with socket.socket() as sock:  # bound, never listening: refused, and kept ours
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        env |= {
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_INDEX_URL": f"http://127.0.0.1:{port}/simple/",
            "PIP_RETRIES": "0",
            "PIP_TIMEOUT": "5",
            "PATH": f"{PYTHON311.parent}:{SYSTEM_PATH}",
        }
        listed = subprocess.run(
            [str(PYTHON311), "-m", "pip", "config", "list"],
            capture_output=True, text=True, env=env, check=True, timeout=60,
        )  # fmt: skip
        assert "find-links" not in listed.stdout, listed.stdout
        assert "extra-index-url" not in listed.stdout, listed.stdout
        yield env


def test_a_python3_that_is_3_9_is_passed_over_for_python3_11(installed: Path) -> None:
    venv = installed / "opt" / "dp-runner.venvs" / current(installed).split("/")[-1]
    config = (venv / "pyvenv.cfg").read_text()

    assert f"executable = {PYTHON311}\n" in config
    assert "version = 3.11" in config


def test_the_staged_tree_runs_once_copied_to_its_prefix(installed: Path) -> None:
    assert "dp-runner" in runs_at_its_prefix(installed)
    bin_dir = installed / "opt" / "dp-runner" / "bin"
    for script in bin_dir.iterdir():
        if script.is_file() and not script.is_symlink():
            assert str(installed) not in script.read_text(errors="replace"), script
    assert str(installed) not in (bin_dir.parent / "pyvenv.cfg").read_text()
    link = installed / "usr" / "local" / "bin" / "dp-runner"
    assert os.readlink(link) == "/opt/dp-runner/bin/dp-runner"


def test_without_a_recent_python_it_names_the_package(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    stand_in_python39(tools)
    for tool in ("dirname", "basename", "mkdir"):
        (tools / tool).symlink_to(f"/usr/bin/{tool}")
    env = {"PATH": str(tools), "HOME": str(tmp_path)}

    done = install(tmp_path / "root", env)

    assert done.returncode != 0
    assert "is 3.9" in done.stderr
    assert "sudo apt-get install python3.11 python3.11-venv" in done.stderr
    assert "sudo PYTHON=/path/to/python3.11 systemd/install.sh" in done.stderr
    assert not (tmp_path / "root" / "opt").exists()
    os_release = tmp_path / "os-release"
    os_release.write_text(AL2023)
    amazon = subprocess.run(
        ["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
         '/usr/bin/mount --bind "$0" /etc/os-release && exec "$@"', str(os_release),
         str(INSTALL), "--root", str(tmp_path / "root")],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert amazon.returncode != 0
    assert "Install it with:  sudo dnf install python3.11\n" in amazon.stderr


def test_an_upgrade_that_cannot_download_leaves_the_install_running(
    installed: Path, no_index: dict[str, str]
) -> None:
    before = current(installed)
    venvs = sorted((installed / "opt" / "dp-runner.venvs").iterdir())

    done = install(installed, no_index)

    assert done.returncode != 0, done.stdout + done.stderr
    assert current(installed) == before
    assert sorted((installed / "opt" / "dp-runner.venvs").iterdir()) == venvs
    assert "dp-runner" in runs_at_its_prefix(installed)


def test_the_wheelhouse_installs_with_no_index_and_rolls_back(
    installed: Path, no_index: dict[str, str], wheelhouse: Path
) -> None:
    wheels = {p.name.split("-")[0].lower() for p in wheelhouse.glob("*.whl")}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name = line.split("==")[0].lower().replace("-", "_").replace(".", "_")
            assert name in wheels, line
    assert "dp_runner" in wheels
    before = current(installed)

    done = install(installed, no_index, "--wheels", str(wheelhouse))

    assert done.returncode == 0, done.stdout + done.stderr
    assert current(installed) != before
    venvs = installed / "opt" / "dp-runner.venvs"
    assert os.readlink(venvs / "previous") == before.split("/")[-1]
    assert "dp-runner" in runs_at_its_prefix(installed)
    upgraded = current(installed)
    rolled = install(installed, no_index, "--rollback")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert current(installed) == before
    assert os.readlink(venvs / "previous") == upgraded.split("/")[-1]
    assert "dp-runner" in runs_at_its_prefix(installed)


def test_install_debris_stays_out_of_git() -> None:
    """What ``make package``, ``make wheelhouse`` and install.sh leave in the
    checkout is ignored, and ``.pipx/`` is no longer tracked: after ``.ci/run``,
    ``git status --porcelain`` is empty."""
    tracked = subprocess.run(
        ["git", "ls-files", ".pipx"], capture_output=True, text=True, cwd=REPO,
        check=True, timeout=60,
    )  # fmt: skip
    assert tracked.stdout == ""
    debris = [
        ".pipx/bin/dp-runner", "wheelhouse/x.whl", ".venv-wheelhouse/bin/python",
        "dist/x.whl", "build/lib/x.py", "dp_runner.egg-info/PKG-INFO",
    ]  # fmt: skip
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *debris], capture_output=True,
        text=True, cwd=REPO, check=False, timeout=60,
    )  # fmt: skip
    assert ignored.stdout.split() == debris
