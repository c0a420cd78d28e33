"""What an activity turns a task into: a ``Plan`` of steps.

Owns: the step types and the ``Plan`` that orders them. A plan is:

    before          transfers before the main step (fetch a script, stage inputs in)
    main            exactly one: a ``Process`` (at most one per attempt) or a ``Check``
    after_success   transfers after a main step that succeeded (stage outputs out)
    deliver         transfers after the main step whatever its end (stdout/stderr to
                    where the task says); a failure is logged, never changes the status

Must not: run anything. ``task/execution.py`` sequences the steps under the attempt's
stop flag; a ``Transfer`` or a ``Check`` runs on a daemon thread that a stop abandons
at once (s3transfer cannot abort a request in flight), a ``Process`` under the
supervisor, whose tree a stop kills.

Why: the activity knows what its task needs and the execution knows how to stop
anything, so neither has optional flags for the other's cases. A process may do its
own S3 or database I/O inside the child (the database activities will); what the
runner does in-process is a ``Transfer`` or a ``Check``, so every wait is stoppable.
A process that needs a job with secrets in it gets it on fd 0 after its handshake
(``Process.stdin``; ``supervisor/handoff.py``) and may explain its own failure
(``Process.report``, ``ChildReport``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from runner.attempt import ProcessExit
from runner.errors import ActivityError


@dataclass(frozen=True, slots=True)
class Transfer:
    """In-process I/O for the attempt (an S3 download or upload). ``run`` blocks and
    raises ``ActivityError`` (``StagingError``) when it fails."""

    name: str
    run: Callable[[], None]


@dataclass(frozen=True, slots=True)
class Check:
    """An in-process check that is the attempt's main step (the ``Exists``
    precondition): ``holds`` True counts as a success, False as a failure."""

    name: str
    holds: Callable[[], bool]


@dataclass(frozen=True, slots=True)
class ChildReport:
    """What a process said about its own work, read once it has ended: an
    ``error`` that names the failure better than its exit code (a SQL error), and
    ``facts`` for the task's ``task_finished`` line (a row count)."""

    error: ActivityError | None = None
    facts: Mapping[str, int | str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Process:
    """The attempt's one process. ``argv`` is called at the spawn, after the
    ``before`` steps (a fetched script decides its interpreter by its first bytes);
    ``env`` holds only what the activity adds to the task's environment.

    ``stdin``, when set, is called at the spawn too and its bytes are handed to
    the child on its fd 0, a socket, once the child has made itself non-dumpable
    and said so (``supervisor/handoff.py``; a job that holds a password: never
    argv, never the environment, never a file). ``report``, when set, is called
    with the outcome of a process that ended by itself (not one a stop killed),
    and may say more than its exit code (``ChildReport``)."""

    argv: Callable[[], Sequence[str]]
    env: Mapping[str, str] = field(default_factory=dict)
    stdin: Callable[[], bytes] | None = None
    report: Callable[[ProcessExit], ChildReport] | None = None

    def input(self) -> bytes | None:
        """The bytes for the child's stdin (None: /dev/null); call at the spawn."""
        return self.stdin() if self.stdin is not None else None

    def explain(self, outcome: ProcessExit) -> ChildReport:
        """What the process reported about its work (empty without ``report``)."""
        return self.report(outcome) if self.report is not None else ChildReport()


@dataclass(frozen=True, slots=True)
class Plan:
    """Steps of one attempt, in order. ``timeout_s`` is its ``attemptTimeout``;
    ``precondition``: a main step that fails means FALSE (not yet met), not FAILED."""

    main: Process | Check
    before: tuple[Transfer, ...] = ()
    after_success: tuple[Transfer, ...] = ()
    deliver: tuple[Transfer, ...] = ()
    timeout_s: float | None = None
    precondition: bool = False
