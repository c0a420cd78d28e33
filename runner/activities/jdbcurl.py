"""JDBC URLs and JDBC parameters, read as the Java drivers read them.

Owns: ``parse_jdbc_url`` (``jdbc:<engine>://host[:port][/database][?k=v&k=v |
;k=v]`` for ``postgresql``, ``mysql``, ``mariadb`` and ``redshift``) and
``driver_options`` (the JDBC parameters that change behaviour, mapped to the
options the child gives psycopg or PyMySQL). Pure.

Must not: quote a URL in an error: it may carry a password.

Why this way: pipelines hold JDBC URLs and ``jdbcProperties`` written for pgjdbc,
Connector/J and the Redshift driver; their meaning is kept where the Python drivers
have the same knob (SSL, timeouts, the application name, the charset), including
their units (pgjdbc counts seconds, Connector/J milliseconds). Anything else is
listed under ``ignored`` so the caller can say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from runner.errors import ActivityError

DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "redshift": 5439}
_SCHEMES = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "redshift": "redshift",
}
_SSL_MODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}
_MYSQL_SSL = {
    "disabled": "disable",
    "preferred": "prefer",
    "required": "require",
    "verify_ca": "verify-ca",
    "verify_identity": "verify-full",
}


def parse_jdbc_url(text: str) -> tuple[str, str, int, str | None, dict[str, str]]:
    """``jdbc:<engine>://host[:port][/database][?k=v&k=v | ;k=v]`` -> engine,
    host, port (the engine's default when absent), database and the parameters
    (keys lower-cased). Raises ``ActivityError(InvalidField)``; the message never
    quotes the URL (it may carry a password)."""
    jdbc = text.strip().lower().startswith("jdbc:")
    engine = _SCHEMES.get(scheme(text)) if jdbc else None
    if engine is None:
        raise ActivityError(
            "InvalidField",
            "connectionString must start with jdbc:postgresql://, jdbc:mysql://, "
            f"jdbc:mariadb:// or jdbc:redshift://, not {scheme(text)[:40]!r}",
        )
    rest = text.strip()[len("jdbc:") :]
    base, _, tail = rest.partition(";")
    parts = urlsplit(base)
    params: dict[str, str] = {}
    for pair in [*parts.query.split("&"), *tail.split(";")]:
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            params[key.strip().lower()] = unquote(value.strip())
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or "," in parts.netloc:
        raise ActivityError(
            "InvalidField", "connectionString needs one host (jdbc:ENGINE://HOST...)"
        )
    if parts.username:
        params.setdefault("user", unquote(parts.username))
        params.setdefault("password", unquote(parts.password or ""))
    database = unquote(parts.path.lstrip("/")) or None
    return engine, host, port or DEFAULT_PORTS[engine], database, params


def scheme(text: str) -> str:
    head = text.strip()
    if not head.lower().startswith("jdbc:"):
        return head.split(":", 1)[0].lower()
    return head[5:].split(":", 1)[0].lower()


def driver_options(params: Mapping[str, str], engine: str) -> dict[str, str]:
    """JDBC parameters -> the options the child maps to its driver. Unknown
    parameters are listed under ``ignored`` (comma-separated)."""
    options: dict[str, str] = {}
    ignored: list[str] = []
    for key, value in params.items():
        if not _map_option(options, key, value, engine):
            ignored.append(key)
    if ignored:
        options["ignored"] = ",".join(sorted(ignored))
    return options


def _map_option(options: dict[str, str], key: str, value: str, engine: str) -> bool:
    """One JDBC parameter into ``options``; False when dp-runner does not map it."""
    low = value.strip().lower()
    if key == "sslmode" and low in _SSL_MODES:
        options["ssl"] = low
    elif key == "sslmode" and low in _MYSQL_SSL:
        options["ssl"] = _MYSQL_SSL[low]
    elif key in ("ssl", "usessl", "requiressl"):
        strict = "verify-full" if engine == "postgresql" else "require"
        options.setdefault("ssl", strict if low == "true" else "disable")
    elif key in ("sslrootcert", "sslca", "serversslcert"):
        options["ssl_ca"] = value
    elif key in ("connecttimeout", "logintimeout"):
        seconds = _number(key, value)
        # Connector/J counts milliseconds, pgjdbc and Redshift seconds
        options["connect_timeout_s"] = str(
            seconds / 1000 if engine == "mysql" else seconds
        )
    elif key == "sockettimeout" and engine == "mysql":
        options["read_timeout_s"] = str(_number(key, value) / 1000)
    elif key == "applicationname":
        options["application_name"] = value
    elif key == "characterencoding":
        options["charset"] = "utf8mb4" if low in ("utf-8", "utf8") else low
    else:
        return False
    return True


def _number(key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ActivityError(
            "InvalidField", f"{key}: {value!r} is not a number"
        ) from None
