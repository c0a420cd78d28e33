"""The closing of ``run --local``: what became of each instance.

Owns: the closing table on a terminal and its rows as JSON log fields, with the
fate of an instance the run did not see end: STOPPED (it had started) or
NEVER_STARTED, and the status it was in.

Must not: read the service, or print (the CLI does).

Why: after Ctrl-C a table that says ``WAITING_FOR_RUNNER ... RunnerShutdown``
reads as if the service still meant to run it; what a person needs is what the
run did to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runner.localview import TERMINAL, InstanceRow


def fate(row: InstanceRow) -> tuple[str, str]:
    """(status, note) for the closing table: what became of the instance. One
    that had not ended when the run did was stopped, or never started."""
    if row.status in TERMINAL:
        return row.status, row.error
    if row.attempts in {"", "0"} or row.status == "WAITING_ON_DEPENDENCIES":
        return "NEVER_STARTED", f"the run ended while it was {row.status}"
    last = f"; its last attempt: {row.error}" if row.error else ""
    return "STOPPED", f"the run ended while it was {row.status}{last}"


def render_table(rows: Sequence[InstanceRow]) -> str:
    """The closing table, fixed-width for a terminal."""
    lines = [("INSTANCE", "STATUS", "ATTEMPTS", "ERROR")]
    lines += [(r.instance_id, *_status_note(r)) for r in rows]
    width = max(len(line[0]) for line in lines)
    return "\n".join(
        f"{iid:<{width}}  {status:<16}  {attempts:>8}  {note}".rstrip()
        for iid, status, attempts, note in lines
    )


def _status_note(row: InstanceRow) -> tuple[str, str, str]:
    status, note = fate(row)
    return status, row.attempts, note


def summary_fields(row: InstanceRow) -> dict[str, Any]:
    """One closing-table row as JSON log fields."""
    status, note = fate(row)
    out = {
        "instance_id": row.instance_id,
        "status": status,
        "attempts": row.attempts,
        "error": note,
    }
    return {key: value for key, value in out.items() if value != ""}
