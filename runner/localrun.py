"""``dp-runner run --local PIPELINE.json``: the one-command demo.

Starts the local Data Pipeline service in this process on an ephemeral loopback port,
submits the definition file over the real wire protocol (CreatePipeline,
PutPipelineDefinition, ActivatePipeline), serves the definition's worker groups with a
real ``Worker`` until every instance has ended, prints a table of instances, and says
whether all of them FINISHED.

It is built from the same parts as a production runner, so the demo proves the real
path: only the endpoint and the service's clock differ. Service time is scaled (by
default a hundredth), so that a step retried after the service's 2-minute minimum
``retryDelay`` finishes in about a second. The runner's own heartbeat is shortened to
match, so that three beats fit in the scaled ``reportProgressTimeout``.

Parameter values come as ``aws datapipeline put-pipeline-definition`` takes them:
``--parameter-values myX=v myY=w`` (several after one flag; a repeated id is an
array) or ``--parameter-values-uri file://values.json`` (``{"values": {...}}``).
Either replaces the file's own ``values`` as a whole, as the AWS CLI does: a run
takes one set of values, and the same flags give the same pipeline on AWS.

Its end takes the daemon's one path: once every instance has ended, the watch thread
queues ``LOCAL_RUN_ENDED`` in the dispatcher's inbox, exactly as a signal would be.

Must not import ``runner.localservice`` at module level: ``cli.py`` imports this module
for its constants and ``run`` without ``--local`` must not pay for the service.
"""

from __future__ import annotations

import dataclasses
import queue
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from runner import daemon, logs, supervisor
from runner.aws import management
from runner.aws.client import Client
from runner.aws.session import new_session
from runner.config import Settings, load_settings
from runner.errors import ConfigError
from runner.pipelinefile import (
    Definition,
    load_definition,
    load_values,
    secret_values,
    values_from_pairs,
    worker_groups,
)
from runner.signals import LOCAL_RUN_ENDED, Request, Signals

if TYPE_CHECKING:
    from runner.localservice import LocalService

#: Instance statuses after which the service will do nothing more on its own.
TERMINAL = frozenset(
    {
        "FINISHED",
        "FAILED",
        "CASCADE_FAILED",
        "CANCELED",
        "SKIPPED",
        "MARK_FINISHED",
        "TIMEDOUT",
    }
)
RUNS_ON_GROUP = "dp-runner-local"
#: What the runner signs its calls to the embedded service with. The service does not
#: check signatures, so the demo needs no AWS account, and real credentials from
#: boto3's chain are never sent to it. S3 (staging) still uses the chain.
LOCAL_CREDENTIALS = ("dp-runner-local", "the-local-service-checks-no-signature")
DEFAULT_TIME_SCALE = 0.01
POLL_STATUS_S = 0.2
#: How long ``run --local`` waits for its pipeline, in real seconds.
LOCAL_RUN_LIMIT_S = 3600.0
VALUES_FLAG = "--parameter-values"


def run(
    config_file: Path | None,
    overrides: dict[str, Any],
    definition: Path,
    defn: Definition,
    time_scale: float,
) -> tuple[list[InstanceRow], Path]:
    """The embedded service, one pipeline, served to its end: the instances' rows
    and the work dir. Raises ``ConfigError``."""
    service = start_service(time_scale)
    try:
        settings = local_settings(
            config_file, overrides, service.endpoint_url, defn, time_scale
        )
        signals = Signals()
        signals.install()
        session = new_session(settings.region, LOCAL_CREDENTIALS)
        runner = daemon.build(settings, signals, session)
        supervisor.enable_subreaper()
        pipeline_id = submit(runner.client, defn, definition.stem)
        runner.log.info(
            "local_pipeline_submitted",
            pipeline_id=pipeline_id,
            definition=str(definition),
            work_dir=str(settings.work_dir),
        )
        daemon.start(runner)
        start_watch(
            runner.client,
            pipeline_id,
            runner.shutdown.requested,
            signals.inbox,
            runner.log,
        )
        daemon.dispatch(runner)
        rows = instance_rows(runner.client, pipeline_id)
    finally:
        service.stop()
    return rows, runner.work_dir.root  # dp-runner-<uid> in a folder of another user


def local_settings(
    config_file: Path | None,
    overrides: dict[str, Any],
    endpoint_url: str,
    defn: Definition,
    time_scale: float,
) -> Settings:
    """Settings for the demo: the embedded endpoint, the definition's groups, and
    runner clocks scaled like the service's."""
    base = load_settings(config_file=config_file, overrides=overrides)
    local: dict[str, Any] = {
        "endpoint_url": endpoint_url,
        "region": base.region or "us-east-1",
        "worker_groups": groups_to_serve(defn),
        "heartbeat_interval": min(base.heartbeat_interval, max(0.1, 60 * time_scale)),
        "lease_timeout": min(base.lease_timeout, max(3.0, 240 * time_scale)),
        "runner_heartbeat_interval": min(
            base.runner_heartbeat_interval, max(1.0, 900 * time_scale)
        ),
        "drain_timeout": min(base.drain_timeout, 10.0),
    }
    if "work_dir" not in overrides:
        local["work_dir"] = Path(tempfile.mkdtemp(prefix="dp-runner-local-"))
    # validated again, but the file is read once (it may be a pipe)
    return Settings.model_validate({**base.model_dump(), **local})


@dataclass(frozen=True, slots=True)
class InstanceRow:
    """One line of the closing table."""

    instance_id: str
    status: str
    attempts: str
    error: str


def start_service(time_scale: float) -> LocalService:
    """The embedded service: loopback, ephemeral port, throwaway state.
    ``ConfigError`` for a ``time_scale`` that is not above 0."""
    if time_scale <= 0:
        raise ConfigError(f"time_scale={time_scale} from --time-scale: must be > 0")
    # imported here: the server, SQLite and the expression parser cost a daemon
    # that never runs --local about 2 MB of RSS (tests/test_lazy_imports.py)
    from runner.localservice import LocalService  # noqa: PLC0415 - see above

    service = LocalService(
        host="127.0.0.1",
        port=0,
        state_path=None,
        time_scale=time_scale,
        poll_hold_s=1.0,
        runs_on_worker_group=RUNS_ON_GROUP,
    )
    service.start()
    return service


def groups_to_serve(defn: Definition) -> list[str]:
    """The definition's worker groups, plus the one that ``runsOn`` maps to."""
    return sorted({*worker_groups(defn), RUNS_ON_GROUP})


def submit(client: Client, defn: Definition, name: str) -> str:
    """Create, put and activate; ``ConfigError`` when the definition is refused.

    First, the definition's secret values (``*my…`` parameters, what ``*`` fields
    use) are masked in every log line from now on (``logs.mask_values``): the
    put's body carries them, and botocore logs bodies at debug level; so do the
    task objects the runner will receive."""
    logs.mask_values(secret_values(defn))
    pipeline_id = management.create_pipeline(
        client, name, f"dp-runner-local-{uuid.uuid4()}"
    )
    answer = management.put_pipeline_definition(
        client,
        pipeline_id,
        defn.pipeline_objects,
        defn.parameter_objects,
        defn.parameter_values,
    )
    problems = [
        f"{item.get('id')}: {error}"
        for item in answer.get("validationErrors", [])
        for error in item.get("errors", [])
    ]
    if answer.get("errored") or problems:
        raise ConfigError("the definition is invalid:\n  " + "\n  ".join(problems))
    management.activate_pipeline(client, pipeline_id, defn.parameter_values)
    return pipeline_id


def instance_rows(client: Client, pipeline_id: str) -> list[InstanceRow]:
    """Every instance of the pipeline, with its status, attempts and last error."""
    ids = management.query_objects(client, pipeline_id, "INSTANCE")
    rows = []
    for obj in client.describe_objects(pipeline_id, ids) if ids else []:
        fields = {
            f["key"]: f.get("stringValue", f.get("refValue", ""))
            for f in obj.get("fields", [])
        }
        rows.append(
            InstanceRow(
                instance_id=str(obj["id"]),
                status=str(fields.get("@status", "?")),
                attempts=str(fields.get("@attemptCount", "0")),
                error=str(fields.get("errorId", "") or fields.get("errorMessage", ""))[
                    :60
                ],
            )
        )
    return sorted(rows, key=lambda row: row.instance_id)


def wait_all_ended(
    client: Client,
    pipeline_id: str,
    stop: threading.Event,
    timeout_s: float,
    on_change: Callable[[list[InstanceRow]], None],
) -> list[InstanceRow]:
    """Watch the instances until all are terminal, ``stop`` is set or time runs
    out; returns the last rows seen."""
    deadline = time.monotonic() + timeout_s
    rows: list[InstanceRow] = []
    last: list[tuple[str, str]] = []
    while not stop.is_set() and time.monotonic() < deadline:
        rows = instance_rows(client, pipeline_id)
        seen = [(row.instance_id, row.status) for row in rows]
        if seen != last:
            on_change(rows)
            last = seen
        if rows and all(row.status in TERMINAL for row in rows):
            break
        stop.wait(POLL_STATUS_S)
    return rows


def render_table(rows: list[InstanceRow]) -> str:
    """The closing table, fixed-width for a terminal."""
    header = InstanceRow("INSTANCE", "STATUS", "ATTEMPTS", "ERROR")
    width = max([len(r.instance_id) for r in [header, *rows]])
    lines = [
        f"{r.instance_id:<{width}}  {r.status:<16}  {r.attempts:>8}  {r.error}"
        for r in [header, *rows]
    ]
    return "\n".join(lines)


def load(
    path: Path, *, pairs: Sequence[str] = (), values_uri: str | None = None
) -> Definition:
    """The definition file, its ``values`` replaced by the ``ID=VALUE`` pairs of
    ``--parameter-values``, or by the values file ``values_uri`` names
    (``file://PATH``, or a plain path). ``ConfigError`` (exit 78) when a file
    cannot be read or is not what it should be (the message names it), or for a
    pair without ``=``."""
    values: list[dict[str, Any]] | None = None
    try:
        defn = load_definition(path)
        if values_uri is not None:
            location = values_uri.removeprefix("file://")
            if "://" in location:
                raise ConfigError(f"{values_uri}: only file:// values files are read")
            values = load_values(Path(location))
    except ValueError as exc:  # a DefinitionError, which names the file
        raise ConfigError(str(exc)) from exc
    if pairs:
        try:
            values = values_from_pairs(pairs)
        except ValueError as exc:
            raise ConfigError(f"--parameter-values: {exc}") from exc
    if values is None:
        return defn
    return dataclasses.replace(defn, parameter_values=values)


def spread_values(args: list[str]) -> list[str]:
    """``--parameter-values a b --x`` as ``--parameter-values a --parameter-values b
    --x``: the AWS CLI takes several values after the one flag, a click option one.
    ``run`` has no positional argument, so every plain word after the flag's own
    value, up to the next option, is one more value."""
    out: list[str] = []
    state = ""  # "value": the flag's own value is next; "more": spread the words
    for arg in args:
        if state == "value":
            state = "more"
        elif state == "more" and not arg.startswith("-"):
            out.append(VALUES_FLAG)
        elif arg == VALUES_FLAG:
            state = "value"
        else:  # --parameter-values=myX=v carries its own value
            state = "more" if arg.startswith(f"{VALUES_FLAG}=") else ""
        out.append(arg)
    return out


def start_watch(
    client: Client,
    pipeline_id: str,
    stop: threading.Event,
    inbox: queue.SimpleQueue[Request],
    log: structlog.typing.FilteringBoundLogger,
) -> None:
    """Watch the pipeline on a ``local-watch`` thread, logging each instance's new
    status; ``LOCAL_RUN_ENDED`` goes to ``inbox`` once every instance has ended,
    ``stop`` is set, time runs out, or the watch failed (logged)."""

    def watch() -> None:
        try:
            wait_all_ended(
                client, pipeline_id, stop, LOCAL_RUN_LIMIT_S, log_progress(log)
            )
        except Exception:
            log.exception("local_watch_failed")
        finally:
            inbox.put(LOCAL_RUN_ENDED)

    threading.Thread(target=watch, name="local-watch", daemon=True).start()


def log_progress(
    log: structlog.typing.FilteringBoundLogger,
) -> Callable[[list[InstanceRow]], None]:
    """A change callback that logs each instance's new status once."""
    known: dict[str, str] = {}

    def on_change(rows: list[InstanceRow]) -> None:
        for row in rows:
            if known.get(row.instance_id) != row.status:
                known[row.instance_id] = row.status
                log.info(
                    "instance_status",
                    instance_id=row.instance_id,
                    status=row.status,
                    attempts=row.attempts,
                )

    return on_change
