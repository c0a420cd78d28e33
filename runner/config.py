"""The runner's settings (design.md §2): one frozen ``Settings``, loaded in layers.

Owns: every setting of ``dp-runner run``, its default, its bounds, and the order of
precedence: flag > environment ``DP_RUNNER_<KEY>`` > ``--config`` TOML > default.
``load_settings`` is the only loader; every invalid value becomes a ``ConfigError``
(exit 78) that names the setting, its value and where that value came from, and so
does every ``DP_RUNNER_*`` variable that names no setting.

Must not: log, exit, import click, or be read below ``cli/`` (lower layers take
explicit keyword arguments). It never clamps: a value out of bounds is an error, and
an unknown key in the config file is an error, never ignored (an operator's typo).

Why this way: ``Settings`` is a pydantic-settings class whose
``settings_customise_sources`` returns, highest first, the flags (init settings),
``EnvSettingsSource`` with the ``DP_RUNNER_`` prefix (``worker_groups`` is
``NoDecode``: comma-separated, not JSON), ``TomlConfigSettingsSource`` (read once,
so a pipe such as ``--config <(...)`` works) and the computed ``work_dir`` default.
Those are ``configsources``' thin subclasses, which record the keys they supplied;
the merged values are validated once, and each pydantic error is translated here,
at the edge, into a message naming the setting and the source recorded for it.
``load_settings`` hands the sources their inputs (the file, an explicit environment
mapping, so tests never depend on the machine) through a context variable: outside
it, ``Settings(...)`` reads nothing but its arguments.

Bounds that are not obvious: ``heartbeat_interval`` < ``lease_timeout`` < 300 s (the
service re-assigns a task after 5 minutes without a report); the runner heartbeat is
due at least every 900 s (the service's 15 minutes). Empty environment variables count
as unset (systemd ``EnvironmentFile`` lines such as ``DP_RUNNER_REGION=``); only
``DP_RUNNER_WORKER_GROUPS`` is a list, comma-separated. Config-file keys match
settings regardless of case, as they always have.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from runner import configsources
from runner.configsources import DEFAULT, ENV_PREFIX
from runner.errors import ConfigError

#: The service re-assigns a task after 5 minutes without ReportTaskProgress.
SERVICE_LEASE_S = 300.0
_ID_TEXT = re.compile(r"[^\x00-\x1f\x7f]{1,1024}")
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_USER = re.compile(r"[^\s:/\x00-\x1f\x7f]{1,256}")


def default_work_dir(env: Mapping[str, str], euid: int | None = None) -> Path:
    """``$STATE_DIRECTORY`` when systemd sets it (``StateDirectory=``; the first of
    a colon-separated list), else ``/var/lib/dp-runner`` as root, else
    ``$XDG_STATE_HOME/dp-runner`` (when set and absolute, as the XDG spec asks),
    else ``~/.local/state/dp-runner``. ``euid`` defaults to the effective uid."""
    state_directory = env.get("STATE_DIRECTORY", "").split(":")[0]
    if state_directory and Path(state_directory).is_absolute():
        return Path(state_directory)
    if (os.geteuid() if euid is None else euid) == 0:
        return Path("/var/lib/dp-runner")
    state_home = env.get("XDG_STATE_HOME", "")
    if state_home and Path(state_home).is_absolute():
        return Path(state_home) / "dp-runner"
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "state" / "dp-runner"


def split_http_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``[V6]:PORT``) as a host and a port; ``ValueError`` when
    it is not one. Port 0 lets the OS choose."""
    host, colon, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError("must be HOST:PORT, for example 127.0.0.1:9102")
    return host, int(port)


@dataclass
class _Load:
    """What one ``load_settings`` call gives the sources, and the sources it made
    (lowest precedence first), whose notes name each key's source."""

    env: Mapping[str, str]
    config_file: Path | None
    sources: list[Any] = field(default_factory=list)


_LOADING: ContextVar[_Load | None] = ContextVar("dp_runner_settings_load", default=None)


class Settings(BaseSettings):
    """Every setting of ``dp-runner run`` (design.md §2). Frozen; seconds unless named
    otherwise. Build it with ``load_settings``; ``Settings(**kw)`` reads only ``kw``
    (outside ``load_settings`` its only source is its arguments)."""

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", validate_default=True, env_prefix=ENV_PREFIX
    )

    worker_groups: Annotated[tuple[str, ...], NoDecode] = ()
    region: str | None = None
    endpoint_url: str | None = None
    taskrunner_id: str | None = None
    #: None means the host's FQDN; cli/ resolves it once (a DNS lookup can be slow).
    hostname: str | None = None
    max_tasks: int = Field(default=2, ge=1, le=64)
    heartbeat_interval: float = Field(default=60.0, gt=0, lt=SERVICE_LEASE_S)
    runner_heartbeat_interval: float = Field(default=900.0, gt=0, le=900)
    lease_timeout: float = Field(default=240.0, gt=0, lt=SERVICE_LEASE_S)
    kill_grace: float = Field(default=10.0, ge=0, le=600)
    drain_timeout: float = Field(default=60.0, ge=0, le=86400)
    #: How long the final statuses may retry once the runner stops, and the whole
    #: start-up recovery (drain.STATUS_BUDGET_S).
    status_budget: float = Field(default=30.0, gt=0, le=900)
    work_dir: Path = Field(default_factory=lambda: default_work_dir(os.environ))
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_uri: str | None = None
    #: A user name (or uid); resolved by ``daemon`` at start, which needs root.
    run_as: str | None = None
    keep_attempts: float = Field(default=7.0, ge=0, le=3650)  # days
    #: ``HOST:PORT`` (``[::1]:9102`` for IPv6) of /healthz, /readyz, /metrics.
    http_address: str | None = None

    @field_validator("worker_groups", mode="before")
    @classmethod
    def _split_worker_groups(cls, value: Any) -> Any:
        if isinstance(value, str):  # DP_RUNNER_WORKER_GROUPS="wg-a,wg-b"
            return tuple(part.strip() for part in value.split(",")) if value else ()
        return value

    @field_validator("worker_groups")
    @classmethod
    def _check_worker_groups(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _ID_TEXT.fullmatch(name) or name != name.strip():
                raise ValueError(f"invalid worker group name {name!r}")
        if len(set(value)) != len(value):
            raise ValueError("a worker group is listed twice")
        return value

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("region")
    @classmethod
    def _check_region(cls, value: str | None) -> str | None:
        if value is not None and not _REGION.fullmatch(value):
            raise ValueError("must look like an AWS region, for example eu-west-1")
        return value

    @field_validator("taskrunner_id", "hostname")
    @classmethod
    def _check_id(cls, value: str | None) -> str | None:
        if value is not None and not _ID_TEXT.fullmatch(value):
            raise ValueError("must be 1 to 1024 characters, no control characters")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("log_uri")
    @classmethod
    def _check_log_uri(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"s3://[^/\s]+(/\S*)?", value):
            raise ValueError("must be an S3 URI such as s3://bucket/prefix/")
        return value

    @field_validator("run_as")
    @classmethod
    def _check_run_as(cls, value: str | None) -> str | None:
        if value is not None and not _USER.fullmatch(value):
            raise ValueError("must be a user name (or uid), without spaces or ':'")
        return value

    @field_validator("http_address")
    @classmethod
    def _check_http_address(cls, value: str | None) -> str | None:
        if value is not None:
            split_http_address(value)
        return value

    @field_validator("lease_timeout")
    @classmethod
    def _check_lease(cls, value: float, info: ValidationInfo) -> float:
        heartbeat = info.data.get("heartbeat_interval")
        if heartbeat is not None and value <= heartbeat:
            raise ValueError(f"must be > heartbeat_interval={heartbeat:g}")
        return value

    @field_validator("work_dir")
    @classmethod
    def _absolute_work_dir(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    def require_worker_groups(self) -> tuple[str, ...]:
        """The worker groups; ``ConfigError`` when there are none (only ``--local``
        may run without: it takes them from the definition)."""
        if not self.worker_groups:
            raise ConfigError(
                "worker_groups is required: pass --worker-group, set "
                f"{ENV_PREFIX}WORKER_GROUPS or worker_groups in the config file"
            )
        return self.worker_groups

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest precedence first: flags, environment, TOML, computed default."""
        load = _LOADING.get()
        if load is None:
            return (init_settings,)
        assert isinstance(init_settings, InitSettingsSource)  # noqa: S101 # the library's own
        flags = configsources.FlagSource(settings_cls, init_settings.init_kwargs)
        env = configsources.EnvSource(settings_cls, load.env)
        work_dir = {"work_dir": default_work_dir(load.env)}
        sources: list[Any] = [configsources.ComputedDefaults(settings_cls, work_dir)]
        if load.config_file is not None:
            sources.append(configsources.TomlSource(settings_cls, load.config_file))
        load.sources = [*sources, env, flags]
        return tuple(reversed(load.sources))


def _reason(error: ErrorDetails) -> str:
    ctx = error.get("ctx", {})
    kind = error["type"]
    bounds = {
        "greater_than_equal": ("≥", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("≤", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        sign, key = bounds[kind]
        return f"must be {sign} {ctx[key]}"
    if kind == "literal_error":
        return f"must be {ctx['expected']}"
    if kind == "value_error":
        return str(ctx["error"])
    if kind in ("int_parsing", "int_from_float"):
        return "must be a whole number"
    if kind == "float_parsing":
        return "must be a number"
    message = error["msg"]
    return message[:1].lower() + message[1:]


#: Cross-field rules: the other setting a failure depends on.
_RELATED = {"lease_timeout": "heartbeat_interval"}


def _describe(error: ErrorDetails, origin: Mapping[str, str]) -> str:
    name = str(error["loc"][0]) if error["loc"] else "settings"
    source = origin.get(name, DEFAULT)
    if error["type"] == "extra_forbidden":
        return f"unknown setting {name!r} in {source}"
    value = error["input"]
    if isinstance(value, tuple | list):
        value = ",".join(map(str, value))
    text = f"{name}={str(value)[:200]} from {source}: {_reason(error)}"
    related = _RELATED.get(name)
    if related and error["type"] == "value_error":
        text += f" (from {origin.get(related, DEFAULT)})"
    return text


def load_settings(
    *,
    config_file: Path | None,
    overrides: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Build ``Settings`` from flags (``overrides``: the flags that were given; None
    means not given), the environment (``env``, default ``os.environ``), the TOML
    ``config_file`` (read once) and the defaults, in that order of precedence.

    Raises ``ConfigError`` (exit 78) naming each bad setting and its source, each
    ``DP_RUNNER_*`` variable that names no setting (with the nearest one), or the
    config file and line when the file is unreadable or not TOML. Never clamps.
    """
    env = os.environ if env is None else env
    unknown = configsources.unknown_variables(env, Settings.model_fields)
    if unknown:
        raise ConfigError("invalid configuration: " + "; ".join(unknown))
    flags = {key: value for key, value in overrides.items() if value is not None}
    with _loading(_Load(env=env, config_file=config_file)) as load:
        try:
            return Settings(**flags)
        except ValidationError as exc:
            origin = configsources.origins(load.sources)
            problems = [_describe(error, origin) for error in exc.errors()]
            raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


@contextmanager
def _loading(load: _Load) -> Iterator[_Load]:
    token = _LOADING.set(load)
    try:
        yield load
    finally:
        _LOADING.reset(token)
