"""``run --local``: which log and output locations failed during the run.

Owns: ``DeliveryWatch``, a handler on the root logger for the length of a local
run that notes each warning the runner logs when an attempt's log or output
could not be delivered where the definition says (an attempt's ``upload_logs``
or ``deliver_output`` step that failed, was skipped or abandoned; the runner's
own log shipping; an invalid ``pipelineLogUri``), with the bucket it names.

Must not: change, drop or print a line (the runner's own warning is the line a
person reads; this only remembers that it was said), or outlive the run.

Why: a mistyped ``pipelineLogUri`` bucket left the run at exit 0 with its work
dir removed, so the output existed nowhere. The runner already says what
failed; the run must then keep the work dir, where the files still are, and
name it (``localrun.clean_up``). The warnings are the one place that knows.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

#: The runner's warnings for a log or output it could not deliver: its own
#: log's shipping, and an attempt's wind-down steps that deliver.
DELIVERY_FAILURES = frozenset(
    {"log_ship_failed", "log_ship_skipped", "pipeline_log_uri_invalid"}
)
STEP_FAILURES = frozenset(
    {"task_step_failed", "task_step_skipped", "task_step_abandoned"}
)
DELIVERY_STEPS = frozenset({"upload_logs", "deliver_output"})
_BUCKET = re.compile(r"s3://[^/\s'\"]+")


def _is_failure(fields: dict[str, Any]) -> bool:
    event = fields.get("event")
    if event in DELIVERY_FAILURES:
        return True
    return event in STEP_FAILURES and fields.get("step") in DELIVERY_STEPS


class DeliveryWatch(logging.Handler):
    """Notes the locations of delivery failures while installed."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self._lock_failed = threading.Lock()
        self._failed: dict[str, None] = {}

    def install(self) -> None:
        logging.getLogger().addHandler(self)

    def remove(self) -> None:
        logging.getLogger().removeHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        fields: Any = record.msg
        if not isinstance(fields, dict) or not _is_failure(fields):
            return
        text = str(fields.get("uri") or fields.get("error") or "")
        bucket = _BUCKET.search(text)
        where = bucket.group() if bucket else str(fields.get("step", fields["event"]))
        if fields.get("error_id"):
            where += f" ({fields['error_id']})"
        with self._lock_failed:
            self._failed[where] = None

    def failed(self) -> tuple[str, ...]:
        """The locations (or the errors naming them) that failed, in order."""
        with self._lock_failed:
            return tuple(self._failed)
