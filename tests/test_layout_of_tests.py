"""The suite's own layout: what tests share lives in tests/support/, so no test
module imports another test module or a conftest (whose helpers would then be
reachable only by importing a file pytest also loads as a plugin)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imports_of_tests(path: Path) -> list[str]:
    """Every ``tests.*`` module that ``path`` imports, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append("." * node.level + (node.module or ""))
            elif node.module:
                found.append(node.module)
    return [name for name in found if name.startswith(("tests", "."))]


def allowed(module: str) -> bool:
    return module == "tests.support" or module.startswith("tests.support.")


def test_modules_import_shared_code_only_from_tests_support() -> None:
    wrong = {
        str(path.relative_to(TESTS)): bad
        for path in sorted(TESTS.rglob("*.py"))
        if (bad := [m for m in imports_of_tests(path) if not allowed(m)])
    }
    assert wrong == {}


def test_the_check_sees_an_import_of_a_test_module(tmp_path: Path) -> None:
    module = tmp_path / "test_x.py"
    module.write_text(
        "from tests.support.waiting import wait_for\n"
        "def f():\n"
        "    from tests.test_daemon import statuses_sent\n"
        "    import tests.conftest\n"
        "    from . import helpers\n"
    )
    found = imports_of_tests(module)
    assert [m for m in found if not allowed(m)] == [
        "tests.test_daemon",
        "tests.conftest",
        ".",
    ]
