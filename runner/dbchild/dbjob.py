"""The database child program: ``python -m runner.dbchild``.

Owns: reading the job (JSON, handed over on fd 0 once the child is non-dumpable:
``handshake.py``; connection, password, SQL, data nodes),
running it (a SqlActivity script statement by statement, or a copy through
``copyjob``), stopping it on SIGTERM, and reporting through the result file
(``write_result``, read by ``activities/dbprocess.py``) and the exit code:

    0     done; the result holds the row count
    1     failed; the result holds the errorId (``SqlError:<SQLSTATE>``...) and
          the server's message, the password redacted
    143   stopped by SIGTERM/SIGINT: the running statement was cancelled on the
          server and the open transaction rolled back

Must not: print the job, the password or a connection URL; be imported by the
runner (it imports the drivers).

Why this way: the supervisor stops a task by SIGTERM to its tree, then SIGKILL
after ``kill_grace``; a killed client leaves its statement running on the server.
So the signals are blocked in every thread and one thread takes them with
``sigwait`` (no handler interrupts a driver mid-call), then cancels the statement
through the driver, again every 0.2 s until the main thread is done (a cancel that
lands between two statements cancels nothing). The main thread sees the
cancellation as an error, or, MySQL's ``SLEEP``, as an early end, checks the stop,
rolls back and exits. Running in a child keeps a driver crash or a leak out of the
runner, and the runner never imports a driver.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from runner.aws.s3stream import S3Streams
from runner.dbchild import copyjob, dbsession, redshiftcopy, sqlscript
from runner.dbchild.handshake import make_undumpable, receive_job
from runner.errors import ActivityError
from runner.masking import redact

SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
EXIT_STOPPED = 143
CANCEL_EVERY_S = 0.2


class Stopped(Exception):  # noqa: N818 - control flow: the stop signal came
    """SIGTERM (or SIGINT, SIGHUP) arrived."""


class StopWatch:
    """Takes the stop signals on its own thread and cancels what runs."""

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self.done = threading.Event()
        self._cancel: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        threading.Thread(target=self._run, name="dbjob-stop", daemon=True).start()

    def on_stop(self, cancel: Callable[[], None]) -> None:
        """Call ``cancel`` on a stop (the current session's)."""
        with self._lock:
            self._cancel = cancel

    def check(self) -> None:
        if self.stopped.is_set():
            raise Stopped

    def _run(self) -> None:
        signal.sigwait(SIGNALS)
        self.stopped.set()
        while True:
            with self._lock:
                cancel = self._cancel
            if cancel is not None:
                cancel()
            if self.done.wait(CANCEL_EVERY_S):
                return


def _say(event: str, **fields: Any) -> None:
    """One JSON line on stdout (the attempt's StdOutput)."""
    print(json.dumps({"event": event, **fields}), flush=True)  # noqa: T201 - the child's log


def run_script(
    job: Mapping[str, Any], watch: StopWatch, on_session: Callable[..., None]
) -> int:
    """A SqlActivity: each statement in order, autocommit; the rows affected."""
    conn = job["connection"]
    session = dbsession.connect(conn, queue=job.get("queue"))
    on_session(session)
    statements = sqlscript.split(job["script"], mysql=conn["engine"] == "mysql")
    arguments: list[str] = list(job.get("arguments") or [])
    wanted = sum(s.arguments for s in statements)
    if wanted != len(arguments):
        raise ActivityError(
            "InvalidField",
            f"the script has {wanted} '?' placeholders but {len(arguments)} "
            "scriptArgument values",
        )
    total = used = 0
    for index, statement in enumerate(statements, start=1):
        watch.check()
        params = arguments[used : used + statement.arguments]
        used += statement.arguments
        text = statement.bound_text() if params else statement.text
        try:
            rows = session.execute(text, params or None)
        except dbsession.SqlError as exc:
            watch.check()
            exc.message = f"{exc.message} (statement {index} of {len(statements)})"
            raise
        watch.check()  # MySQL's SLEEP() ends early, without an error, when killed
        _say("sql_statement", statement=index, rows=rows)
        total += max(rows, 0)
    return total


class _Sessions:
    """The sessions a job opened: each registered with the stop watch, rolled back
    and closed at the end, whatever happened."""

    def __init__(self, watch: StopWatch) -> None:
        self.watch = watch
        self.open: list[dbsession.Session] = []

    def add(self, session: dbsession.Session) -> None:
        self.open.append(session)
        self.watch.on_stop(session.cancel)

    def close(self) -> None:
        for session in self.open:
            session.rollback()
            session.close()


def run(job: Mapping[str, Any], watch: StopWatch, sessions: _Sessions) -> int:
    if job["kind"] == "sql":
        return run_script(job, watch, sessions.add)
    if job["kind"] == "redshift_copy":
        return redshiftcopy.run_redshift_copy(job, watch.check, sessions.add, _say)
    log = structlog.get_logger("dbjob")
    streams = S3Streams(region=job.get("region"), log=log)
    return copyjob.run_copy(job, streams, watch.check, sessions.add, _say)


def write_result(path: str, **fields: Any) -> None:
    """Write the result the runner reads (``activities/dbprocess.read_report``),
    never through a symlink."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(fields, file)


def secrets_of(job: Mapping[str, Any]) -> list[str]:
    """Every password the job carries, and the AWS credentials of a Redshift
    COPY or UNLOAD, to redact from what the child writes."""
    found = []
    for node in (job, job.get("input") or {}, job.get("output") or {}):
        conn = node.get("connection") or {}
        if conn.get("password"):
            found.append(str(conn["password"]))
    credentials = redshiftcopy.credentials_of(job)
    if credentials is not None:
        found.extend(credentials.secrets())
    return found


def main() -> int:
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)  # threads inherit the mask
    make_undumpable()  # again, in case main() is called without __main__
    received = receive_job()
    if not received:  # the runner withholds the job from a dumpable child
        sys.stderr.write("dbjob: no job received on fd 0\n")
        return 1
    job = json.loads(received)
    secrets = secrets_of(job)
    result_path = str(job["result_path"])
    watch = StopWatch()
    watch.start()
    sessions = _Sessions(watch)
    try:
        rows = run(job, watch, sessions)
    except Stopped:
        _say("job_stopped")
        return EXIT_STOPPED
    except (dbsession.SqlError, ActivityError) as exc:
        if watch.stopped.is_set():
            return EXIT_STOPPED
        message = redact(exc.message, secrets)
        write_result(result_path, error_id=exc.error_id, message=message)
        _say("job_failed", error_id=exc.error_id, message=message)
        return 1
    except Exception:  # noqa: BLE001 - the child's top: a bug, told without secrets
        sys.stderr.write(redact(traceback.format_exc(), secrets))
        return 1
    finally:
        watch.done.set()
        sessions.close()
    write_result(result_path, rows=rows)
    _say("job_finished", rows=rows)
    return 0
