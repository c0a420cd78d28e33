"""Errors become exit codes here and nowhere else, through one table.

``EXIT_CODES`` (click style): 0 clean stop, 1 crash (or a ``RunnerError`` with no
row), 2 usage, 4 ``run --local`` ended with instances that did not finish, 75 the
host failed the start for now (the unit restarts), 78 configuration; ``exec`` adds
3 (a precondition FALSE), 4 (the activity FAILED) and 5 (stopped by a signal).
It owns the mapping, and how a command leaves (``leave``); it builds nothing and
reads no settings.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import NoReturn

import click

from runner.errors import (
    EX_CONFIG,
    EX_TEMPFAIL,
    ConfigError,
    HostFaultError,
    RunnerError,
)

EXIT_UNFINISHED = 4
#: How long the interpreter's exit may wait on threads a stop abandoned.
EXIT_JOIN_S = 2.0
EXIT_CRASH = 1
#: The one table from an error to the exit code: the first row the error is an
#: instance of. ``local``'s own start-up error maps by name (an island's class).
EXIT_CODES: tuple[tuple[type[Exception], int], ...] = (
    (HostFaultError, EX_TEMPFAIL),
    (ConfigError, EX_CONFIG),
    (RunnerError, EXIT_CRASH),
)


def exit_code(exc: Exception) -> int:
    """The exit code ``exc`` ends the command with (``EXIT_CODES``)."""
    for kind, code in EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return EX_CONFIG if type(exc).__name__ == "StartupError" else EXIT_CRASH


def fail(command: str, exc: Exception) -> NoReturn:
    """Say why ``command`` cannot go on, and exit with the code ``exc`` maps to."""
    click.echo(f"{command}: {exc}", err=True)
    sys.exit(exit_code(exc))


def leave(code: int) -> NoReturn:
    """Exit with ``code`` within ``EXIT_JOIN_S``. A stop abandons a transfer that S3
    never finishes (it trickles: no read timeout fires), and s3transfer's pool
    threads are not daemons, so the interpreter's exit would join them forever.
    Everything owed is said and journaled by now (``runner_stopped``): past the
    bound, a daemon thread flushes the streams and ends the process with the same
    code, without joining them."""

    def watchdog() -> None:
        threading.Event().wait(EXIT_JOIN_S)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # closed, or a broken pipe
                stream.flush()
        os._exit(code)

    threading.Thread(target=watchdog, name="exit-watchdog", daemon=True).start()
    sys.exit(code)
