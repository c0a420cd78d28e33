"""structlog setup: one pipeline for the runner's own lines and for stdlib loggers.

Owns: how a log line looks (JSON lines when the stream is not a TTY, the console
renderer on a TTY, short: no null fields and the task's facts first), the level
filter, the secret-key redaction, and routing the stdlib loggers of
boto3/botocore/urllib3 through the same processors. The masking of known secret
values is ``logmasks.py``'s, the stdout handler (journald priorities, a closed
stdout) ``logstream.py``'s: this module puts them in the chain.

Must not: decide *what* is logged, read ``Settings`` (``cli/`` passes the values),
or write anywhere but the stream it is given (stdout by default: journald keeps it,
containers collect it) and, once ``add_file_log`` is called, the work dir's log file.
It does not ship files anywhere: ``logship.py`` hooks the file handler's rotation.

Why this shape: structlog events are handed to the stdlib logger of the same name
and rendered by one ``structlog.stdlib.ProcessorFormatter`` on one handler, so
structlog lines and foreign lines share one renderer, one lock (no interleaved
half-lines from threads) and one set of pre-processors (hynek/structlog
``docs/standard-library.md``). Loggers are not cached, so ``configure`` can run
twice and ``structlog.testing.capture_logs`` works after it. Redaction here is
defence in depth: the rule is still never to log a secret at all.

A key name cannot reveal every secret: the values of Data Pipeline's masked
``*my…`` parameters travel in request bodies, which botocore logs at debug level,
and in task fields. ``mask_values`` registers such values (GitHub Actions'
``add-mask``); they are blanked out of every event's string values once its
traceback is rendered into it and before the attempt log's tee or any renderer
sees it, so every line stays valid JSON whatever the secret.

The file log (``add_file_log``) is a second handler on the same root logger with
its own ``ProcessorFormatter``, always JSON whatever the stdout format: the file is
for machines (S3, log search), and a second handler is not a second pipeline. Each
formatter renders a copy of the event, so both see the same redacted fields; in JSON
the second handler reuses the line the first one rendered. It is
stdlib's ``TimedRotatingFileHandler``, hourly in UTC, with the Java runner's
``<name>.YYYY-MM-DD-HH`` suffix (reference/datapipeline.md §2.6), and it deletes
files past ``FILE_LOG_BACKUPS`` itself.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from runner.errors import ConfigError
from runner.logmasks import (
    REDACTED,
    mask_known_values,
    mask_values,
    redact_secrets,
)
from runner.logstream import StdoutHandler, is_journal_stream

__all__ = [
    "REDACTED",
    "configure",
    "get_logger",
    "mask_known_values",
    "mask_values",
]

LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
FORMATS = ("auto", "json", "console")

#: Chatty libraries: WARNING, or INFO when the runner logs at debug; never DEBUG.
NOISY_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")

#: On a terminal, these come first (after the time, level and event), in this order.
CONSOLE_FACTS = (
    "task_id",
    "worker_group",
    "activity_type",
    "outcome",
    "error_id",
    "returncode",
    "signal",
    "duration_s",
)
#: A key bound to a logger whose value, a callable, gets each line of that logger
#: once it is final (``task/attemptlogs``: the attempt's ``TaskRunner.log``). The
#: key is removed before rendering, and the logger keeps its own name.
TEE_KEY = "_tee"

_HANDLER_NAME = "dp-runner"
_JSON_RENDERER = structlog.processors.JSONRenderer()
#: Where ``_JSONFormatter`` keeps a record's rendered line for the next handler.
_RENDERED = "_dp_runner_json"
_FILE_HANDLER_NAME = "dp-runner-file"

#: The file log: ``<work_dir>/logs/dp-runner.log``, rotated to ``<name>.<suffix>``.
LOG_DIR_NAME = "logs"
FILE_LOG_NAME = "dp-runner.log"
#: The UTC hour a rotated file started (Java runner: ``Task Runner.log.YYYY-MM-DD-HH``).
FILE_LOG_SUFFIX = "%Y-%m-%d-%H"
#: What the handler takes for one of its rotated files when it deletes old ones.
_FILE_LOG_SUFFIX_MATCH = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{2}(\.\w+)?$", re.ASCII)
#: Rotated files kept locally: 7 days of hourly files.
FILE_LOG_BACKUPS = 168


def tee(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Hand the finished line to the callable bound under ``TEE_KEY``, if any."""
    target = event_dict.pop(TEE_KEY, None)
    if target is not None:
        target(event_dict)
    return event_dict


def _shared_processors() -> list[Processor]:
    """What every line gets, structlog or stdlib: context, logger, level, time, its
    traceback rendered into ``exception``, then the secrets out of its values (so
    that every renderer, and the attempt log's tee, sees them masked)."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact_secrets,
        mask_known_values,
    ]


def _formatter(log_format: str, stream: TextIO | None) -> logging.Formatter:
    processors = _renderer_chain(log_format, stream)
    formatter = (
        _JSONFormatter
        if processors[-1] is _JSON_RENDERER
        else structlog.stdlib.ProcessorFormatter
    )
    return formatter(foreign_pre_chain=_shared_processors(), processors=processors)


class _JSONFormatter(structlog.stdlib.ProcessorFormatter):
    """The JSON formatter of every handler: a record is rendered once, then the
    same line goes to stdout and to the file log (the chains are identical)."""

    def format(self, record: logging.LogRecord) -> str:
        line = record.__dict__.get(_RENDERED)
        if not isinstance(line, str):
            line = super().format(record)
            record.__dict__[_RENDERED] = line
        return line


def _renderer_chain(log_format: str, stream: TextIO | None) -> list[Processor]:
    is_tty = stream is not None and stream.isatty()
    if log_format == "auto":
        log_format = "console" if is_tty else "json"
    if log_format == "console":
        return [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            facts_first,
            structlog.dev.ConsoleRenderer(colors=is_tty, sort_keys=False),
        ]
    return [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        _JSON_RENDERER,
    ]


def facts_first(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """For a person at a terminal: no field whose value is None, the task's key
    facts (``CONSOLE_FACTS``) first, the rest sorted by name. JSON lines keep
    every field: a machine wants stable keys."""
    present = {k: v for k, v in event_dict.items() if v is not None}
    first = {k: present.pop(k) for k in CONSOLE_FACTS if k in present}
    return first | dict(sorted(present.items()))


def configure(
    *, log_format: str = "auto", level: str = "info", stream: TextIO | None = None
) -> None:
    """Set up structlog and the stdlib root logger to write to ``stream``.

    ``stream`` defaults to ``sys.stdout`` at call time. Idempotent: a second call
    replaces the first one's handler. Raises ``ConfigError`` for an unknown level
    or format. Not thread-safe: call it from the main thread before threads start.
    """
    if level.lower() not in LEVELS:
        raise ConfigError(f"log level {level!r}: expected one of {', '.join(LEVELS)}")
    if log_format not in FORMATS:
        raise ConfigError(f"log format {log_format!r}: expected one of {FORMATS}")
    level_no = LEVELS[level.lower()]
    out = stream if stream is not None else sys.stdout

    _install_handler(out, log_format, level_no)
    structlog.configure(
        processors=[
            *_shared_processors(),
            tee,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.stdlib.LoggerFactory(ignore_frame_names=[__name__]),
        context_class=dict,
        cache_logger_on_first_use=False,
    )


def _install_handler(out: TextIO, log_format: str, level_no: int) -> None:
    """One handler on the root logger, replacing the one a former call put there."""
    handler = StdoutHandler(out, priorities=is_journal_stream(out))
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(_formatter(log_format, out))
    root = logging.getLogger()
    _remove_handlers(_HANDLER_NAME, close=False)  # the stream is not ours to close
    root.addHandler(handler)
    root.setLevel(level_no)
    for name in NOISY_LOGGERS:
        # Never DEBUG: at that level botocore prints request headers (the session
        # token, the signature), bodies (every *-field of a task) and its signing
        # steps. INFO at --log-level debug, WARNING otherwise.
        logging.getLogger(name).setLevel(
            logging.INFO if level_no <= logging.DEBUG else logging.WARNING
        )


def add_file_log(
    log_dir: Path, *, backup_count: int = FILE_LOG_BACKUPS
) -> logging.handlers.TimedRotatingFileHandler:
    """Also write every line, as JSON whatever the stdout format, to
    ``log_dir/dp-runner.log``, rotated at the top of each UTC hour to
    ``dp-runner.log.YYYY-MM-DD-HH`` (the hour it started); beyond ``backup_count``
    rotated files the oldest are deleted. Returns the handler, so that ``logship``
    can hook its rotation.

    Call after ``configure`` (it sets the level), from the main thread. Replaces
    (and closes) the file log of a former call. Raises ``ConfigError`` when the
    folder or the file cannot be made. A file left by a former run is appended to,
    and rotated at the first line when its hour is over.
    """
    try:
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler = _PrivateFileHandler(
            log_dir / FILE_LOG_NAME,
            when="H",
            utc=True,
            backupCount=backup_count,
            encoding="utf-8",
        )
    except OSError as exc:
        raise ConfigError(f"log file in {log_dir}: cannot open it: {exc}") from exc
    handler.suffix = FILE_LOG_SUFFIX
    handler.extMatch = _FILE_LOG_SUFFIX_MATCH
    handler.set_name(_FILE_HANDLER_NAME)
    handler.setFormatter(_formatter("json", None))
    _remove_handlers(_FILE_HANDLER_NAME, close=True)
    logging.getLogger().addHandler(handler)
    return handler


class _PrivateFileHandler(logging.handlers.TimedRotatingFileHandler):
    """Opens (and, after each rotation, reopens) the file mode 0600 and never
    through a symlink (design.md §3): ``OSError`` (``ELOOP``) instead."""

    def _open(self) -> io.TextIOWrapper:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.baseFilename, flags, 0o600)
        try:
            os.fchmod(fd, 0o600)  # a file left by an older runner may be 0644
        except OSError:
            os.close(fd)
            raise
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def file_log() -> logging.handlers.TimedRotatingFileHandler | None:
    """The handler ``add_file_log`` installed, if it is still installed."""
    for handler in logging.getLogger().handlers:
        if handler.get_name() == _FILE_HANDLER_NAME and isinstance(
            handler, logging.handlers.TimedRotatingFileHandler
        ):
            return handler
    return None


def remove_file_log() -> None:
    """Detach and close the file log, if any (tests; a clean exit closes it anyway)."""
    _remove_handlers(_FILE_HANDLER_NAME, close=True)


def _remove_handlers(name: str, *, close: bool) -> None:
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == name]:
        root.removeHandler(old)
        if close:
            old.close()


def get_logger(name: str | None = None) -> FilteringBoundLogger:
    """A structlog logger named ``name`` (the caller's module when ``None``).

    Safe to call at import time, before ``configure``: the logger reads the
    configuration each time it logs. Thread-safe.
    """
    logger: FilteringBoundLogger = (
        structlog.get_logger(name) if name is not None else structlog.get_logger()
    )
    return logger
