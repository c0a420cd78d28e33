"""The database child's password against a hostile task of the same user (issue 25).

The child runs as ``nobody`` under the real supervisor and hand-off, and is held at
its handshake (non-dumpable, ready to say so, the job still in the runner) and then
again with the job in its memory. All the while a second process of ``nobody``
polls the child's ``/proc/<pid>/fd/*``, ``mem``, ``environ``, ``cmdline`` and the
files of its working folder (``cwd``). It
finds no password, then or later. The same probe against a dumpable process of
``nobody`` that holds the password in its memory finds it: the probe can fail.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from runner.runas import resolve
from runner.supervisor import Supervisor
from tests.support.dbservers import DbServer
from tests.support.sqltasks import running_sleeps
from tests.support.users import NOBODY
from tests.support.waiting import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

#: The probe, as nobody: every way into the child it tries, again and again, until
#: the stop file appears; prints the hits (the password seen) and what it tried.
PROBE = r"""
import json, os, re, sys
pid, password, stop = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]
first = sys.argv[4]
hits, reads, rounds = [], {}, 0
def look(name, data):
    reads[name] = reads.get(name, 0) + 1
    if password in data:
        hits.append(name)
def read(path):
    with open(path, "rb") as f:
        return f.read()
def memory():
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb") as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) r", line)
            if not m:
                continue
            start, end = int(m[1], 16), int(m[2], 16)
            try:
                mem.seek(start)
                look("mem", mem.read(end - start))
            except (OSError, OverflowError, ValueError):
                pass
while not os.path.exists(stop) or rounds < 3:
    rounds += 1
    for name in ("environ", "cmdline"):
        try:
            look(name, read(f"/proc/{pid}/{name}"))
        except OSError:
            pass
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                look("fd", read(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                pass
    except OSError:
        pass
    try:
        memory()
    except OSError:
        pass
    try:  # the work folder, through the child's cwd
        for name in os.listdir(f"/proc/{pid}/cwd"):
            try:
                look("cwd", read(f"/proc/{pid}/cwd/{name}"))
            except OSError:
                pass
    except OSError:
        pass
    open(first, "w").close()  # a whole round done
print(json.dumps({"hits": sorted(set(hits)), "reads": reads, "rounds": rounds}))
"""

#: The held child: the real hand-off (handshake.py), with two holds the test opens.
HELD_CHILD = r"""
import os, sys, threading
from runner.dbchild import handshake
handshake.make_undumpable()
folder = sys.argv[1]
def hold(mark, release):
    open(os.path.join(folder, mark), "w").close()
    while not os.path.exists(os.path.join(folder, release)):
        threading.Event().wait(0.02)
hold("at-handshake", "send")
job = handshake.receive_job()
hold("has-job", "end")
print(len(job))
"""

#: The control: a dumpable process of nobody with the password in its memory only
#: (argv holds it reversed).
DUMPABLE = r"""
import os, sys, threading
secret = sys.argv[1][::-1]
open(os.path.join(sys.argv[2], "has-job"), "w").close()
while not os.path.exists(os.path.join(sys.argv[2], "end")):
    threading.Event().wait(0.02)
print(len(secret))
"""


@pytest.fixture
def folder() -> Iterator[Path]:
    made = Path(tempfile.mkdtemp(dir="/tmp"))
    os.chown(made, NOBODY, NOBODY)
    yield made
    subprocess.run(["rm", "-rf", str(made)], check=False)


def wait_file(path: Path, child: Supervisor) -> None:
    deadline = threading.Event()
    for _ in range(1500):
        if path.exists():
            return
        assert child.poll_nowait() is None, f"the child ended before {path.name}"
        deadline.wait(0.02)
    raise AssertionError(f"{path.name} never appeared")


def probed_again(folder: Path, child: Supervisor) -> None:
    """Until the probe has made a whole round from now on (the first mark may
    end a round begun before)."""
    for _ in range(2):
        (folder / "end.probed").unlink(missing_ok=True)
        wait_file(folder / "end.probed", child)


ProbeStarter = Callable[[str, int, str, Path], "subprocess.Popen[str]"]


@pytest.fixture
def start_probe() -> Iterator[ProbeStarter]:
    """Starts the probe as nobody; whatever a failing test left running is killed
    and reaped at teardown, its pipes closed."""
    started: list[subprocess.Popen[str]] = []

    def start(
        python: str, pid: int, password: str, stop: Path
    ) -> subprocess.Popen[str]:
        probe = subprocess.Popen(
            [python, "-c", PROBE, str(pid), password, str(stop), str(stop) + ".probed"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd="/",
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
        )
        started.append(probe)
        return probe

    yield start
    for probe in started:
        if probe.poll() is None:
            probe.kill()
        probe.communicate()


def finish_probe(probe: subprocess.Popen[str]) -> dict[str, object]:
    out, err = probe.communicate(timeout=120)
    assert probe.returncode == 0, err
    found: dict[str, object] = json.loads(out)
    return found


def spawn(
    python: str, code: str, args: list[str], folder: Path, job: bytes | None
) -> Supervisor:
    return Supervisor.spawn(
        [python, "-c", code, *args],
        cwd=folder,
        env={"PATH": "/usr/bin:/bin"},
        stdout=folder / "out",
        stderr=folder / "err",
        # One per spawn: as root, a stop sweeps every process that carries its
        # marker, and this file's tests may run at once on other workers.
        marker=f"test-secret-handoff-{secrets.token_hex(6)}",
        log=structlog.get_logger(),
        run_as=resolve("nobody"),
        stdin=job,
    )


def test_a_same_user_probe_never_reads_the_childs_password(
    nobody_python: str, folder: Path, start_probe: ProbeStarter
) -> None:
    password = "pw-" + secrets.token_hex(12)
    job = json.dumps({"connection": {"password": password}}).encode()
    child = spawn(nobody_python, HELD_CHILD, [str(folder)], folder, job)
    try:
        wait_file(folder / "at-handshake", child)
        probe = start_probe(nobody_python, child.pid, password, folder / "end")
        wait_file(folder / "end.probed", child)  # a whole round at the handshake
        (folder / "send").touch()  # the handshake goes on while the probe polls
        wait_file(folder / "has-job", child)
        probed_again(folder, child)  # a whole round with the job in the child
        (folder / "end").touch()
        found = finish_probe(probe)
        outcome = child.wait_exit(30)
    finally:
        child.terminate(5)
    assert outcome is not None
    assert outcome.returncode == 0, (folder / "err").read_text()
    assert (folder / "out").read_text() == f"{len(job)}\n"  # it got the job, whole
    assert found["hits"] == [], found
    assert found["reads"].get("cmdline", 0) > 0, found  # type: ignore[union-attr]
    assert "cwd" not in found["reads"], found  # not even listed: non-dumpable


def test_the_probe_finds_a_password_in_a_dumpable_process(
    nobody_python: str, folder: Path, start_probe: ProbeStarter
) -> None:
    password = "pw-" + secrets.token_hex(12)
    child = spawn(nobody_python, DUMPABLE, [password[::-1], str(folder)], folder, None)
    try:
        wait_file(folder / "has-job", child)
        probe = start_probe(nobody_python, child.pid, password, folder / "end")
        probed_again(folder, child)
        (folder / "end").touch()
        found = finish_probe(probe)
    finally:
        child.terminate(5)
    assert "mem" in found["hits"], found  # type: ignore[operator]
    assert found["reads"].get("cwd", 0) > 0, found  # type: ignore[union-attr]


def test_the_real_child_as_nobody_keeps_its_password_while_it_works(
    nobody_python: str, folder: Path, pg_db: DbServer, start_probe: ProbeStarter
) -> None:
    """``python -m runner.dbchild`` itself, as nobody, connected and running a
    statement (the password in its memory and in libpq's): the probe reads no
    password, and the statement ends on the server when the child is stopped."""
    job = {
        "kind": "sql",
        "connection": {
            "engine": "postgresql",
            "host": pg_db.host,
            "port": pg_db.port,
            "database": pg_db.database,
            "user": pg_db.user,
            "password": pg_db.password,
            "options": {},
        },
        "script": "SELECT pg_sleep(60)",
        "result_path": str(folder / "result.json"),
    }
    child = Supervisor.spawn(
        [nobody_python, "-m", "runner.dbchild"],
        cwd=folder,
        env={"PATH": "/usr/bin:/bin"},
        stdout=folder / "out",
        stderr=folder / "err",
        marker=f"test-secret-dbchild-{secrets.token_hex(6)}",
        log=structlog.get_logger(),
        run_as=resolve("nobody"),
        stdin=json.dumps(job).encode(),
    )
    try:
        wait_for(lambda: running_sleeps(pg_db), 30, "the statement on the server")
        probe = start_probe(nobody_python, child.pid, pg_db.password, folder / "end")
        probed_again(folder, child)
        (folder / "end").touch()
        found = finish_probe(probe)
    finally:
        child.terminate(5)
    wait_for(lambda: not running_sleeps(pg_db), 5, "the statement to be gone")
    assert found["hits"] == [], found
    assert pg_db.password not in (folder / "out").read_text()


def test_a_ready_byte_from_a_dumpable_child_gets_no_job(
    nobody_python: str, folder: Path
) -> None:
    """The runner believes the kernel, not the byte: a child (or a process that
    took its socket) that says ready while still dumpable gets nothing."""
    code = "from runner.dbchild import handshake; print(len(handshake.receive_job()))"
    child = spawn(nobody_python, code, [], folder, b'{"connection": {"password": "x"}}')
    try:
        outcome = child.wait_exit(60)
    finally:
        child.terminate(5)
    assert outcome is not None
    assert outcome.returncode == 0, (folder / "err").read_text()
    assert (folder / "out").read_text() == "0\n"
