"""Errors become exit codes in one place, ``cli.py``, through one table (issue 23).

The scan reads every module of ``runner/`` and fails on an exit (``sys.exit``,
``os._exit``, ``raise SystemExit``) or an exit code (``.exit_code``, ``EX_CONFIG``,
``EX_TEMPFAIL``) anywhere but ``cli/`` (and ``errors.py``, which names the
numbers). The database child is its own program, run as a separate process: its
``main`` exits with its own status (``dbchild/``); so does the healthcheck probe.
"""

from __future__ import annotations

import ast
from pathlib import Path

from runner import cli
from runner.errors import (
    ConfigError,
    CredentialsRejectedError,
    HostFaultError,
    RejectedRequestError,
    RunnerError,
)
from runner.localservice.startup import StartupError
from runner.pipelinefile import DefinitionError

RUNNER = Path(cli.__file__).parents[1]
#: Other programs: the database child (``dbchild/``) exits with its own status, and
#: ``dp-runner healthcheck`` branches off in ``__main__`` to ``healthprobe`` before
#: click (and so ``cli.py``) is imported: the probe runs every few seconds.
OTHER_PROGRAMS = {RUNNER / "__main__.py", RUNNER / "healthprobe.py"}
EXIT_NAMES = {"EX_CONFIG", "EX_TEMPFAIL"}


def exits_in(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = f"{getattr(owner, 'id', '?')}.{node.func.attr}"
            if name in {"sys.exit", "os._exit"}:
                found.append(f"{path.name}:{node.lineno} {name}")
        elif isinstance(node, ast.Raise) and "SystemExit" in ast.dump(node):
            found.append(f"{path.name}:{node.lineno} raise SystemExit")
        elif isinstance(node, ast.Attribute) and node.attr == "exit_code":
            found.append(f"{path.name}:{node.lineno} .exit_code")
        elif isinstance(node, ast.Name) and node.id in EXIT_NAMES:
            found.append(f"{path.name}:{node.lineno} {node.id}")
    return found


def test_only_cli_exits_or_maps_an_error_to_an_exit_code() -> None:
    allowed = {RUNNER / "errors.py"} | OTHER_PROGRAMS
    modules = [
        p
        for p in sorted(RUNNER.rglob("*.py"))
        if p not in allowed and not {"dbchild", "cli"} & set(p.parts)
    ]
    assert len(modules) > 50  # the scan sees the package
    found = [hit for path in modules for hit in exits_in(path)]
    assert found == []


def test_the_scan_finds_an_exit(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("import sys\nsys.exit(3)\nx = err.exit_code\n")
    assert exits_in(module) == ["bad.py:2 sys.exit", "bad.py:3 .exit_code"]


def test_one_table_maps_every_error() -> None:
    assert cli.exit_code(HostFaultError("full")) == 75
    assert cli.exit_code(ConfigError("bad")) == 78
    assert cli.exit_code(DefinitionError("x.json: bad")) == 78
    assert isinstance(DefinitionError("x"), ConfigError)
    assert cli.exit_code(StartupError("port in use")) == 78
    assert cli.exit_code(RunnerError("bug")) == 1
    assert cli.exit_code(ValueError("bug")) == 1
    assert issubclass(CredentialsRejectedError, RejectedRequestError)
