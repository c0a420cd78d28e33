"""The handler that writes the runner's log to its stdout.

Owns: ``StdoutHandler``: the syslog priority prefix when stdout is journald's
stream (``<3>`` error, ``<4>`` warning, ``<6>`` info, ``<7>`` debug), and what
happens when stdout is closed (the handler drops itself after the first
``EPIPE``, says so once on stderr, and the file log goes on).

Must not: render a line (``logs.py``'s formatters do) or write anywhere but the
stream it is given and, once, stderr.

Why a prefix and not the journal's native protocol: journald reads ``<N>`` at the
start of each line of a stream it owns when the unit sets
``SyslogLevelPrefix=yes`` (its default), so ``journalctl -p warning`` filters the
runner's lines with no library and no socket of our own. The stream is journald's
when its device and inode equal ``JOURNAL_STREAM`` (systemd.exec(5)); a pipe to
anything else, or a terminal, gets the lines as they are.

Why drop the handler on ``EPIPE``: ``dp-runner run … | head -1`` closes the pipe.
The stdlib handler then prints a ``--- Logging error ---`` traceback to stderr for
every line. One line on stderr says what happened; the file log keeps every line;
stdout's descriptor is pointed at ``/dev/null`` so that the interpreter's own
flush at exit does not fail again.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

#: Syslog priorities (RFC 5424) for the stdlib levels.
_PRIORITIES = (
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
)
_DEBUG_PRIORITY = 7


def priority(level_no: int) -> int:
    """The syslog priority of a stdlib level number."""
    for floor, value in _PRIORITIES:
        if level_no >= floor:
            return value
    return _DEBUG_PRIORITY


def is_journal_stream(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """True when ``stream`` is the journal stream systemd connected
    (``JOURNAL_STREAM=<device>:<inode>`` matches its descriptor)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    try:
        stat = os.fstat(stream.fileno())
        return (stat.st_dev, stat.st_ino) == (int(device), int(inode))
    except (OSError, ValueError, AttributeError):
        return False  # no descriptor (a StringIO), or no or a garbled variable


class StdoutHandler(logging.StreamHandler[TextIO]):
    """A ``StreamHandler`` that prefixes each line with its syslog priority when
    ``priorities`` is set, and removes itself from the root logger at the first
    ``BrokenPipeError``. Thread-safe as ``StreamHandler`` is."""

    def __init__(self, stream: TextIO, *, priorities: bool) -> None:
        super().__init__(stream)
        self.priorities = priorities

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if not self.priorities:
            return line
        return f"<{priority(record.levelno)}>{line}"

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - stdlib's name
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            self._drop()
        else:
            super().handleError(record)

    def _drop(self) -> None:
        root = logging.getLogger()
        # A new list, not ``removeHandler``: the root logger is iterating over
        # the old one right now, and a removal would skip the next handler (the
        # file log) for this very line.
        root.handlers = [h for h in root.handlers if h is not self]
        try:
            devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass  # not a real descriptor: nothing will flush into it at exit
        try:
            sys.stderr.write(
                "dp-runner: stdout is closed (EPIPE): the log goes on in the "
                "file log only\n"
            )
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # stderr closed too: there is nobody left to tell
