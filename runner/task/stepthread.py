"""A step of an attempt that runs in-process (a transfer, a check, a service call) on
a thread of its own, so that the attempt can stop waiting for it.

Owns: ``StepThread``: start ``fn`` on a daemon thread, let the owner wait for it with
any wake-up it likes, and hand back its result or its error.

Must not: decide when to give up. The execution waits on the step's ``done`` event,
which its stop flag also sets, and walks away when it must.

Why: s3transfer and botocore cannot abort a request in flight, so a stop cannot end
a hung transfer; it can only stop waiting for it. The thread is a daemon, never
joined: the runner's exit does not wait for it. It ends by itself soon after, because
the S3 client's timeouts are short and its retries stop on the attempt's stop event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


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
