"""The database child as a plan's ``Process``, and the small file it reports in.

Owns: ``db_process``, the ``Process`` that runs ``python -m runner.dbchild``
(this interpreter) with its job as JSON on fd 0, and the runner's side of the
result protocol: the child writes ``work/dbjob-result.json`` (``runner.dbchild``'s
``write_result``), the runner reads it once the child has ended (``read_report``)
and turns it into a ``ChildReport``.

    {"rows": 3}                                            success: rows moved
    {"error_id": "SqlError:23505", "message": "...",       a failure that names
     "rows": 0}                                            its cause

Must not: import a database driver or ``runner.dbchild`` (the runner imports this
module; an import contract keeps the child's package out of the runner).

Why this way: the exit code alone cannot carry a SQLSTATE and the server's message,
and a pipe or fd 3 would need a reader thread in the runner; a small file in the
attempt's work folder is read once, after the exit, when nothing else writes it.
No result (a crash, a kill) leaves the exit code to speak: ``ExitCode:n`` with the
stderr tail, as for any process. The job travels on fd 0 (``Process.stdin``), a
socket the runner writes only once the child is non-dumpable
(``supervisor/handoff.py``): it holds the password, which must never reach argv,
the environment or a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from runner.activities.plan import ChildReport, Process
from runner.attempt import ProcessExit
from runner.errors import ActivityError

CHILD_MODULE = "runner.dbchild"
RESULT_NAME = "dbjob-result.json"
_RESULT_MAX_BYTES = 64 * 1024


def db_process(
    job: Callable[[], dict[str, Any]], workdir: Path, env: Mapping[str, str]
) -> Process:
    """The ``Process`` of a database job. ``job`` is called at the spawn (after
    the ``before`` steps: a fetched script, a resolved endpoint); ``env`` is what
    the activity adds to the task's environment (never a secret)."""
    result = workdir / RESULT_NAME

    def stdin() -> bytes:
        with contextlib.suppress(FileNotFoundError):
            result.unlink()  # never read a result the child did not write
        return json.dumps({**job(), "result_path": str(result)}).encode()

    return Process(
        argv=lambda: [sys.executable, "-m", CHILD_MODULE],
        env=env,
        stdin=stdin,
        report=lambda outcome: read_report(result, outcome),
    )


def read_report(path: Path, outcome: ProcessExit) -> ChildReport:
    """What the child wrote; an empty report when it wrote nothing readable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as file:
            found = json.loads(file.read(_RESULT_MAX_BYTES))
    except (OSError, ValueError):
        return ChildReport()
    if not isinstance(found, dict):
        return ChildReport()
    facts: dict[str, int | str] = {}
    if isinstance(found.get("rows"), int):
        facts["rows"] = found["rows"]
    error_id = found.get("error_id")
    if not isinstance(error_id, str) or not error_id or outcome.succeeded:
        return ChildReport(facts=facts)
    message = str(found.get("message") or error_id)
    return ChildReport(error=ActivityError(error_id, message), facts=facts)
