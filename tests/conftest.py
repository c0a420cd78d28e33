"""Shared fixtures: the local service over real HTTP, and the runner as a process.

* ``clean_env`` (autouse): no AWS or DP_RUNNER_* setting of the machine leaks into a
  test, and boto3 signs with dummy keys (httpx ``clean_environ``).
* ``service``: a ``LocalService`` on 127.0.0.1 with an OS-chosen port and its clock
  scaled down, so that the 2-minute ack window is 1.2 s.
* ``dp``: a boto3 client for it, with botocore's retries off.
* ``spawn_runner``: ``python -m runner run`` as a real process against it, with short
  intervals; terminated and reaped at teardown (dramatiq ``start_cli``).

Two collection rules, so that no list of tests is kept by hand:

* ``slow``: a test that uses a fixture which starts a runner process or a server
  (``STARTERS``, directly or through another fixture), or sits in a module that
  imports a helper which does (``STARTER_HELPERS``: ``REPO`` among them, the
  checkout a test starts this project from) or that starts ``python -m runner``
  itself (``RUNS_THE_RUNNER``). ``make test-fast`` runs the others.
* ``xdist_group``: the tests of a module that share a module-scoped fixture run
  on one xdist worker, which sets it up once (the module's own group), such as
  AWS's samples through the aws CLI. The database tests are not grouped: each
  worker starts its own private servers (session fixtures, OS-chosen ports, data
  dirs of their own) in a few seconds, and the tests spread over every worker
  instead of queueing on one (tests/support/groups.py stops a run whose groups
  xdist cannot see).

``leases_hold`` (a mark) gives a test a ``service`` whose lease windows run at 1x,
so that no lease lapses during the test whatever the machine's speed.
``time_scale(x)`` (a mark, with ``leases_hold``) sets the rest of that service's
clock (retry delays, schedules) to ``x`` instead of ``TIME_SCALE``: a test that
waits out an AWS sample's default retries (three attempts, 10 minutes apart)
waits 1.2 s at 0.001 instead of 12 s.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from hypothesis import settings as hypothesis_settings

from runner.localservice import LocalService
from tests.support.pipelines import REGION, TIME_SCALE
from tests.support.runners import REPO, RunnerProcess, run_local, runner_command

pytest_plugins = [
    "tests.support.imds",
    "tests.support.s3server",
    "tests.support.users",
    "tests.support.dbservers",
    "tests.support.harness",
    "tests.support.silents3",
    "tests.support.groups",
    "tests.support.samplehosts",
]

#: Fuzzing (tests/test_fuzz.py) the same way on every run and machine: no example
#: database, no deadline on a noisy host, 200 examples a target.
hypothesis_settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, max_examples=200
)
hypothesis_settings.load_profile("ci")


#: Fixtures that start a runner process or a server (the local service, moto, the
#: database servers, the metadata stand-in, the kill -9 harness, nobody's python).
STARTERS = frozenset(
    {
        "service",
        "spawn_runner",
        "spawn_runner_as",
        "harnessed",
        "postgres_server",
        "mariadb_server",
        "moto_server",
        "imds",
        "nobody_python",
    }
)
#: Helpers that start a runner process or a server when a test calls them, and the
#: checkout that a test starts this project's code from (the cwd of such processes).
STARTER_HELPERS = (LocalService, RunnerProcess, runner_command, run_local, REPO)
#: A module that starts the runner as a program by itself.
RUNS_THE_RUNNER = re.compile(r'"-m",\s*"runner"')


def _starts_something(item: pytest.Item) -> bool:
    if STARTERS.intersection(getattr(item, "fixturenames", ())):
        return True
    module = getattr(item, "module", None)
    if module is None:
        return False
    names = vars(module).values()
    if any(obj is helper for obj in names for helper in STARTER_HELPERS):
        return True
    return _runs_the_runner(module.__file__ or "")


@functools.cache
def _runs_the_runner(path: str) -> bool:
    return bool(path) and RUNS_THE_RUNNER.search(Path(path).read_text()) is not None


@pytest.hookimpl(tryfirst=True)  # before xdist's loadgroup reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _starts_something(item):
            item.add_marker(pytest.mark.slow)
        if _shares_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))


def _shares_a_module_fixture(item: pytest.Item) -> bool:
    """Whether ``item`` uses a module-scoped fixture: its module's tests then form
    one xdist group."""
    # pytest has no public view of a test's fixture definitions; this one is stable
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.values() if info is not None else ()
    return any(d.scope == "module" for defs in definitions for d in defs)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith(
            ("AWS_", "DP_RUNNER_", "NOTIFY_SOCKET", "WATCHDOG_", "STATE_DIRECTORY")
        ):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-creds"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def service(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LocalService]:
    hold = request.node.get_closest_marker("leases_hold") is not None
    scale = request.node.get_closest_marker("time_scale")
    svc = LocalService(
        host="127.0.0.1",
        port=0,
        state_path=tmp_path / "service.db",
        time_scale=TIME_SCALE if scale is None else float(scale.args[0]),
        poll_hold_s=0.5,
        runs_on_worker_group="local",
        lease_time_scale=1.0 if hold else None,
    )
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture
def dp(service: LocalService) -> Any:
    return boto3.client(
        "datapipeline",
        region_name=REGION,
        endpoint_url=service.endpoint_url,
        config=Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture
def spawn_runner(
    service: LocalService, tmp_path: Path
) -> Iterator[Callable[..., RunnerProcess]]:
    started: list[RunnerProcess] = []

    def spawn(*args: str, worker_group: str = "wg") -> RunnerProcess:
        work_dir = tmp_path / f"work{len(started)}"
        log_path = tmp_path / f"runner{len(started)}.log"
        command = runner_command(
            service.endpoint_url, work_dir, "--worker-group", worker_group, *args
        )
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
            )
        runner = RunnerProcess(process, log_path, work_dir)
        started.append(runner)
        return runner

    yield spawn
    for runner in started:
        if runner.process.poll() is None:
            runner.process.kill()
        runner.process.wait(10)
