"""The install path and the unit: ``systemd/install.sh --root``, ``systemd-analyze
verify`` and ``security`` on the unit, and the unit's ExecStart run as an unprivileged
user with ``STATE_DIRECTORY`` set, which becomes its work dir."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.localservice import LocalService
from tests.support.runners import REPO
from tests.support.units import unit_with_exec_start, verified_exposure
from tests.support.waiting import wait_for

UNIT = REPO / "systemd" / "dp-runner.service"
EXPOSURE_MAX = 4.5
NOBODY = 65534


def exec_start(unit: Path) -> list[str]:
    (line,) = [x for x in unit.read_text().splitlines() if x.startswith("ExecStart=")]
    return line.removeprefix("ExecStart=").split()


def test_the_unit_verifies_and_its_exposure_is_low(tmp_path: Path) -> None:
    assert verified_exposure(unit_with_exec_start(tmp_path)) <= EXPOSURE_MAX


def test_the_run_as_drop_in_keeps_the_exposure_low(tmp_path: Path) -> None:
    """The unit with systemd/run-as.conf (root, a few capabilities) still scores
    at most 4.5; later assignments in the drop-in override the unit's."""
    base = unit_with_exec_start(tmp_path).read_text().split("[Install]")[0]
    drop_in = (REPO / "systemd" / "run-as.conf").read_text()
    merged = tmp_path / "merged" / "dp-runner.service"
    merged.parent.mkdir()
    merged.write_text(base + drop_in)
    assert verified_exposure(merged) <= EXPOSURE_MAX
    assert "User=root" in drop_in


@pytest.mark.timeout(600)  # the hang guard: pip builds a venv, which load stretches
def test_install_into_a_root_folder_builds_a_working_venv_and_keeps_the_config(
    tmp_path: Path,
) -> None:
    """With the documented override, PYTHON, which install.sh uses as given."""
    root = tmp_path / "root"
    kept = root / "etc" / "dp-runner" / "config.toml"
    kept.parent.mkdir(parents=True)
    kept.write_text('worker_groups = ["mine"]\n')
    done = subprocess.run(
        [str(REPO / "systemd" / "install.sh"), "--root", str(root)],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "PYTHON": sys.executable},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # The scripts name /opt/dp-runner.venvs/... (tests/test_install_upgrade.py runs
    # them there); the venv's python runs from anywhere.
    python = root / "opt" / "dp-runner" / "bin" / "python"
    version = subprocess.run(
        [str(python), "-m", "runner", "--version"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "version 0.1" in version.stdout
    assert (
        f"executable = {Path(sys.executable).resolve()}"
        in (python.parent.parent / "pyvenv.cfg").read_text()
    )
    link = root / "usr" / "local" / "bin" / "dp-runner"
    assert os.readlink(link) == "/opt/dp-runner/bin/dp-runner"
    assert kept.read_text() == 'worker_groups = ["mine"]\n'
    installed = root / "etc" / "systemd" / "system" / "dp-runner.service"
    assert installed.read_text() == UNIT.read_text()
    environment = root / "etc" / "dp-runner" / "environment"
    assert environment.stat().st_mode & 0o777 == 0o600
    lines = environment.read_text().splitlines()
    assert "#HTTPS_PROXY=http://proxy.example.internal:3128" in lines
    assert all(not line or line.startswith("#") for line in lines)


@pytest.fixture
def nobodys_dir() -> Iterator[Path]:
    """A folder under /tmp that the unprivileged user owns (mkdtemp, chowned)."""
    path = Path(tempfile.mkdtemp(dir="/tmp"))
    os.chown(path, NOBODY, NOBODY)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_exec_start_as_an_unprivileged_user_works_in_its_state_directory(
    tmp_path: Path, service: LocalService, nobodys_dir: Path
) -> None:
    state = nobodys_dir / "state"
    state.mkdir(mode=0o700)
    os.chown(state, NOBODY, NOBODY)
    config = nobodys_dir / "config.toml"
    config.write_text(
        f'worker_groups = ["wg"]\nendpoint_url = "{service.endpoint_url}"\n'
        'region = "us-east-1"\nlog_format = "json"\n'
    )
    command = [
        arg.replace("/etc/dp-runner/config.toml", str(config))
        for arg in exec_start(unit_with_exec_start(tmp_path))
    ]
    env = {**os.environ, "STATE_DIRECTORY": str(state), "HOME": str(nobodys_dir)}
    log = tmp_path / "runner.log"
    with log.open("wb") as out:
        runner = subprocess.Popen(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             *command],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
        )  # fmt: skip
    try:

        def started() -> bool:
            lines = [json.loads(x) for x in log.read_text().splitlines() if "{" in x]
            return any(line.get("event") == "worker_started" for line in lines)

        wait_for(started, 30, f"the runner as nobody:\n{log.read_text()[-2000:]}")
        assert (state / "journal.db").exists()
        assert (state / "dp-runner.lock").stat().st_uid == NOBODY
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(20) == 0
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(10)


def test_the_unit_reads_the_environment_file_and_lets_tasks_renice() -> None:
    """``EnvironmentFile=-`` (optional) names the file install.sh installs; no
    SystemCallFilter line denies @resources (nice, ionice, taskset, chrt), which
    ``systemd-analyze syscall-filter`` shows holds setpriority and sched_setaffinity."""
    lines = UNIT.read_text().splitlines()
    assert "EnvironmentFile=-/etc/dp-runner/environment" in lines
    filters = [x for x in lines if x.startswith("SystemCallFilter=")]
    assert filters
    assert not any("~" in x and "@resources" in x for x in filters)
    listed = subprocess.run(
        ["systemd-analyze", "syscall-filter", "@resources"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "setpriority" in listed.stdout
    assert "sched_setaffinity" in listed.stdout
    denied = [x.split("=~", 1)[1].split() for x in filters if "=~" in x]
    assert all("@resources" not in group for group in denied)
