"""The maps of the code that a reader and the import contracts rely on cannot drift
from the tree.

- The layout table of ``docs/development.md`` has one row per module under
  ``runner/``: a module without a row fails, and so does a row for a module that is
  gone.
- The import contracts that name runner modules one by one (pyproject.toml) name
  every one: "the local service is an island" forbids each runner module that is not
  the local service, and the two "only ... imports" contracts list every module that
  must keep out of click and boto3. A module added to ``runner/`` and missing from a
  list would otherwise be free to break the rule the list stands for.

Both read the tree, so a new module fails here until its row and its contract
entries are written.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from tests.support.runners import REPO

RUNNER = REPO / "runner"
LAYOUT_PAGE = REPO / "docs" / "development.md"
ROW = re.compile(r"^\| `(runner/[^`]+\.py)` \| [^|]*\S[^|]* \|$", re.MULTILINE)


def modules_in_tree() -> set[str]:
    return {str(p.relative_to(REPO)) for p in RUNNER.rglob("*.py")}


def modules_in_layout() -> list[str]:
    text = LAYOUT_PAGE.read_text()
    section = text[text.index("## Code layout") :]
    return ROW.findall(section)


def top_level_modules() -> set[str]:
    """runner.X for each module runner/X.py and each package runner/X/."""
    found = {f"runner.{p.stem}" for p in RUNNER.glob("*.py") if p.stem != "__init__"}
    found |= {f"runner.{p.parent.name}" for p in RUNNER.glob("*/__init__.py")}
    return found


def contract(name: str) -> dict[str, Any]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    (found,) = [
        c for c in config["tool"]["importlinter"]["contracts"] if c["name"] == name
    ]
    return found


def test_every_module_has_one_row_in_the_layout() -> None:
    rows = modules_in_layout()
    doubled = {row for row in rows if rows.count(row) > 1}
    assert not doubled, f"modules with more than one row: {sorted(doubled)}"
    missing = modules_in_tree() - set(rows)
    assert not missing, f"modules missing from docs/development.md: {sorted(missing)}"
    gone = set(rows) - modules_in_tree()
    assert not gone, f"rows in docs/development.md for no module: {sorted(gone)}"


def test_the_local_service_is_an_island_from_every_runner_module() -> None:
    island = contract("the local service is an island")
    assert island["source_modules"] == ["runner.localservice"]
    runner_modules = top_level_modules() - {"runner.localservice"}
    missing = runner_modules - set(island["forbidden_modules"])
    assert not missing, f"the island contract does not forbid {sorted(missing)}"


def test_only_cli_imports_click_lists_every_other_module() -> None:
    sources = set(contract("only cli imports click")["source_modules"])
    # cli.py is the one that may, and __main__.py runs it.
    missing = top_level_modules() - {"runner.cli", "runner.__main__"} - sources
    assert not missing, f"'only cli imports click' does not cover {sorted(missing)}"


def test_only_aws_talks_to_aws_lists_every_other_module() -> None:
    name = "only aws/ talks to AWS (the local service keeps its own calls)"
    sources = set(contract(name)["source_modules"])
    allowed = {"runner.aws", "runner.localservice", "runner.__main__"}
    missing = top_level_modules() - allowed - sources
    assert not missing, f"'only aws/ talks to AWS' does not cover {sorted(missing)}"


def test_a_row_says_what_the_module_owns() -> None:
    """The table's rows are read by the pattern above: a row it cannot read would
    be a module the test above reports as missing, so check the pattern reads all."""
    text = LAYOUT_PAGE.read_text()
    section = text[text.index("## Code layout") :]
    table_rows = [
        line for line in section.splitlines() if line.startswith("| `runner/")
    ]
    assert len(table_rows) == len(modules_in_layout())
