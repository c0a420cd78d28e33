"""One thing that happened in a ``run --local`` pipeline, and how it is said.

Owns: ``Event`` and its wording: one line on a terminal (the stderr tail under a
failure with ``|``, the stdout tail under a finished attempt with ``>``), or
JSON log fields.

Must not: decide what happened (``localview.Watch`` does) or print.

Why: the terminal and the JSON log tell the same story; one class words both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """Something a person watching the run wants to know. ``kind``: ``status``
    (an instance's status or attempt changed), ``attempt`` (an attempt ended:
    its error and stderr tail, or its stdout tail), ``retry`` (the service will
    try again in ``wait_s``). ``when``: the service's time of it."""

    kind: str
    instance_id: str
    status: str = ""
    attempt: str = ""
    error: str = ""
    tail: tuple[str, ...] = ()
    retry: int = 0
    of: int = 0
    wait_s: float = 0.0
    took_s: float | None = None
    output: tuple[str, ...] = ()
    when: str = ""

    def line(self, width: int = 0) -> str:
        """The event as a person reads it: one line (the instance id padded to
        ``width``), the stderr tail (``|``) or the stdout tail (``>``) under it."""
        if self.kind == "retry":
            again = "check again" if self.status == "FALSE" else "retry"
            count = "" if self.status == "FALSE" else f" {self.retry} of {self.of}"
            said = f"{again}{count} in {self.wait_s:.1f} s"
        elif self.kind == "attempt":
            said = f"attempt {self.attempt} {self.status}{_took(self.took_s)}"
            error = self.error
            if self.status == "FALSE" and not error:
                error = "the precondition does not hold yet"
            said += f": {error}" if error else ""
        elif self.attempt in {"", "0"}:
            said = self.status
        else:
            said = f"{self.status:<24} attempt {self.attempt}"
        head = f"{self.instance_id:<{width}}  {said}"
        return "\n".join(
            [
                head,
                *(f"    | {text}" for text in self.tail),
                *(f"    > {text}" for text in self.output),
            ]
        )

    def fields(self) -> dict[str, Any]:
        """The event as JSON log fields (what is empty is left out)."""
        out: dict[str, Any] = {
            "instance_id": self.instance_id,
            "status": self.status,
            "attempt": self.attempt,
            "error": self.error,
            "stderr_tail": list(self.tail),
            "stdout_tail": list(self.output),
            "at": self.when,
        }
        if self.took_s is not None:
            out["took_s"] = self.took_s
        if self.kind == "retry":
            out.update(retry=self.retry, of=self.of, wait_s=round(self.wait_s, 2))
        return {key: value for key, value in out.items() if value not in ("", [])}


def _took(took_s: float | None) -> str:
    if took_s is None:
        return ""
    return " in <1 s" if took_s < 1 else f" in {took_s:.0f} s"
