"""``run_as``: resolving the user at start, the task's environment, and handing a
tree to a user without following a symlink."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from runner import cli, runas, supervisor
from runner.config import load_settings
from runner.errors import ConfigError
from runner.runas import CREDENTIAL_VARIABLES, RunAs

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
NOBODY = pwd.getpwnam("nobody")


def test_resolve_reads_ids_groups_and_home() -> None:
    user = runas.resolve("nobody", euid=0)
    assert (user.name, user.uid, user.gid) == ("nobody", 65534, NOBODY.pw_gid)
    assert NOBODY.pw_gid in user.groups
    assert user.home == NOBODY.pw_dir
    assert runas.resolve("65534", euid=0) == user


@pytest.mark.parametrize(
    ("name", "euid", "message"),
    [
        ("nobody", 1000, "only a runner started as root"),
        ("no-such-user-here", 0, "no such user"),
        ("999999", 0, "no such user"),
        ("root", 0, "unprivileged"),
        ("0", 0, "unprivileged"),
    ],
)
def test_resolve_refuses(name: str, euid: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        runas.resolve(name, euid=euid)
    assert cli.exit_code(caught.value) == 78


def test_the_environment_is_the_users_without_the_runners_credentials() -> None:
    user = RunAs(name="etl", uid=1234, gid=1234, groups=(1234,), home="/home/etl")
    base = dict.fromkeys(CREDENTIAL_VARIABLES, "secret")
    base.update(
        PATH="/usr/bin",
        HOME="/root",
        USER="root",
        LOGNAME="root",
        AWS_REGION="eu-west-1",
        NOTIFY_SOCKET="/run/systemd/notify",
        DP_RUNNER_WORK_DIR="/var/lib/dp-runner",
    )
    env = supervisor.task_environment(base, {"DP_PIPELINE_ID": "df-1"}, run_as=user)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/etl",
        "USER": "etl",
        "LOGNAME": "etl",
        "AWS_REGION": "eu-west-1",
        "DP_PIPELINE_ID": "df-1",
    }
    assert "AWS_ACCESS_KEY_ID" in supervisor.task_environment(base, {})


def test_the_dropped_variables_include_the_issues_list() -> None:
    assert {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
    } <= CREDENTIAL_VARIABLES


@needs_root
def test_chown_tree_changes_links_as_links(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    top = tmp_path / "top"
    (top / "sub").mkdir(parents=True)
    (top / "sub" / "file").write_text("y")
    (top / "to-file").symlink_to(target)
    (top / "sub" / "to-dir").symlink_to(outside)
    assert runas.chown_tree(top, 65534, 65534) == 5
    for path in (top, top / "sub", top / "sub" / "file", top / "to-file"):
        assert os.lstat(path).st_uid == 65534, path
    assert os.lstat(top / "sub" / "to-dir").st_uid == 65534
    assert os.stat(target).st_uid == 0
    assert os.stat(outside).st_uid == 0
    assert runas.chown_tree(tmp_path / "absent", 65534, 65534) == 0


@needs_root
def test_chown_tree_refuses_a_symlinked_top(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(OSError, match=r"Too many levels|Not a directory"):
        runas.chown_tree(tmp_path / "link", 65534, 65534)
    assert os.stat(real).st_uid == 0


def test_run_as_is_a_setting_of_every_source(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('run_as = "from-file"\n')
    assert load_settings(config_file=config, overrides={}, env={}).run_as == (
        "from-file"
    )
    env = {"DP_RUNNER_RUN_AS": "from-env"}
    assert load_settings(config_file=config, overrides={}, env=env).run_as == (
        "from-env"
    )
    flags = {"run_as": "from-flag"}
    assert load_settings(config_file=config, overrides=flags, env=env).run_as == (
        "from-flag"
    )
    assert load_settings(config_file=None, overrides={}, env={}).run_as is None


@pytest.mark.parametrize("value", ["two words", "a:b", "../x", "", "tab\there"])
def test_a_run_as_that_is_no_user_name_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match="run_as"):
        load_settings(config_file=None, overrides={"run_as": value}, env={})
