"""The plan's steps of one attempt: the before steps, the main step, and after a
success the after steps, each under the attempt's stop flag.

The main step is a check (its answer is the exit: 0 holds, 1 does not) or a
process: spawned (unless a stop came first) in the attempt's work folder with its
environment and marker, its cgroup and its pid journaled before anything waits
on it, supervised to its end, and its report read. ``process_exit`` is how it
ended; the facts of its report go to ``facts`` (for the ``task_finished`` line).

Must not: decide the verdict (``verdict.py``), send a status or wind down
(``record.py``). Split from ``execution.py`` by concept: that module keeps the
sequence from the ack to the status; this one runs the work in the middle.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from runner import activities
from runner.attempt import AttemptPaths, ProcessExit
from runner.supervisor import Supervisor, task_environment
from runner.task.record import AttemptRecord
from runner.task.steps import StepRunner, Stopped
from runner.task.stopflag import StopFlag
from runner.workdir import WorkDir


@dataclass
class Work:
    """The work of one attempt; ``run`` blocks on the task's thread."""

    flag: StopFlag
    work_dir: WorkDir
    environment: Mapping[str, str]
    marker: str
    record: AttemptRecord
    log: structlog.typing.FilteringBoundLogger
    #: The process's facts (its report's), for ``task_finished``.
    facts: dict[str, Any]
    process_exit: ProcessExit | None = None

    def run(
        self, plan: activities.Plan, paths: AttemptPaths, steps: StepRunner
    ) -> None:
        """The before steps, the main step, and after a success the after steps."""
        for step in plan.before:
            steps.step(step.name, step.run)
        began = time.monotonic()
        if isinstance(plan.main, activities.Check):
            holds = steps.step(plan.main.name, plan.main.holds)
            self.process_exit = ProcessExit(
                0 if holds else 1, None, time.monotonic() - began
            )
        else:
            self.process_exit = self._run_process(plan.main, paths, steps)
        if self.process_exit.succeeded and not self.flag.is_set():
            for step in plan.after_success:
                steps.step(step.name, step.run)

    def _run_process(
        self, main: activities.Process, paths: AttemptPaths, steps: StepRunner
    ) -> ProcessExit:
        """Spawn the process (unless a stop came first); supervise; read its report."""
        argv, run_as, stdin = main.argv(), self.work_dir.run_as, main.input()
        if self.flag.is_set():
            raise Stopped
        self.work_dir.hand_over(paths)  # under run_as: work/ and staging/ are its
        child = Supervisor.spawn(
            argv,
            cwd=paths.workdir,
            env=task_environment(self.environment, main.env, run_as=run_as),
            stdout=paths.stdout,
            stderr=paths.stderr,
            marker=self.marker,
            log=self.log,
            run_as=run_as,
            stdin=stdin,
            on_cgroup=self.record.cgroup_opened,
        )
        self.record.process_started(child.pid)
        self.log.info("task_started", pid=child.pid)
        self.process_exit = process_exit = steps.supervise(child)
        if not self.flag.is_set():
            report = main.explain(process_exit)
            self.facts.update(report.facts)
            if report.error is not None and not process_exit.succeeded:
                raise report.error
        return process_exit
