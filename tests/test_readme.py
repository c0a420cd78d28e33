"""Every command the README shows is run here, or carries a marker that says why not.

Each ```sh block runs with bash in a temporary folder (with ``examples`` and
``.venv`` linked in from the checkout) and a temporary HOME; the ports it names are
replaced by ports the OS chose, and the processes it starts in the background are
gone afterwards. A block that is not run carries, on the line above it, one of:

    <!-- needs: aws -->            a real AWS account
    <!-- needs: systemd -->        a host whose PID 1 is systemd, as root
    <!-- needs: docker -->         a Docker engine (none runs where the tests run;
                                   tests/test_container.py stands in for it)
    <!-- is: the test suite -->    the suite this test is part of
    <!-- is: bench -->             a benchmark (minutes, and figures, not checks)

A block neither run nor marked fails ``test_every_block_is_run_or_marked``.
``make demo`` runs with ``-o .venv/.installed``, so that it never rebuilds the venv
this test runs in.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.runners import REPO

README = REPO / "README.md"
MARKERS = {
    "<!-- needs: aws -->",
    "<!-- needs: systemd -->",
    "<!-- needs: docker -->",
    "<!-- is: the test suite -->",
    "<!-- is: bench -->",
}
#: Ports a block may name; each is replaced by a free one.
PORTS = ("8765", "5000", "9102")
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks() -> list[tuple[int, str | None, str]]:
    """(line number, marker or None, text) of every ```sh block."""
    text = README.read_text()
    found = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        above = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        found.append((line, above if above in MARKERS else None, match.group(1)))
    return found


RUN = [(line, body) for line, marker, body in blocks() if marker is None]


def test_every_block_is_run_or_marked() -> None:
    """Unmarked blocks are run below; a marker must be one of the known ones."""
    text = README.read_text()
    for comment in re.findall(r"<!-- (?:needs|is): [^>]*-->", text):
        assert comment in MARKERS, comment
    assert RUN, "the README shows no command this test runs"


def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


@pytest.mark.parametrize(("line", "body"), RUN, ids=[f"line-{n}" for n, _ in RUN])
def test_the_block_runs_as_written(line: int, body: str, tmp_path: Path) -> None:
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
        f"README line {line}:\n{body}\n--- stdout\n{done.stdout[-3000:]}"
        f"\n--- stderr\n{done.stderr[-3000:]}"
    )
