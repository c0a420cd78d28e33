"""How one attempt waits for its steps: under its stop flag and its clocks.

Owns: ``StepThread`` (an in-process step on a daemon thread), ``StepRunner`` (the
waits: a transfer or a check, the process, the wind-down steps) and the attempt's
clocks (``attemptTimeout`` and the lease), which it turns into stop reasons.

Must not: decide what to run or what the outcome means: ``execution.py`` sequences
the plan and ``verdict.py`` judges it.

Why: s3transfer and botocore cannot abort a request in flight, so a stop cannot end
a hung transfer; it can only stop waiting for it. Every in-process step therefore
runs on a daemon thread, never joined (the runner's exit does not wait for it), and
every wait blocks on one wake-up that the stop flag sets, with the next clock as its
timeout: nothing polls, and every stop is acted on at once. A thread left behind ends
soon after by itself: the S3 client's timeouts are short and its retries stop on the
attempt's stop event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import structlog

from runner.activities import Transfer
from runner.attempt import ProcessExit
from runner.supervisor import Supervisor
from runner.task.progress import Progress
from runner.task.stopflag import StopFlag
from runner.taskmodel import StopReason

T = TypeVar("T")


class Stopped(Exception):  # noqa: N818 - control flow between task/ modules
    """The stop flag was set while the attempt waited: leave the work phase."""


class StepThread(Generic[T]):
    """One call of ``fn`` on a daemon thread named ``name``. ``done`` is set when it
    has returned or raised (``ended``), and may be set sooner by the owner's wakers;
    ``result`` then returns its value or raises its error."""

    def __init__(self, fn: Callable[[], T], *, name: str) -> None:
        self._fn = fn
        self.done = threading.Event()
        self._value: T | None = None
        self.error: BaseException | None = None
        self.ended = (
            False  # True once fn returned or raised (``done`` may be set sooner)
        )
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> StepThread[T]:
        self._thread.start()
        return self

    def result(self) -> T:
        """The value ``fn`` returned, or its exception raised again. Call only
        once ``ended`` is true."""
        if self.error is not None:
            raise self.error
        return self._value  # type: ignore[return-value]  # T may well be None

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except Exception as exc:  # noqa: BLE001 - thread top: kept for the owner
            self.error = exc
        finally:
            self.ended = True
            self.done.set()


class StepRunner:
    """The waits of one attempt (its own thread only), after its ack."""

    def __init__(
        self,
        *,
        flag: StopFlag,
        progress: Progress,
        name: str,
        kill_grace: float,
        wind_down_s: float,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._flag = flag
        self._progress = progress
        self._name = name
        self._kill_grace = kill_grace
        self._wind_down_s = wind_down_s
        self._log = log
        self._stop_logged = False
        #: ``time.monotonic()`` when attemptTimeout runs out, once known.
        self.timeout_at: float | None = None

    def step(self, name: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` on a step thread and wait for it under the flag and the
        clocks: its value, its error, or ``Stopped`` (the thread is abandoned)."""
        if self._flag.is_set():
            raise Stopped
        step = StepThread(fn, name=f"{self._name}-{name}")
        remove = self._flag.add_waker(step.done.set)
        try:
            step.start()
            self._wait(step.done)
        finally:
            remove()
        if self._flag.is_set():
            self._log_stop(step=name)
            raise Stopped
        return step.result()

    def supervise(self, child: Supervisor) -> ProcessExit:
        """Wait for ``child``; kill its tree as soon as the flag is set (TERM, the
        rest of ``kill_grace``, KILL; none once hurried)."""
        remove = self._flag.add_waker(child.interrupt_wait)
        try:
            while True:
                outcome = child.wait_exit(self._until_next_clock())
                if outcome is not None:
                    child.kill_leftovers(self._kill_grace)
                    return outcome
                self._check_clocks()
                if self._flag.is_set():
                    self._log_stop()
                    return child.terminate(self._grace_left(), self._flag.urgent)
        finally:
            remove()

    def wind_down(self, steps: Sequence[Transfer], budget_s: float) -> None:
        """Run ``steps`` (deliver output, upload logs) within ``budget_s``, or within
        ``wind_down_s`` from the first one after a stop. Never raises."""
        deadline = time.monotonic() + budget_s
        stopped = False
        for step in steps:
            if self._flag.is_set() and not stopped:
                stopped = True
                deadline = min(deadline, time.monotonic() + self._wind_down_s)
                self._log_stop(step=step.name)  # seen after the verdict: say so
            self._wind_down_step(step, deadline, stopped=stopped)

    def _wind_down_step(
        self, step: Transfer, deadline: float, *, stopped: bool
    ) -> None:
        """One wind-down step, until ``deadline``. Before a stop, a stop abandons
        it; after one, only ``hurry`` does."""
        budget_s = 0.0 if self._flag.urgent.is_set() else deadline - time.monotonic()
        if budget_s <= 0:
            self._log.warning("task_step_skipped", step=step.name, stopped=stopped)
            return
        thread = StepThread(step.run, name=f"{self._name}-{step.name}")
        remove = self._flag.add_waker(thread.done.set, urgent=stopped)
        try:
            thread.start()
            self._wait(thread.done, until=deadline)
        finally:
            remove()
        if not thread.ended:
            if self._flag.is_set() and not stopped:
                self._log_stop(step=step.name)
            self._log.warning("task_step_abandoned", step=step.name, stopped=stopped)
        elif thread.error is not None:
            error = thread.error
            self._log.warning(
                "task_step_failed",
                step=step.name,
                error_id=getattr(error, "error_id", type(error).__name__),
                error=str(error),
            )

    # ----------------------------------------------------------------- clocks

    def _wait(self, done: threading.Event, until: float | None = None) -> None:
        """Block until ``done`` is set (by the step, or by a waker) or ``until``
        passes; a clock that runs out meanwhile becomes a stop reason."""
        while True:
            timeout = self._until_next_clock()
            if until is not None:
                timeout = min(timeout, until - time.monotonic())
            if done.wait(max(0.0, timeout)):
                return
            if until is not None and time.monotonic() >= until:
                return
            self._check_clocks()

    def _until_next_clock(self) -> float:
        """Seconds until the attempt's next clock runs out (timeout, lease)."""
        clocks = [self._progress.lease_deadline()]
        if self.timeout_at is not None:
            clocks.append(self.timeout_at)
        return max(0.0, min(clocks) - time.monotonic())

    def _check_clocks(self) -> None:
        """Turn a clock that ran out into a stop reason (the heartbeat and the
        worker set the others)."""
        now = time.monotonic()
        if self.timeout_at is not None and now >= self.timeout_at:
            self._flag.set(StopReason.TIMEOUT, "attemptTimeout passed")
        elif now >= self._progress.lease_deadline():
            self._flag.set(
                StopReason.LEASE_EXPIRED,
                f"no heartbeat succeeded for {self._progress.lease_timeout_s:g}s",
            )

    def _grace_left(self) -> float:
        """What is left of the stop's grace: ``kill_grace`` from the stop, none once
        hurried."""
        set_at = self._flag.set_at
        if self._flag.urgent.is_set() or set_at is None:
            return 0.0
        return max(0.0, set_at + self._kill_grace - time.monotonic())

    def _log_stop(self, step: str | None = None) -> None:
        if not self._stop_logged:
            self._stop_logged = True
            reason = self._flag.reason
            self._log.info(
                "task_stopping",
                reason=reason.value if reason else None,
                detail=self._flag.detail,
                step=step,
            )
