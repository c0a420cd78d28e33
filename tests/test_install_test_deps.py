"""scripts/install-test-deps.sh, which ``make test`` and ``.ci/run`` run first: the
exact install command on each distribution, nothing installed when the servers are
there, Debian's services kept from starting, and the one line for a user who is not
root.

The script runs for real, with stub ``apt-get`` and ``dnf`` first on PATH that write
down how they were called, a fake os-release (``OS_RELEASE``) and a server search
path (``TEST_SERVER_PATH``) with nothing on it, so that both servers count as
missing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "install-test-deps.sh"
NOBODY = 65534

#: A stub package manager: one line per call, and whether Debian's policy hook was
#: in place (and forbade starting services) while it ran.
STUB = """#!/bin/sh
hook=absent
if [ -x "$POLICY_RC_D" ]; then "$POLICY_RC_D" mariadb start; hook="exit $?"; fi
echo "$(basename "$0") $* (policy-rc.d: $hook)" >> "$RECORD"
"""

OS_RELEASES = {
    "debian": 'ID=debian\nVERSION_ID="12"\n',
    "ubuntu": 'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n',
    "amzn": 'ID="amzn"\nID_LIKE="fedora"\nVERSION_ID="2023"\n',
    "rhel": 'ID="rhel"\nID_LIKE="fedora"\nVERSION_ID="9.4"\n',
}
APT = [
    "apt-get update -qq (policy-rc.d: exit 101)",
    "apt-get install -y --no-install-recommends postgresql mariadb-server"
    " (policy-rc.d: exit 101)",
]
EXPECTED = {
    "debian": APT,
    "ubuntu": APT,
    "amzn": [
        "dnf install -y postgresql15-server mariadb105-server (policy-rc.d: absent)"
    ],
    "rhel": ["dnf install -y postgresql-server mariadb-server (policy-rc.d: absent)"],
}


def run_script(
    tmp_path: Path, distribution: str, servers: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """The script on ``distribution`` with the stubs, and the calls they recorded."""
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    for name in ("apt-get", "dnf"):
        (stubs / name).write_text(STUB)
        (stubs / name).chmod(0o755)
    os_release = tmp_path / "os-release"
    os_release.write_text(OS_RELEASES.get(distribution, f"ID={distribution}\n"))
    record = tmp_path / "record"
    record.write_text("")
    env = {
        **os.environ,
        "PATH": f"{stubs}:{os.environ['PATH']}",
        "OS_RELEASE": str(os_release),
        "TEST_SERVER_PATH": str(servers) if servers else "",
        "POLICY_RC_D": str(tmp_path / "policy-rc.d"),
        "RECORD": str(record),
    }
    done = subprocess.run(
        ["bash", str(SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done, record.read_text().splitlines()


@pytest.mark.parametrize("distribution", sorted(EXPECTED))
def test_each_distribution_gets_its_exact_install_command(
    tmp_path: Path, distribution: str
) -> None:
    done, calls = run_script(tmp_path, distribution)
    assert done.returncode == 0, done.stderr
    assert calls == EXPECTED[distribution]
    assert not (tmp_path / "policy-rc.d").exists()  # the hook it made is gone


def test_only_the_missing_server_is_installed(tmp_path: Path) -> None:
    servers = tmp_path / "servers"
    servers.mkdir()
    for name in ("postgres", "initdb"):
        (servers / name).write_text("#!/bin/sh\n")
        (servers / name).chmod(0o755)
    done, calls = run_script(tmp_path, "amzn", servers)
    assert done.returncode == 0, done.stderr
    assert calls == ["dnf install -y mariadb105-server (policy-rc.d: absent)"]


def test_nothing_is_installed_when_both_servers_are_there(tmp_path: Path) -> None:
    servers = tmp_path / "servers"
    servers.mkdir()
    for name in ("postgres", "initdb", "mariadbd", "mariadb-install-db"):
        (servers / name).write_text("#!/bin/sh\n")
        (servers / name).chmod(0o755)
    done, calls = run_script(tmp_path, "debian", servers)
    assert (done.returncode, calls, done.stdout) == (0, [], "")


def test_a_hook_already_in_place_is_left_alone(tmp_path: Path) -> None:
    hook = tmp_path / "policy-rc.d"
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(0o755)
    done, calls = run_script(tmp_path, "debian")
    assert done.returncode == 0, done.stderr
    assert calls[-1].endswith("(policy-rc.d: exit 0)")
    assert hook.read_text() == "#!/bin/sh\nexit 0\n"


def test_an_unknown_distribution_names_what_to_install(tmp_path: Path) -> None:
    done, calls = run_script(tmp_path, "gentoo")
    assert done.returncode == 1
    assert calls == []
    assert "PostgreSQL and MariaDB" in done.stderr


def test_a_user_who_is_not_root_is_told_in_one_line_to_use_sudo() -> None:
    argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    done = subprocess.run(
        [*argv, "bash", str(SCRIPT)],
        env={**os.environ, "TEST_SERVER_PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
    )
    assert (done.returncode, done.stdout) == (1, "")
    (line,) = done.stderr.splitlines()
    assert "sudo make test" in line
