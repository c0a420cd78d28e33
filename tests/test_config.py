"""Settings: precedence, bounds, and errors that say which setting and which source.

Every test passes an explicit ``env`` mapping, so the machine's environment never
leaks in.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runner import cli
from runner.config import Settings, default_work_dir, load_settings
from runner.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
HOME_ENV = {"HOME": "/home/someone"}


def load(
    *,
    toml: str | None = None,
    env: dict[str, str] | None = None,
    flags: dict[str, Any] | None = None,
    tmp_path: Path | None = None,
) -> Settings:
    config_file = None
    if toml is not None:
        assert tmp_path is not None
        config_file = tmp_path / "config.toml"
        config_file.write_text(toml)
    return load_settings(
        config_file=config_file, overrides=flags or {}, env={**HOME_ENV, **(env or {})}
    )


def config_error(**kw: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load(**kw)
    assert cli.exit_code(info.value) == 78
    return str(info.value)


#: The sources, lowest precedence first.
SOURCES = ("toml", "env", "flag")


def given(source: str, key: str, value: Any, tmp_path: Path) -> dict[str, Any]:
    """``load`` arguments that set ``key`` to ``value`` from one source."""
    if source == "flag":
        return {"flags": {key: value}}
    if source == "env":
        text = ",".join(value) if isinstance(value, list) else str(value)
        return {"env": {"DP_RUNNER_" + key.upper(): text}}
    return {"toml": f"{key} = {json.dumps(value)}\n", "tmp_path": tmp_path}


def test_defaults_match_the_design() -> None:
    settings = load()

    assert settings.worker_groups == ()
    assert settings.region is None
    assert settings.endpoint_url is None
    assert settings.taskrunner_id is None
    assert settings.hostname is None
    assert settings.max_tasks == 2
    assert settings.heartbeat_interval == 60
    assert settings.runner_heartbeat_interval == 900
    assert settings.lease_timeout == 240
    assert settings.kill_grace == 10
    assert settings.drain_timeout == 60
    assert settings.log_format == "auto"
    assert settings.log_level == "info"
    assert settings.log_uri is None
    assert settings.keep_attempts == 7
    assert settings.work_dir == default_work_dir(HOME_ENV)


def test_precedence_is_flag_then_env_then_toml_then_default(tmp_path: Path) -> None:
    toml = 'max_tasks = 3\nkill_grace = 4\ndrain_timeout = 5\nregion = "eu-west-1"\n'
    env = {"DP_RUNNER_MAX_TASKS": "6", "DP_RUNNER_KILL_GRACE": "7"}
    flags = {"max_tasks": 8, "log_level": None}  # None: the flag was not given

    settings = load(toml=toml, env=env, flags=flags, tmp_path=tmp_path)

    assert settings.max_tasks == 8  # flag
    assert settings.kill_grace == 7  # env
    assert settings.drain_timeout == 5  # toml
    assert settings.region == "eu-west-1"  # toml
    assert settings.log_level == "info"  # default
    assert settings.heartbeat_interval == 60  # default


@pytest.mark.parametrize(
    "sources", [c for n in range(4) for c in itertools.combinations(SOURCES, n)]
)
def test_each_source_beats_the_ones_below_it(
    sources: tuple[str, ...], tmp_path: Path
) -> None:
    regions = {"toml": "eu-west-3", "env": "eu-west-2", "flag": "eu-west-1"}
    kw: dict[str, Any] = {}
    for source in sources:
        kw |= given(source, "region", regions[source], tmp_path)

    expected = regions[max(sources, key=SOURCES.index)] if sources else None
    assert load(**kw).region == expected


def test_worker_groups_from_env_are_comma_separated(tmp_path: Path) -> None:
    env = {"DP_RUNNER_WORKER_GROUPS": "wg-a, wg-b ,wg-c"}

    assert load(env=env).worker_groups == ("wg-a", "wg-b", "wg-c")
    toml = 'worker_groups = ["t1", "t2"]\n'
    assert load(toml=toml, tmp_path=tmp_path).worker_groups == ("t1", "t2")
    assert load(flags={"worker_groups": ("f1",)}, env=env).worker_groups == ("f1",)


def test_worker_groups_are_required_unless_local() -> None:
    with pytest.raises(ConfigError, match="worker_groups is required") as info:
        load().require_worker_groups()
    assert cli.exit_code(info.value) == 78
    env = {"DP_RUNNER_WORKER_GROUPS": "wg"}
    assert load(env=env).require_worker_groups() == ("wg",)


def test_empty_env_values_count_as_unset(tmp_path: Path) -> None:
    settings = load(env={"DP_RUNNER_REGION": "", "DP_RUNNER_MAX_TASKS": " "})

    assert settings.region is None
    assert settings.max_tasks == 2
    env = {"DP_RUNNER_REGION": "", "DP_RUNNER_KILL_GRACE": ""}  # hide nothing
    toml = 'region = "eu-west-3"\n'
    assert load(toml=toml, env=env, tmp_path=tmp_path).region == "eu-west-3"
    message = config_error(toml="kill_grace = -1\n", env=env, tmp_path=tmp_path)
    assert f"kill_grace=-1 from {tmp_path / 'config.toml'}:" in message


@pytest.mark.parametrize(
    ("key", "bad", "good"),
    [
        ("max_tasks", ["0", "65", "1.5", "many"], ["1", "64"]),
        ("heartbeat_interval", ["0", "-1", "300"], ["0.05", "239"]),
        ("runner_heartbeat_interval", ["0", "901"], ["0.1", "900"]),
        ("lease_timeout", ["0", "300", "60"], ["61", "299.5"]),
        ("kill_grace", ["-1", "601"], ["0", "600"]),
        ("drain_timeout", ["-0.1", "86401"], ["0", "86400"]),
        ("keep_attempts", ["-1", "3651"], ["0", "3650"]),
        ("log_format", ["text"], ["json", "CONSOLE", "auto"]),
        ("log_level", ["trace"], ["debug", "WARNING", "error"]),
        ("log_uri", ["http://b/p", "s3://", "s3:///x", "bucket/p"], ["s3://b/logs/"]),
        ("endpoint_url", ["localhost:8765", "ftp://x"], ["http://127.0.0.1:8765"]),
        ("region", ["EU WEST", "eu_west_1"], ["eu-west-1"]),
        ("worker_groups", ["a,a", "a,,b", "a,b\x01"], ["a", "a,b"]),
        ("taskrunner_id", ["x\x01y", "x" * 1025], ["runner-1"]),
    ],
)
def test_bounds_are_enforced_never_clamped(
    key: str, bad: list[str], good: list[str]
) -> None:
    env_name = "DP_RUNNER_" + key.upper()
    for value in good:
        load(env={env_name: value})
    for value in bad:
        message = config_error(env={env_name: value})
        assert f"{key}=" in message, value
        assert f"from {env_name}" in message, value


def test_error_names_field_value_and_source(tmp_path: Path) -> None:
    assert config_error(env={"DP_RUNNER_MAX_TASKS": "0"}).endswith(
        "max_tasks=0 from DP_RUNNER_MAX_TASKS: must be ≥ 1"
    )
    assert "max_tasks=99 from --max-tasks: must be ≤ 64" in config_error(
        flags={"max_tasks": 99}
    )
    message = config_error(toml="kill_grace = -5\n", tmp_path=tmp_path)
    assert f"kill_grace=-5 from {tmp_path / 'config.toml'}: must be ≥ 0" in message


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(
    ("key", "flag", "bad", "shown", "good"),
    [
        ("region", "--region", "EU WEST", "EU WEST", "eu-west-1"),
        ("max_tasks", "--max-tasks", 0, "0", 3),
        ("worker_groups", "--worker-group", ["a", "a"], "a,a", ["ok"]),
    ],
)
def test_a_bad_value_names_the_source_it_came_from(
    source: str, key: str, flag: str, bad: Any, shown: str, good: Any, tmp_path: Path
) -> None:
    kw: dict[str, Any] = {}
    for lower in SOURCES[: SOURCES.index(source)]:  # good values it overrides
        kw |= given(lower, key, good, tmp_path)
    kw |= given(source, key, bad, tmp_path)
    names = {"flag": flag, "env": f"DP_RUNNER_{key.upper()}"}

    message = config_error(**kw)

    name = names.get(source, str(tmp_path / "config.toml"))
    assert f"{key}={shown} from {name}: " in message
    assert message.count(f"{key}=") == 1


@pytest.mark.parametrize("source", ["toml", "env"])
def test_a_bad_value_hidden_by_a_higher_source_is_not_an_error(
    source: str, tmp_path: Path
) -> None:
    bad = given(source, "max_tasks", 0, tmp_path)

    assert load(**bad, flags={"max_tasks": 3}).max_tasks == 3


def test_every_bad_setting_is_reported_at_once() -> None:
    message = config_error(
        env={"DP_RUNNER_MAX_TASKS": "0"}, flags={"log_format": "xml"}
    )

    assert "max_tasks=0 from DP_RUNNER_MAX_TASKS" in message
    assert "log_format=xml from --log-format" in message


def test_lease_timeout_must_exceed_heartbeat_interval(tmp_path: Path) -> None:
    message = config_error(env={"DP_RUNNER_HEARTBEAT_INTERVAL": "250"})
    assert "lease_timeout=240" in message
    assert "heartbeat_interval=250 (from DP_RUNNER_HEARTBEAT_INTERVAL)" in message

    message = config_error(
        toml="heartbeat_interval = 30\n",
        flags={"lease_timeout": 30},
        tmp_path=tmp_path,
    )
    assert "lease_timeout=30 from --lease-timeout" in message
    settings = load(flags={"heartbeat_interval": 0.05, "lease_timeout": 0.2})
    assert (settings.heartbeat_interval, settings.lease_timeout) == (0.05, 0.2)


def test_unknown_toml_key_is_named(tmp_path: Path) -> None:
    message = config_error(toml="max_tasks = 2\nmax_task = 3\n", tmp_path=tmp_path)

    assert "unknown setting 'max_task'" in message
    assert str(tmp_path / "config.toml") in message


def test_unknown_toml_key_is_reported_with_the_other_problems(tmp_path: Path) -> None:
    message = config_error(
        toml="max_task = 3\n",
        env={"DP_RUNNER_KILL_GRACE": "-1"},
        flags={"log_level": "loud"},
        tmp_path=tmp_path,
    )

    assert f"unknown setting 'max_task' in {tmp_path / 'config.toml'}" in message
    assert "kill_grace=-1 from DP_RUNNER_KILL_GRACE" in message
    assert "log_level=loud from --log-level" in message


def test_toml_keys_match_settings_regardless_of_case(tmp_path: Path) -> None:
    assert load(toml="MAX_TASKS = 3\n", tmp_path=tmp_path).max_tasks == 3
    message = config_error(toml="KILL_GRACE = -5\n", tmp_path=tmp_path)
    assert f"kill_grace=-5 from {tmp_path / 'config.toml'}" in message


def test_a_setting_written_twice_in_the_toml_is_an_error(tmp_path: Path) -> None:
    message = config_error(toml="max_tasks = 3\nMAX_TASKS = 5\n", tmp_path=tmp_path)

    assert str(tmp_path / "config.toml") in message
    assert "'max_tasks' is written twice" in message


def test_config_file_is_read_once_so_a_pipe_works() -> None:
    """``--config <(render-config)``: a pipe yields its text to one read only."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b'max_tasks = 5\nregion = "eu-west-1"\n')
    os.close(write_fd)
    try:
        settings = load_settings(
            config_file=Path(f"/dev/fd/{read_fd}"), overrides={}, env=HOME_ENV
        )
    finally:
        os.close(read_fd)

    assert (settings.max_tasks, settings.region) == (5, "eu-west-1")


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    message = config_error(
        toml='region = "eu-west-1"\nmax_tasks = \n', tmp_path=tmp_path
    )

    assert str(tmp_path / "config.toml") in message
    assert "line 2" in message


@pytest.mark.parametrize("name", ["nope.toml", "."])
def test_missing_config_file_is_a_config_error(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    with pytest.raises(ConfigError, match="cannot read config file") as info:
        load_settings(config_file=path, overrides={}, env={})
    assert cli.exit_code(info.value) == 78
    assert str(path) in str(info.value)


def test_unrelated_env_variables_are_ignored() -> None:
    settings = load(env={"DP_RUNNER_CONFIG": "/x.toml", "DP_RUNNER_ATTEMPT": "1"})

    assert settings.max_tasks == 2


def test_example_config_loads_and_yields_the_defaults() -> None:
    example = load_settings(
        config_file=REPO / "config.example.toml", overrides={}, env=HOME_ENV
    )

    assert example == load()


def test_example_config_documents_every_setting() -> None:
    text = (REPO / "config.example.toml").read_text()

    for name in Settings.model_fields:
        assert f"# {name} = " in text, name


def test_settings_are_frozen() -> None:
    settings = load()

    with pytest.raises(ValueError, match="frozen"):
        settings.max_tasks = 5  # type: ignore[misc]  # proving it is refused


def test_settings_alone_read_only_their_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DP_RUNNER_MAX_TASKS", "9")

    assert Settings(kill_grace=3).max_tasks == 2
    assert load_settings(config_file=None, overrides={}).max_tasks == 9


def test_work_dir_defaults_follow_euid_and_xdg() -> None:
    assert default_work_dir({}, euid=0) == Path("/var/lib/dp-runner")
    assert default_work_dir({"XDG_STATE_HOME": "/xdg", "HOME": "/h"}, euid=1000) == (
        Path("/xdg/dp-runner")
    )
    assert default_work_dir({"XDG_STATE_HOME": "rel", "HOME": "/h"}, euid=1000) == (
        Path("/h/.local/state/dp-runner")
    )
    assert default_work_dir({"HOME": "/h"}, euid=1000) == Path(
        "/h/.local/state/dp-runner"
    )


def test_work_dir_defaults_to_systemds_state_directory_first() -> None:
    """StateDirectory= sets STATE_DIRECTORY (a colon-separated list): the first."""
    unit = {"STATE_DIRECTORY": "/var/lib/dp-runner:/var/lib/other", "HOME": "/h"}
    assert default_work_dir(unit, euid=998) == Path("/var/lib/dp-runner")
    assert default_work_dir({"STATE_DIRECTORY": "/s"}, euid=0) == Path("/s")
    assert default_work_dir({"STATE_DIRECTORY": "rel"}, euid=0) == Path(
        "/var/lib/dp-runner"
    )


def test_work_dir_is_made_absolute(tmp_path: Path) -> None:
    settings = load(env={"DP_RUNNER_WORK_DIR": str(tmp_path / "w")})
    assert settings.work_dir == tmp_path / "w"
    assert load(flags={"work_dir": Path("rel")}).work_dir.is_absolute()


def test_settings_are_built_on_pydantic_settings() -> None:
    from pydantic_settings import BaseSettings  # noqa: PLC0415 - only this test

    assert issubclass(Settings, BaseSettings)


def test_an_unknown_dp_runner_variable_names_the_nearest_setting() -> None:
    message = config_error(env={"DP_RUNNER_MAXTASKS": "8"})

    assert "unknown environment variable DP_RUNNER_MAXTASKS" in message
    assert "did you mean DP_RUNNER_MAX_TASKS?" in message
    message = config_error(env={"DP_RUNNER_WORKER_GROUP": "wg", "DP_RUNNER_X": ""})
    assert "DP_RUNNER_WORKER_GROUP (no such setting; did you mean " in message
    assert "DP_RUNNER_WORKER_GROUPS?" in message
    assert "unknown environment variable DP_RUNNER_X " in message


def test_an_unknown_variable_exits_78_from_the_command_line(tmp_path: Path) -> None:
    env = {**os.environ, "DP_RUNNER_MAXTASKS": "8", "DP_RUNNER_WORKER_GROUPS": "wg"}
    done = subprocess.run(
        [sys.executable, "-m", "runner", "run", "--work-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False, cwd=REPO, env=env,
    )  # fmt: skip

    assert done.returncode == 78
    assert "DP_RUNNER_MAXTASKS" in done.stderr
    assert "DP_RUNNER_MAX_TASKS" in done.stderr
    assert not list(tmp_path.iterdir())  # nothing started
