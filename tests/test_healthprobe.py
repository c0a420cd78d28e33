"""``runner.healthprobe``: where ``dp-runner healthcheck`` finds the address, and
what it answers. The probe against a live runner is in ``test_health.py``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runner import healthprobe
from runner.healthprobe import ProbeError, UsageError, address, parse_args
from tests.support.runners import REPO


def test_the_address_follows_the_daemons_precedence(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('http_address = "127.0.0.1:3"\n')
    env = {"DP_RUNNER_HTTP_ADDRESS": "127.0.0.1:2", "DP_RUNNER_CONFIG": str(config)}
    flag = {"http_address": "127.0.0.1:1"}
    assert address(flag, env) == "127.0.0.1:1"
    assert address({}, env) == "127.0.0.1:2"
    del env["DP_RUNNER_HTTP_ADDRESS"]
    assert address({}, env) == "127.0.0.1:3"
    assert address({"config": str(config)}, {}) == "127.0.0.1:3"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("http_address = [1]\n", "must be a string"),
        ("http_address = \n", "config file"),
        ('http_address = "nonsense"\n', "http_address=nonsense from"),
        ("max_tasks = 2\n", "http_address is not set"),
    ],
)
def test_a_bad_or_missing_address_is_named(
    tmp_path: Path, toml: str, message: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(toml)
    with pytest.raises(ProbeError, match=message):
        address({"config": str(config)}, {})


def test_flags_are_parsed_in_both_spellings() -> None:
    found = parse_args(["--config=a.toml", "--http-address", "[::1]:9", "--ready"])
    assert found == {
        "config": "a.toml",
        "http_address": "[::1]:9",
        "ready": True,
        "help": False,
    }
    assert healthprobe.split_address("[::1]:9") == ("::1", 9)
    with pytest.raises(UsageError, match="no such option: --worker-group"):
        parse_args(["--worker-group", "wg"])
    with pytest.raises(UsageError, match="--config needs a value"):
        parse_args(["--config"])


def test_the_command_exits_2_on_a_bad_flag_and_0_with_help() -> None:
    def probe(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "runner", "healthcheck", *args],
            capture_output=True, text=True, timeout=30, check=False, cwd=REPO,
        )  # fmt: skip

    bad = probe("--nope")
    assert bad.returncode == 2
    assert "no such option: --nope" in bad.stderr
    shown = probe("--help")
    assert shown.returncode == 0
    assert "Usage: dp-runner healthcheck" in shown.stdout
