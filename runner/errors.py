"""The exception tree of dp-runner.

A leaf module: it imports nothing from ``runner``. Every error we raise ourselves is a
``RunnerError``; foreign errors (botocore, OSError from exec) are translated into this
tree once, at the module that owns the boundary (``aws/client.py``, ``supervisor/``).
Only ``cli/`` turns a ``RunnerError`` into a message and an exit code, with its one
table (``cli.EXIT_CODES``); the codes' numbers are named here.

::

    RunnerError                    base: exit 1 when it reaches the cli
    ├── ConfigError                exit 78: a bad setting, or the work dir is taken
    │   └── DefinitionError        (pipelinefile) a definition file that cannot be read
    ├── HostFaultError             exit 75: a full disk, an I/O error, no memory
    ├── ServiceError               raised only by client.py, ``from`` the botocore error
    │   ├── TransientServiceError  throttling / 5xx / connection: retried, then raised
    │   ├── TaskNotFoundError      the task or its pipeline is gone: stop, no status
    │   └── RejectedRequestError   4xx validation: never retried, logged as a bug
    │       └── CredentialsRejectedError  who we are was refused: an operator's problem
    ├── ActivityError              bad task definition: task FAILED with error_id
    │   └── StagingError           an S3 transfer or staging step failed
    │       └── TransientStagingError  throttling / 5xx / connection: retried
    └── SpawnError                 the command could not be started: task FAILED

Shutdown is an Event, never an exception.
"""

from __future__ import annotations

import errno

EX_CONFIG = 78
#: EX_TEMPFAIL: the unit restarts on it (design.md §2), unlike on 78.
EX_TEMPFAIL = 75
#: What a host goes through and comes back from: a full disk or quota, an I/O
#: error, no memory.
TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM})


class RunnerError(Exception):
    """Base of every error dp-runner raises on purpose."""


class ConfigError(RunnerError):
    """A setting is invalid, or another runner holds the work dir. Exit 78."""


class HostFaultError(RunnerError):
    """The host failed us for now (``TRANSIENT_ERRNOS``, or SQLite's full disk,
    I/O error or out of memory), at a start: exit 75, and the unit starts the
    runner again; nothing about the settings is wrong."""


def refusal(message: str, exc: OSError) -> RunnerError:
    """``message`` as the error a start raises for ``exc``: a ``HostFaultError``
    when the host is at fault for now, else a ``ConfigError``."""
    if exc.errno in TRANSIENT_ERRNOS:
        return HostFaultError(message)
    return ConfigError(message)


class ServiceError(RunnerError):
    """The Data Pipeline service answered with an error (raised only by client.py).

    ``code`` is the service's error code (``__type``), or a transport name such as
    ``ConnectionError`` or ``ReadTimeout``.
    """

    def __init__(self, operation: str, code: str, message: str) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code
        self.message = message


class TransientServiceError(ServiceError):
    """Throttling, a 5xx answer or a broken connection: worth another try."""


class TaskNotFoundError(ServiceError):
    """The task, or its pipeline, is gone (TaskNotFound, PipelineNotFound/Deleted)."""


class RejectedRequestError(ServiceError):
    """The service rejected the request as invalid. Never retried: it is our bug."""


class CredentialsRejectedError(RejectedRequestError):
    """The service refused who we are: expired or unknown keys, a bad signature
    (often clock skew), or no IAM permission. Never retried; logged as an
    operator's problem, not as our bug."""


class ActivityError(RunnerError):
    """The task object cannot be turned into something to run.

    ``error_id`` is what the task is reported FAILED with, for example
    ``UnsupportedActivity`` or ``MissingField``.
    """

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.message = message


class StagingError(ActivityError):
    """An S3 transfer or a staging step failed; the attempt FAILS with ``error_id``.

    ``error_id`` is one of ``S3NoSuchKey``, ``S3NoSuchBucket``, ``S3AccessDenied``,
    ``S3PathTraversal``, ``S3InvalidUri``, ``S3Error`` (anything else from S3) or
    ``StagingIOError`` (a local file could not be read or written). Raised only by
    ``aws/s3.py`` and ``activities/staging.py``.
    """


class TransientStagingError(StagingError):
    """S3 throttled, answered a 5xx, or the connection broke or timed out: worth
    another try. ``aws/s3.py`` retries it, then raises it (``error_id`` S3Error)."""


class SpawnError(RunnerError):
    """The task's process could not be started (exec failed, no such interpreter)."""
