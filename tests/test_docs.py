"""Every command the README and the docs pages show is run here, or carries a marker
that says why not.

A command block is a fenced block in ``sh`` (or ``bash``, ``shell``, ``console``),
at any indentation. Each runs with bash in a temporary folder (with ``examples`` and
``.venv`` linked in from the checkout) and a temporary HOME; the ports it names are
replaced by ports the OS chose, and the processes it starts in the background are
gone afterwards. A block that is not run carries, on the line above it, one of:

    <!-- needs: aws -->            a real AWS account
    <!-- needs: systemd -->        a host whose PID 1 is systemd, as root
    <!-- needs: docker -->         a Docker engine (none runs where the tests run;
                                   tests/test_container.py stands in for it)
    <!-- needs: valgrind, a quiet host -->  callgrind, and nothing else loading it
    <!-- is: the test suite -->    the suite this test is part of (make test, make docs)
    <!-- is: bench -->             a benchmark (minutes, and figures, not checks)
    <!-- is: an outline -->        commands to adapt, one process per host or terminal
    <!-- run by: tests/X.py -->    run, with the servers it needs, by that test file

A block neither run nor marked fails ``test_every_block_is_run_or_marked``, and a
command put in a ``text`` (or unnamed) block, where it would escape this test,
fails ``test_no_command_hides_in_a_text_block``. ``docs/incoming/`` holds notes for
pages to come: neither built nor tested. ``make demo`` runs with
``-o .venv/.installed``, so that it never rebuilds the venv this test runs in.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.support.runners import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
MARKERS = {
    "<!-- needs: aws -->",
    "<!-- needs: systemd -->",
    "<!-- needs: docker -->",
    "<!-- needs: valgrind, a quiet host -->",
    "<!-- is: the test suite -->",
    "<!-- is: bench -->",
    "<!-- is: an outline -->",
}
RUN_BY = re.compile(r"<!-- run by: (tests/[\w/]+\.py) -->")
#: A marker stands alone on its line (a table may show one in backticks).
COMMENT = re.compile(r"^ *(<!-- (?:needs|is|run by): [^>]*-->) *$", re.MULTILINE)
#: Ports a block may name; each is replaced by a free one.
PORTS = ("8765", "5000", "9102")
FENCE = re.compile(r"^( *)```([^`\n]*)\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
SHELL = {"sh", "bash", "shell", "console"}
#: How a command starts, to find one shown in a text block.
COMMAND = re.compile(
    r"^(\$ |sudo |make |dp-runner |\.venv/bin/|docker |aws |export |curl |pip |pipx )"
)
#: The longest front page the README may be (issue 21).
README_MAX_LINES = 250


class Block(NamedTuple):
    page: str
    line: int
    language: str
    marker: str | None
    body: str


def pages() -> list[Path]:
    """The README and every page of docs/, without the notes in docs/incoming/."""
    found = [README]
    for path in sorted(DOCS.rglob("*.md")):
        parts = path.relative_to(DOCS).parts
        if parts[0] not in {"incoming", "_build"}:
            found.append(path)
    return found


def blocks(path: Path) -> list[Block]:
    """Every fenced block of one page, with the marker on the line above it."""
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        above = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        marker = above if above in MARKERS or RUN_BY.fullmatch(above) else None
        language = match.group(2).strip()
        body = textwrap.dedent(match.group(3))
        page = str(path.relative_to(REPO))
        found.append(Block(page, line, language, marker, body))
    return found


ALL = [block for path in pages() for block in blocks(path)]
RUN = [b for b in ALL if b.language in SHELL and b.marker is None]


def test_every_block_is_run_or_marked() -> None:
    """Unmarked command blocks are run below; a marker must be one of the known ones,
    and a test it names must exist."""
    for path in pages():
        for comment in COMMENT.findall(path.read_text()):
            run_by = RUN_BY.fullmatch(comment)
            assert comment in MARKERS or run_by, f"{path}: unknown marker {comment}"
            if run_by:
                assert (REPO / run_by.group(1)).is_file(), f"{path}: {comment}"
    assert RUN, "the docs show no command this test runs"
    pages_with_commands = {b.page for b in ALL if b.language in SHELL}
    assert "README.md" in pages_with_commands


def test_no_command_hides_in_a_text_block() -> None:
    """A command in a ``text`` or unnamed block would be neither run nor marked."""
    for block in ALL:
        if block.language not in {"", "text"}:
            continue
        for line in block.body.splitlines():
            assert not COMMAND.match(line), (
                f"{block.page} line {block.line}: a command in a text block "
                f"(make it ```sh, run or marked): {line}"
            )


def test_the_readme_is_a_front_page() -> None:
    """At most 250 lines, and every page it links to exists."""
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if "://" not in link]
    assert local, "the README links to no page"
    for link in local:
        assert (REPO / link).is_file(), f"README links to {link}, which is missing"


def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


@pytest.mark.parametrize(
    "block", RUN, ids=[f"{b.page}:{b.line}" for b in RUN]
)  # fmt: skip
def test_the_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    body = block.body
    for port in PORTS:
        body = body.replace(port, free_port())
    body = body.replace("make demo", "make -o .venv/.installed demo")
    work = tmp_path / "cwd"
    work.mkdir()
    for name in ("examples", ".venv", "Makefile", "pyproject.toml"):
        (work / name).symlink_to(REPO / name)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "DP_RUNNER_"))
    }
    env.update(
        HOME=str(tmp_path / "home"),
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        AWS_EC2_METADATA_DISABLED="true",
    )
    script = (
        f"set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{body}"
    )
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (
        f"{block.page} line {block.line}:\n{body}\n--- stdout\n{done.stdout[-3000:]}"
        f"\n--- stderr\n{done.stderr[-3000:]}"
    )
