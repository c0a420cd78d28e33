"""What ``run --local`` shows of its run: the watch it sets up, and its closing.

Owns: ``RunSummary`` (how a local run ended), the ``Watch`` built for a definition
(the retry fields it sets, the work dir's prefix to take out of messages, each
finished attempt's stdout tail read from its attempt folder), and the closing
lines: the table and the work dir's fate for a person, JSON lines for a machine.

Must not: start anything, or print (the CLI does).

Why: kept apart from ``localrun``, which composes the service and the daemon:
what a person sees changes for different reasons than how the run is built.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
from dataclasses import dataclass
from pathlib import Path

from runner.activities import safe_path_part
from runner.definitionquery import inherited_field
from runner.localsummary import render_table, summary_fields
from runner.localview import TAIL_LINES, AttemptRow, Definitions, InstanceRow, Watch
from runner.pipelinefile import Definition


@dataclass(frozen=True, slots=True)
class RunSummary:
    """How a local run ended: the closing table's rows, the root of the attempts'
    folders, the work dir this run made for itself (None when ``--work-dir``
    named one: that one is yours, never removed), the log and output locations
    that failed (``DeliveryWatch``), and whether a person reads the output."""

    rows: list[InstanceRow]
    work_dir: Path
    made_dir: Path | None
    lost: tuple[str, ...] = ()
    for_people: bool = True

    @property
    def finished(self) -> bool:
        """Every instance FINISHED."""
        return bool(self.rows) and all(row.status == "FINISHED" for row in self.rows)


def make_watch(
    defn: Definition, time_scale: float, root: Path, pipeline_id: str, *, shown: bool
) -> Watch:
    """The watch over this run: the definition's retry fields, the work dir's
    prefix taken out of messages, and (``shown``) each finished attempt's
    stdout tail, read from its attempt folder."""
    known = Definitions(
        retry_delays=component_fields(defn, "retryDelay"),
        max_retries=component_fields(defn, "maximumRetries"),
        prefixes=(str(root), str(root.resolve())),
        depth=depths(defn),
    )
    attempts = root / "attempts" / safe_path_part(pipeline_id)

    def output_of(attempt: AttemptRow) -> list[str]:
        name = glob.escape(safe_path_part(attempt.attempt_id))
        for path in attempts.glob(f"*/*/{name}/StdOutput"):
            return tail_lines(path, TAIL_LINES)
        return []

    return Watch(time_scale, known, output_of if shown else None)


#: The fields by which an object waits on another (DG: dependsOn, precondition,
#: an activity's input data node; a data node waits on the activities writing it).
WAITS_ON = ("dependsOn", "precondition", "input")


def depths(defn: Definition) -> dict[str, int]:
    """Each object's depth in the graph: 0 for one that waits on nothing, else
    one more than the deepest of what it waits on (a cycle counts once)."""
    refs: dict[str, list[str]] = {}
    for obj in defn.pipeline_objects:
        for field in obj["fields"]:
            if "refValue" not in field:
                continue
            if field["key"] in WAITS_ON:
                refs.setdefault(obj["id"], []).append(field["refValue"])
            elif field["key"] == "output":  # the node waits on its producer
                refs.setdefault(field["refValue"], []).append(obj["id"])
    found: dict[str, int] = {}

    def depth(obj_id: str, seen: frozenset[str]) -> int:
        if obj_id not in found:
            waits = [r for r in refs.get(obj_id, []) if r not in seen]
            found[obj_id] = 1 + max(
                (depth(r, seen | {obj_id}) for r in waits), default=-1
            )
        return found[obj_id]

    for obj in defn.pipeline_objects:
        depth(obj["id"], frozenset())
    return found


def tail_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` non-blank lines of a file (its last 64 KiB)."""
    try:
        with path.open("rb") as file:
            file.seek(max(0, path.stat().st_size - 65536))
            text = file.read().decode(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-count:]


def component_fields(defn: Definition, key: str) -> dict[str, str]:
    """Each object's ``key``, as the definition sets it or inherits it."""
    found = {
        obj["id"]: inherited_field(defn, obj["id"], key)
        for obj in defn.pipeline_objects
    }
    return {obj_id: value for obj_id, value in found.items() if value is not None}


def closing_lines(outcome: RunSummary, *, removed: bool) -> list[str]:
    """What the run says when it ends: the closing table and what became of the
    work dir, for a person; the same as JSON lines, one per instance and one
    for the run, for a machine (``--log-format json``: every line is JSON)."""
    kept = outcome.made_dir or outcome.work_dir
    if not outcome.for_people:
        ended = {
            "event": "local_run_ended",
            "finished": outcome.finished,
            "work_dir": str(kept),
            "removed": removed,
            "failed_locations": list(outcome.lost),
        }
        rows = [
            {"event": "local_run_instance", **summary_fields(r)} for r in outcome.rows
        ]
        now = dt.datetime.now(tz=dt.UTC).isoformat().replace("+00:00", "Z")
        common = {"level": "info", "logger": __name__, "timestamp": now}
        return [json.dumps(line | common) for line in [*rows, ended]]
    lines = [render_table(outcome.rows)]
    if outcome.lost:
        lines.append(
            "warning: these log or output locations failed: " + ", ".join(outcome.lost)
        )
        lines.append(f"work dir {kept} kept: the attempts' files are there")
    elif removed:
        lines.append(f"work dir {outcome.made_dir} removed (--keep keeps it)")
    else:
        lines.append(f"attempt folders: {outcome.work_dir / 'attempts'}")
    return lines
