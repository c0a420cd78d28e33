"""structlog setup: one pipeline for the runner's own lines and for stdlib loggers.

Owns: how a log line looks (JSON lines when the stream is not a TTY, the console
renderer on a TTY), the level filter, the secret-key redaction, the masking of
known secret values (``mask_values``), and routing the stdlib loggers of
boto3/botocore/urllib3 through the same processors.

Must not: decide *what* is logged, read ``Settings`` (``cli.py`` passes the values),
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
``add-mask``): from then on they are blanked out of every event's values, before
the attempt log's tee sees them, and out of every rendered line (tracebacks
included), in stdout and in the file log alike.

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

import functools
import io
import json
import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from runner.errors import ConfigError

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

#: A key is secret when its lower-cased name contains one of these, or starts with '*'
#: (Data Pipeline's convention for secret fields such as ``*password``).
SECRET_KEY_PARTS = (
    "secret",
    "password",
    "passwd",
    "token",
    "credential",
    "authorization",
)
REDACTED = "***"
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


@functools.lru_cache(maxsize=1024)
def _is_secret_key(key: str) -> bool:
    """Cached: lines use a few key names, and this ran on every key of every line
    (a tenth of a line's instructions)."""
    lowered = key.lower()
    return key.startswith("*") or any(part in lowered for part in SECRET_KEY_PARTS)


def _redact_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: REDACTED
            if isinstance(k, str) and _is_secret_key(k)
            else _redact_value(v)
            for k, v in value.items()
        }
    return value


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Mask the values of keys that look secret, also one mapping deep and more."""
    for key in list(event_dict):
        if key == "event" or key.startswith("_"):
            continue  # the message itself and the formatter's private keys
        if _is_secret_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact_value(event_dict[key])
    return event_dict


def tee(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Hand the finished line to the callable bound under ``TEE_KEY``, if any."""
    target = event_dict.pop(TEE_KEY, None)
    if target is not None:
        target(event_dict)
    return event_dict


_ESCAPES: tuple[Callable[[str], str], ...] = (
    lambda text: json.dumps(text)[1:-1],
    lambda text: repr(text)[1:-1],
    lambda text: repr(text.encode())[2:-1],
)


class _Masks:
    """The secret values registered with ``mask_values``, in every form a line
    may show them in. Added to from the main thread; read from any thread (one
    attribute holding a tuple, replaced whole)."""

    def __init__(self) -> None:
        self.forms: tuple[str, ...] = ()

    def add(self, values: Iterable[str]) -> None:
        forms = set(self.forms)
        for value in values:
            # as written, and escaped once or twice: botocore logs the repr of a
            # JSON body (bytes), and a JSON line escapes a traceback again
            once = {value, *(escape(value) for escape in _ESCAPES)}
            forms.update(once, (escape(form) for form in once for escape in _ESCAPES))
        forms.discard("")
        self.forms = tuple(sorted(forms, key=len, reverse=True))

    def apply(self, text: str) -> str:
        for form in self.forms:
            text = text.replace(form, REDACTED)
        return text

    def apply_any(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.apply(value)
        if isinstance(value, Mapping):
            return {k: self.apply_any(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.apply_any(v) for v in value]
        if isinstance(value, tuple):  # exc_info among them: keep it a tuple
            return tuple(self.apply_any(v) for v in value)
        return value


_MASKS = _Masks()


def mask_values(values: Iterable[str]) -> None:
    """From now on, show each of ``values`` as ``***`` wherever it appears in a
    log line, whatever the key or logger. Process-wide and for good; call it from
    the main thread before anything could log the values. Empty strings are
    ignored."""
    _MASKS.add(values)


def mask_known_values(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Blank the ``mask_values`` values out of every value of the event."""
    if not _MASKS.forms:
        return event_dict
    for key in list(event_dict):
        if not key.startswith("_"):
            event_dict[key] = _MASKS.apply_any(event_dict[key])
    return event_dict


def _shared_processors() -> list[Processor]:
    """What every line gets, structlog or stdlib: context, logger, level, time."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
        mask_known_values,
    ]


def _formatter(log_format: str, stream: TextIO | None) -> logging.Formatter:
    processors = _renderer_chain(log_format, stream)
    formatter = (
        _JSONFormatter if processors[-1] is _JSON_RENDERER else _MaskingFormatter
    )
    return formatter(foreign_pre_chain=_shared_processors(), processors=processors)


class _MaskingFormatter(structlog.stdlib.ProcessorFormatter):
    """Masks the ``mask_values`` values in the rendered line too: a traceback is
    rendered after the processors that mask the event's values."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return _MASKS.apply(line) if _MASKS.forms else line


class _JSONFormatter(_MaskingFormatter):
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
            structlog.dev.ConsoleRenderer(colors=is_tty),
        ]
    return [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.processors.format_exc_info,
        _JSON_RENDERER,
    ]


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
            structlog.processors.StackInfoRenderer(),
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
    handler = logging.StreamHandler(out)
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
