"""Where a setting's value came from: the sources of ``config.Settings``.

Owns: the pydantic-settings sources ``Settings.settings_customise_sources`` returns,
each a thin subclass of the library's own that records which keys it supplied, under
the name an error message gives for them: the flags (``InitSettingsSource``:
``--max-tasks``), the environment (``EnvSettingsSource`` with the ``DP_RUNNER_``
prefix: ``DP_RUNNER_MAX_TASKS``), the ``--config`` file
(``TomlConfigSettingsSource``: its path) and the one computed default (``work_dir``,
from ``STATE_DIRECTORY``: "the default"). Also the scan of the environment for
``DP_RUNNER_*`` variables that name no setting (a typo that would otherwise be
silently ignored), and the migration hint for a Java runner's JSON file given as
``--config``.

Must not: validate values (``config.py`` validates the merged values once, and
translates pydantic's errors with the names recorded here), read ``os.environ``
itself (the caller passes the environment, so tests never depend on the machine),
log, exit or import click.

Why this way: pydantic-settings merges the sources' dicts and forgets where each
key came from; the messages that name a setting, its value and its source were the
best part of the hand-written loader this replaces, so each source keeps a note of
its keys as it hands them over, and nothing else changes in the library's flow.
"""

from __future__ import annotations

import difflib
import json
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    TomlConfigSettingsSource,
)

from runner.errors import ConfigError

ENV_PREFIX = "DP_RUNNER_"
#: ``DP_RUNNER_*`` variables that are not settings: ``--config``'s own variable and
#: the marker the supervisor puts in every task's environment.
NOT_SETTINGS = frozenset({"DP_RUNNER_CONFIG", "DP_RUNNER_ATTEMPT"})
DEFAULT = "the default"


def env_var(name: str) -> str:
    return ENV_PREFIX + name.upper()


def flag(name: str) -> str:
    if name == "worker_groups":
        return "--worker-group"  # the repeatable flag is singular
    return "--" + name.replace("_", "-")


class FlagSource(InitSettingsSource):
    """The flags that were given (pydantic-settings' init settings)."""

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        self.supplied = {key: flag(key) for key in values}
        return values


class EnvSource(EnvSettingsSource):
    """``DP_RUNNER_<SETTING>`` from an explicit mapping. Values that are empty or
    only blanks count as unset (a systemd ``EnvironmentFile`` line ``X=``)."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]):
        self._env = env
        self.supplied: dict[str, str] = {}
        super().__init__(
            settings_cls, env_prefix=ENV_PREFIX, case_sensitive=False
        )  # fmt: skip

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {key.lower(): value for key, value in self._env.items() if value.strip()}

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        self.supplied = {key: env_var(key) for key in values}
        return values


class TomlSource(TomlConfigSettingsSource):
    """The ``--config`` file, read once (a pipe such as ``--config <(...)`` can only
    be read once), its keys matched to settings regardless of case."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path):
        self.path = path
        self._fields = settings_cls.model_fields
        self.supplied: dict[str, str] = {}
        super().__init__(settings_cls, toml_file=path)

    def _read_files(self, files: Any, deep_merge: bool = False) -> dict[str, Any]:
        # The library skips a path that is not a regular file; a pipe is one to us,
        # and a missing file is an error, never an empty configuration.
        return match_case(read_toml(self.path), self.path, self._fields)

    def _read_file(self, path: Any) -> dict[str, Any]:
        return read_toml(Path(path))

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        self.supplied = dict.fromkeys(values, str(self.path))
        return values


class ComputedDefaults(PydanticBaseSettingsSource):
    """The one default that depends on the environment: ``work_dir``."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]):
        super().__init__(settings_cls)
        self.values = values
        self.supplied = dict.fromkeys(values, DEFAULT)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ gives the values at once

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


def origins(sources: Iterable[Any]) -> dict[str, str]:
    """For each key, the name of the source that supplied it; ``sources`` lowest
    precedence first, so a higher source's name replaces a lower one's."""
    origin: dict[str, str] = {}
    for source in sources:
        origin |= source.supplied
    return origin


def read_toml(path: Path) -> dict[str, Any]:
    """The file's table; ``ConfigError`` naming the file (and line) when it cannot
    be read or is not TOML."""
    try:
        with path.open("rb") as file:
            data = file.read()
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc.strerror or exc}"
        ) from None
    try:
        return tomllib.loads(data.decode())
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: invalid TOML: not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    except tomllib.TOMLDecodeError as exc:  # its text names the line and column
        if _is_json(data):
            raise ConfigError(java_config_hint(path)) from None
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _is_json(data: bytes) -> bool:
    try:
        return isinstance(json.loads(data), dict)
    except ValueError:
        return False


def java_config_hint(path: Path) -> str:
    return (
        f"{path} is JSON, as the Java Task Runner's credentials.json is: dp-runner "
        "takes AWS credentials from the standard chain (instance profile, "
        "AWS_PROFILE, ~/.aws/credentials, environment), and --config takes a TOML "
        "file of dp-runner settings (see config.example.toml)"
    )


def match_case(
    table: Mapping[str, Any], path: Path, fields: Iterable[str]
) -> dict[str, Any]:
    """The file's keys matched to settings regardless of case, as they always were.
    Unknown keys stay as written, so validation names them; a setting written twice
    (``max_tasks`` and ``MAX_TASKS``) is an error rather than a silent pick."""
    known = set(fields)
    values: dict[str, Any] = {}
    written: dict[str, str] = {}
    for key, value in table.items():
        name = key.lower() if key.lower() in known else key
        if name in written:
            raise ConfigError(
                f"{path}: setting {name!r} is written twice "
                f"(as {written[name]!r} and {key!r})"
            )
        values[name], written[name] = value, key
    return values


def unknown_variables(env: Mapping[str, str], settings: Iterable[str]) -> list[str]:
    """One message per ``DP_RUNNER_*`` variable in ``env`` that names no setting,
    with the nearest setting's variable: ``DP_RUNNER_MAXTASKS`` ->
    ``DP_RUNNER_MAX_TASKS``. Empty values count too: a typo is a typo."""
    known = {env_var(name) for name in settings}
    messages = []
    for name in sorted(env):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known | NOT_SETTINGS:
            continue
        nearest = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.0)
        messages.append(
            f"unknown environment variable {name} (no such setting; "
            f"did you mean {nearest[0]}?)"
        )
    return messages
