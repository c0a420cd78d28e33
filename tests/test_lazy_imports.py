"""What ``dp-runner run`` imports: the daemon must not pay for ``run --local``.

The local service (HTTP server, expression parser) costs about 2 MB of RSS; the idle
daemon's budget is 62 MB (bench/bench_worker.py). sqlite3 is the daemon's own since
the crash journal (about 1.4 MB of it). Each check imports in a fresh interpreter,
so modules loaded by other tests cannot hide a regression.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.runners import REPO

#: Loaded only by ``run --local`` and ``dp-runner local``, and (the HTTP server and
#: prometheus-client) by a runner with ``http_address``.
LOCAL_ONLY = (
    "runner.localservice",
    "http.server",
    "socketserver",
    "prometheus_client",
    "runner.health",
    "runner.metrics",
)


#: What serving costs (the daemon, boto3, pydantic: about 0.7 s of CPU): loaded only
#: when a command that needs it runs, never to build the command line, so that
#: ``--version``, ``--help``, ``export`` and ``local`` start in a tenth of that.
SERVING = (
    "runner.daemon",
    "runner.execone",
    "runner.localrun",
    "runner.config",
    "boto3",
    "pydantic",
)


def loaded_after(statement: str, names: tuple[str, ...] = LOCAL_ONLY) -> set[str]:
    """The modules of ``names`` that a fresh interpreter holds after
    ``statement``."""
    probe = (
        f"import json, sys\n{statement}\n"
        f"print(json.dumps([m for m in {list(names)!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return set(json.loads(done.stdout))


def test_the_cli_does_not_import_the_local_service() -> None:
    assert loaded_after("import runner.cli") == set()


def test_the_command_line_is_built_without_what_serving_needs() -> None:
    assert loaded_after("import runner.cli", SERVING) == set()
    assert loaded_after("from runner import execone", SERVING) == set(SERVING)


def test_the_daemon_does_not_import_prometheus_client_until_asked() -> None:
    assert loaded_after("from runner import daemon, probes") == set()
    asked = loaded_after("from runner import health, metrics")
    assert {"prometheus_client", "http.server"} <= asked


def test_the_embedded_service_is_imported_when_started() -> None:
    started = loaded_after(
        "from runner import localrun\n"
        "service = localrun.start_service(1.0)\n"
        "service.stop()"
    )
    assert "runner.localservice" in started


def test_the_healthcheck_probe_imports_neither_pydantic_nor_boto3(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('worker_groups = ["wg"]\nhttp_address = "127.0.0.1:1"\n')
    heavy = ("pydantic", "boto3", "botocore", "click", "structlog", "runner.config")
    probe = (
        "import json, sys\n"
        f"sys.argv = ['dp-runner', 'healthcheck', '--config', {str(config)!r}]\n"
        "from runner.__main__ import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        f"print(json.dumps([code, [m for m in {heavy!r} if m in sys.modules]]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(done.stdout.splitlines()[-1]) == [1, []]
    assert "127.0.0.1:1/healthz: [Errno 111] Connection refused" in done.stderr
