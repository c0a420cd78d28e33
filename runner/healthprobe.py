"""``dp-runner healthcheck``: the cheap probe a container or a unit runs every few
seconds.

Owns: reading the listener's address (``--http-address``, then
``DP_RUNNER_HTTP_ADDRESS``, then ``http_address`` in the ``--config`` or
``DP_RUNNER_CONFIG`` TOML file: the daemon's order), asking ``/healthz`` (or
``/readyz`` with ``--ready``), and the exit status: 0 healthy, 1 anything else,
with one line that says why.

Must not: import pydantic, boto3, click or anything of ``runner`` beyond the
standard library (``runner.__main__`` branches here before the command line is
imported; ``tests/test_lazy_imports.py`` holds it), and never go through a proxy.

Why apart from ``cli/``: Kubernetes and ECS run the probe every 10 to 30 s. The
full command line costs 0.4 to 0.6 s and 53 to 58 MB a probe (pydantic, boto3, click);
this module costs the interpreter and ``tomllib``, measured in
``bench/bench_healthcheck.py``. The address is all it needs, so it reads only that
setting, with the daemon's precedence, and validates only that.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping, Sequence

USAGE = """\
Usage: dp-runner healthcheck [--config PATH] [--http-address HOST:PORT] [--ready]

  Exit 0 when the runner at http_address is healthy, else 1.

Options:
  --config PATH             TOML file (config.example.toml).
  --http-address HOST:PORT  The runner's listener.
  --ready                   Ask /readyz rather than /healthz.
  -h, --help                Show this message and exit.
"""
#: How long the probe waits for the listener (connect, and each read).
TIMEOUT_S = 5.0
#: The answer's status line and a little of its body is all the probe reads.
_READ_LIMIT = 4096
#: A listener on every address is asked on loopback.
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - matched, not bound


#: Exit statuses: healthy, not, a flag it does not know, and no address to ask
#: (a configuration error: 78, as ``dp-runner run`` exits for the same setting).
EXIT_HEALTHY, EXIT_UNHEALTHY, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 78


class ProbeError(Exception):
    """The probe cannot ask: a bad or missing address, a bad file."""


class UsageError(ProbeError):
    """An unknown flag, or a flag without its value."""


def split_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``[V6]:PORT``) as a host and a port; ``ValueError`` when
    it is not one (``config.split_http_address``'s rule)."""
    host, colon, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError("must be HOST:PORT, for example 127.0.0.1:9102")
    return host, int(port)


def parse_args(argv: Sequence[str]) -> dict[str, str | bool]:
    """The flags as a dict (``config``, ``http_address``, ``ready``, ``help``).
    Raises ``UsageError`` for an unknown flag or a missing value."""
    found: dict[str, str | bool] = {"ready": False, "help": False}
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, equals, value = arg.partition("=")
        if arg in ("-h", "--help"):
            found["help"] = True
        elif arg == "--ready":
            found["ready"] = True
        elif name in ("--config", "--http-address"):
            if not equals:
                if not args:
                    raise UsageError(f"{name} needs a value")
                value = args.pop(0)
            found[name[2:].replace("-", "_")] = value
        else:
            raise UsageError(f"no such option: {arg}")
    return found


def address(flags: Mapping[str, str | bool], environ: Mapping[str, str]) -> str:
    """The listener's address and where it came from, with the daemon's
    precedence: flag > environment > TOML. Raises ``ProbeError``."""
    flag = flags.get("http_address")
    if isinstance(flag, str):
        return _checked(flag, "--http-address")
    if "DP_RUNNER_HTTP_ADDRESS" in environ:
        return _checked(environ["DP_RUNNER_HTTP_ADDRESS"], "DP_RUNNER_HTTP_ADDRESS")
    config = flags.get("config") or environ.get("DP_RUNNER_CONFIG")
    if isinstance(config, str) and config:
        value = _from_toml(config)
        if value is not None:
            return _checked(value, config)
    raise ProbeError(
        "http_address is not set (--http-address, DP_RUNNER_HTTP_ADDRESS or the "
        "config file)"
    )


def _checked(value: str, source: str) -> str:
    try:
        split_address(value)
    except ValueError as exc:
        raise ProbeError(f"http_address={value} from {source}: {exc}") from None
    return value


def _from_toml(path: str) -> str | None:
    import tomllib  # noqa: PLC0415 - only when a file is given

    try:
        with open(path, "rb") as handle:
            value = tomllib.load(handle).get("http_address")
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProbeError(f"config file {path}: {exc}") from None
    if value is not None and not isinstance(value, str):
        raise ProbeError(f"http_address in {path}: must be a string")
    return value


def check(
    host: str, port: int, path: str, timeout_s: float = TIMEOUT_S
) -> tuple[bool, str]:
    """GET ``path`` from a runner's listener, never through a proxy: healthy on
    a 200; the status and the first line of the body, or why it failed."""
    host = _LOOPBACK.get(host, host)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    request = f"GET {path} HTTP/1.0\r\nHost: {where}\r\n\r\n".encode()
    # an ASCII host as bytes: a str is encoded with the idna codec, whose imports
    # (unicodedata, stringprep) cost the probe more than the rest of its work
    name = host.encode("ascii") if host.isascii() else host
    try:
        with socket.create_connection((name, port), timeout=timeout_s) as sock:  # type: ignore[arg-type]
            sock.sendall(request)
            answer = _read(sock)
    except OSError as exc:
        return False, f"{where}{path}: {exc}"
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return False, f"{where}{path}: not an HTTP answer: {status_line[:80]!r}"
    text = body.decode("utf-8", "replace").strip()
    return parts[1] == "200", f"{parts[1]} {text}"


def _read(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < _READ_LIMIT:
        chunk = sock.recv(_READ_LIMIT - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def main(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> int:
    """Run the probe; the exit status. Writes one line: to stdout when healthy,
    to stderr otherwise."""
    try:
        flags = parse_args(argv)
        if flags["help"]:
            sys.stdout.write(USAGE)
            return EXIT_HEALTHY
        host, port = split_address(address(flags, environ))
    except ProbeError as exc:
        sys.stderr.write(f"dp-runner healthcheck: {exc}\n")
        if isinstance(exc, UsageError):
            sys.stderr.write(USAGE)
            return EXIT_USAGE
        return EXIT_CONFIG
    ok, why = check(host, port, "/readyz" if flags["ready"] else "/healthz")
    (sys.stdout if ok else sys.stderr).write(f"dp-runner healthcheck: {why}\n")
    return EXIT_HEALTHY if ok else EXIT_UNHEALTHY
