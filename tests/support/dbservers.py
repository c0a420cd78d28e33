"""pytest fixtures for real database servers: a private PostgreSQL and a private
MariaDB, each started once per session in a folder of its own under /tmp.

Load it from the root conftest with ``pytest_plugins = ["tests.support.dbservers"]``.

``postgres_server`` runs ``initdb`` and ``postgres`` (the binaries on PATH or under
/usr/lib/postgresql), ``mariadb_server`` runs ``mariadb-install-db`` and
``mariadbd --no-defaults``: on 127.0.0.1, ports chosen by the OS, sockets in their
folder, data dirs from ``mkdtemp(dir="/tmp")``. As root (CI), each server runs as
its system user (``runuser -u postgres``, ``--user=mysql``) and its folder is
chowned to it. Each has a login ``dp`` with a password, so connections authenticate
for real. A missing server FAILS the test that needs it, with what to install: CI
must never pass by skipping (``scripts/install-test-deps.sh`` installs both).

``pg_db`` and ``mysql_db`` (function) are a fresh database on each server, owned by
``dp``; ``DbServer.admin()`` is a superuser connection for inspecting it (the
process list, a table's rows).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

PG_BIN_DIRS = ["/usr/local/bin", *sorted(Path("/usr/lib/postgresql").glob("*/bin"))]
START_TIMEOUT_S = 60.0
MARIADBD_PATHS = ("/usr/sbin/mariadbd", "/usr/libexec/mariadbd")


@dataclass(frozen=True)
class DbServer:
    """One running server and the database a test uses on it."""

    engine: str  # "postgresql" | "mysql"
    host: str
    port: int
    user: str
    password: str
    database: str
    folder: Path
    admin_kwargs: dict[str, Any]

    @property
    def url(self) -> str:
        scheme = "postgresql" if self.engine == "postgresql" else "mysql"
        return f"jdbc:{scheme}://{self.host}:{self.port}/{self.database}"

    def admin(self, database: str | None = None) -> Any:
        """A superuser connection (autocommit) to ``database`` (this one)."""
        name = database or self.database
        if self.engine == "postgresql":
            return psycopg.connect(**self.admin_kwargs, dbname=name, autocommit=True)
        return pymysql.connect(**self.admin_kwargs, database=name, autocommit=True)

    @property
    def connection(self) -> dict[str, Any]:
        """The job's ``connection`` the database child takes for this database
        (``dbsession.connect``), as the test user."""
        return {
            "engine": self.engine,
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
        }

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Rows of ``sql``, run as the superuser on this database."""
        conn = self.admin()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_root() -> bool:
    return os.geteuid() == 0


def _folder(owner: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=f"dp-{owner}-", dir="/tmp"))
    if _as_root():
        user = pwd.getpwnam(owner)
        os.chown(folder, user.pw_uid, user.pw_gid)
    return folder


def _as_user(owner: str, argv: list[str]) -> list[str]:
    if not _as_root():
        return argv
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.fail("tests run as root and need runuser (util-linux) to start servers")
    return [runuser, "-u", owner, "--", *argv]


def _owned_by(owner: str) -> dict[str, Any]:
    """``Popen`` arguments that run the child as ``owner`` when we are root."""
    if not _as_root():
        return {}
    user = pwd.getpwnam(owner)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _wait_ready(connect: Any, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            connect().close()
        except Exception as exc:  # noqa: BLE001 - not up yet, whatever it says
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"database server did not start ({exc}):\n{_tail(log)}")
            time.sleep(0.1)
        else:
            return


class _Probe:
    def close(self) -> None:
        pass


def _listening(sock: Path) -> _Probe:
    if not sock.exists():
        raise FileNotFoundError(sock)
    return _Probe()


def _tail(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-3000:]
    return ""


def _stop(process: subprocess.Popen[bytes], signum: int) -> None:
    if process.poll() is None:
        process.send_signal(signum)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _pg_binary(name: str) -> str:
    for folder in PG_BIN_DIRS:
        path = Path(folder) / name
        if path.exists():
            return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"PostgreSQL's {name} was not found (looked in {PG_BIN_DIRS} and PATH): "
            "install the postgresql server package"
        )
    return found


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[DbServer]:
    """A private PostgreSQL for the session, with a login ``dp``."""
    with running_postgres() as server:
        yield server


@contextlib.contextmanager
def running_postgres() -> Iterator[DbServer]:
    """A private PostgreSQL until the ``with`` ends (the benchmark uses it too)."""
    initdb, postgres = _pg_binary("initdb"), _pg_binary("postgres")
    folder = _folder("postgres")
    data, log = folder / "data", folder / "server.log"
    superpass = secrets.token_hex(8)
    (folder / "pw").write_text(superpass)
    if _as_root():
        os.chown(folder / "pw", pwd.getpwnam("postgres").pw_uid, -1)
    subprocess.run(
        _as_user(
            "postgres",
            [
                *(initdb, "-D", str(data), "-U", "postgres"),
                *("--pwfile", str(folder / "pw"), "-E", "UTF8"),
                *("--auth-host=scram-sha-256", "--auth-local=trust"),
            ],
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    argv = [postgres, "-D", str(data), "-k", str(folder), "-p", str(port)]
    argv += ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
    with log.open("wb") as out:
        # postgres itself is the child (not runuser, which does not pass SIGINT on):
        # the stop's SIGINT is its fast shutdown, not a 20 s wait and a SIGKILL
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            **_owned_by("postgres"),
        )
    admin = {
        "host": "127.0.0.1",
        "port": port,
        "user": "postgres",
        "password": superpass,
    }
    try:
        _wait_ready(lambda: psycopg.connect(**admin, dbname="postgres"), process, log)
        password = "pg-" + secrets.token_hex(12)
        with psycopg.connect(**admin, dbname="postgres", autocommit=True) as conn:
            conn.execute(f"CREATE ROLE dp LOGIN PASSWORD '{password}'")
        yield DbServer(
            "postgresql", "127.0.0.1", port, "dp", password, "postgres", folder, admin
        )
    finally:
        _stop(process, signal.SIGINT)  # fast shutdown
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[DbServer]:
    """A private MariaDB for the session, with a login ``dp``."""
    with running_mariadb() as server:
        yield server


@contextlib.contextmanager
def running_mariadb() -> Iterator[DbServer]:
    """A private MariaDB until the ``with`` ends (the benchmark uses it too)."""
    install, mariadbd = shutil.which("mariadb-install-db"), shutil.which("mariadbd")
    if mariadbd is None:  # Debian keeps it in /usr/sbin, RHEL in /usr/libexec
        found = [p for p in MARIADBD_PATHS if Path(p).exists()]
        mariadbd = found[0] if found else None
    if install is None or mariadbd is None:
        pytest.fail(
            "MariaDB was not found (mariadb-install-db, mariadbd): install "
            "mariadb-server (sudo scripts/install-test-deps.sh does)"
        )
    folder = _folder("mysql")
    data, log, sock = folder / "data", folder / "server.log", folder / "sock"
    user = ["--user=mysql"] if _as_root() else []
    subprocess.run(
        [
            *(install, "--no-defaults", f"--datadir={data}", *user),
            *("--auth-root-authentication-method=normal", "--skip-test-db"),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    port = free_port()
    argv = [mariadbd, "--no-defaults", *user, f"--datadir={data}", f"--socket={sock}"]
    argv += [f"--port={port}", "--bind-address=127.0.0.1", f"--log-error={log}"]
    argv += [f"--pid-file={folder / 'pid'}", "--skip-log-bin", f"--tmpdir={folder}"]
    process = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    admin = {"unix_socket": str(sock), "user": "root", "password": ""}
    try:
        # PyMySQL leaks the socket of a refused connection: connect once it listens
        _wait_ready(lambda: _listening(sock), process, log)
        _wait_ready(lambda: pymysql.connect(**admin), process, log)
        password = "my-" + secrets.token_hex(12)
        conn = pymysql.connect(**admin, autocommit=True)
        with conn.cursor() as cur:
            cur.execute("CREATE USER 'dp'@'%%' IDENTIFIED BY %s", [password])
        conn.close()
        yield DbServer("mysql", "127.0.0.1", port, "dp", password, "", folder, admin)
    finally:
        _stop(process, signal.SIGTERM)
        shutil.rmtree(folder, ignore_errors=True)


def _fresh(server: DbServer) -> DbServer:
    name = "t_" + secrets.token_hex(6)
    conn = server.admin("postgres" if server.engine == "postgresql" else None)
    try:
        with conn.cursor() as cur:
            if server.engine == "postgresql":
                cur.execute(f"CREATE DATABASE {name} OWNER dp")
            else:
                cur.execute(f"CREATE DATABASE {name}")
                cur.execute(f"GRANT ALL ON {name}.* TO 'dp'@'%'")
    finally:
        conn.close()
    return replace(server, database=name)


@pytest.fixture
def pg_db(postgres_server: DbServer) -> DbServer:
    """A fresh PostgreSQL database owned by ``dp``."""
    return _fresh(postgres_server)


@pytest.fixture
def mysql_db(mariadb_server: DbServer) -> DbServer:
    """A fresh MariaDB database that ``dp`` may use."""
    return _fresh(mariadb_server)


@pytest.fixture(params=["postgresql", "mysql"])
def any_db(request: pytest.FixtureRequest) -> DbServer:
    """Each test that takes it runs once per server."""
    name = "pg_db" if request.param == "postgresql" else "mysql_db"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]
