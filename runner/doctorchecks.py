"""A doctor's check and how checks are run, so that none can end the doctor early.

Owns: ``Check`` (a verdict, what was found, the fix, and why a failure is expected
where it is), ``guarded`` (a check that raises becomes a ``FAIL`` line naming the
error, and the next check runs), and ``within`` (checks that share one deadline:
those that need an endpoint that has just failed to answer).

Must not: call AWS itself, print, or exit; ``doctor.py`` decides what is checked
and ``cli/`` prints.

Why a thread for the deadline: a call to an endpoint that accepts and never answers
blocks in a socket read until botocore's read timeout (20 s), and five such calls
made the doctor take 100 s. The checks that share a deadline run one after the
other in a daemon thread; the doctor waits for each line on a queue with what is
left of the deadline, reports the ones still missing as not probed, and moves on.
A call still blocked then ends with the doctor's process (it only reads).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from runner.aws.retries import RetryPolicy
from runner.errors import RunnerError, ServiceError

#: One try, no backoff: what the endpoint answers now.
ONCE = RetryPolicy(1, 30.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    verdict: str  # ok, warn, skip, FAIL
    detail: str
    fix: str = ""
    #: Why this failure is expected where the doctor ran (``dp-runner local``).
    expected: str = ""

    @property
    def failed(self) -> bool:
        """A failure that counts: a ``FAIL`` that is not expected here."""
        return self.verdict == "FAIL" and not self.expected


#: A check by name: the name its line carries, and the call that makes the line.
Named = tuple[str, Callable[[], Check]]


def said(exc: ServiceError) -> str:
    return f"{exc.code}: {exc.message or '(the service gave no message)'}"


def guarded(name: str, check: Callable[[], Check]) -> Check:
    """``check()``, or a ``FAIL`` line naming what it raised: a doctor that
    crashes halfway hides the checks it never ran."""
    try:
        return check()
    except ServiceError as exc:
        return Check(name, "FAIL", said(exc))
    except RunnerError as exc:  # no credentials, a bad profile
        return Check(name, "FAIL", str(exc))
    except Exception as exc:  # noqa: BLE001 - garbage from a server must not end the doctor
        return Check(
            name,
            "FAIL",
            " ".join(f"unexpected {type(exc).__name__}: {exc}".split())[:300],
            "the answer was not what AWS sends: check endpoint_url and the proxy",
        )


def within(deadline_s: float, checks: Sequence[Named], why: str) -> Iterator[Check]:
    """Each of ``checks``, in order, as long as ``deadline_s`` (shared) lasts; the
    ones it leaves are ``skip`` lines that say ``why``."""
    lines: queue.Queue[Check] = queue.Queue()

    def run_all() -> None:
        for name, check in checks:
            lines.put(guarded(name, check))

    threading.Thread(target=run_all, name="doctor-deadline", daemon=True).start()
    ends = time.monotonic() + deadline_s
    for done in range(len(checks)):
        try:
            yield lines.get(timeout=max(0.0, ends - time.monotonic()))
        except queue.Empty:
            for late, _ in checks[done:]:
                yield Check(
                    late,
                    "skip",
                    f"not probed: no answer within the {deadline_s:g} s "
                    f"these checks share ({why})",
                )
            return
