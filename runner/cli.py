"""The ``dp-runner`` command line: the composition root.

It loads ``Settings``, sets up logs and signals, builds the objects and wires them
together; it is the only module that reads ``Settings``, imports click, echoes or
exits. ``RunnerError`` becomes a message and an exit code here and nowhere else
(click style): 0 clean stop, 1 crash, 2 usage, 4 ``run --local`` ended with instances
that did not finish, 78 configuration.

The main thread only handles signals and the lifecycle (amazon-ssm-agent's
``blockUntilSignaled``): it waits on the stop events, drains the worker, and exits.
"""

from __future__ import annotations

import dataclasses
import gc
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import structlog

from runner import localrun, logs, logship, supervisor, systemd
from runner.aws.client import Client
from runner.aws.s3 import S3
from runner.aws.session import new_session
from runner.config import Settings, load_settings
from runner.errors import RunnerError
from runner.pipelinefile import Definition
from runner.signals import Signals
from runner.task.execution import ExecutionSettings
from runner.workdir import WorkDir
from runner.worker import Worker, default_hostname

EXIT_UNFINISHED = 4
MAIN_LOOP_S = 0.2
#: The S3 read timeout is max(this, kill_grace): a stop leaves a hung transfer
#: behind, and its thread must end soon after (issue: every wait is stoppable).
S3_MIN_READ_TIMEOUT_S = 1.0


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dp-runner")
def main() -> None:
    """dp-runner: a task runner for AWS Data Pipeline."""


def _run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--config",
            "config_file",
            type=click.Path(path_type=Path),
            envvar="DP_RUNNER_CONFIG",
            help="TOML file (config.example.toml).",
        ),
        click.option(
            "--worker-group",
            "worker_groups",
            multiple=True,
            help="Worker group to serve; repeat for several.",
        ),
        click.option("--region", help="AWS region (default: boto3's chain)."),
        click.option("--endpoint-url", help="Data Pipeline endpoint override."),
        click.option("--taskrunner-id", help="Id sent with the runner heartbeat."),
        click.option("--hostname", help="Host name sent to the service."),
        click.option("--max-tasks", type=int, help="Task slots (default 2)."),
        click.option(
            "--heartbeat-interval",
            type=float,
            help="Seconds between progress reports (60).",
        ),
        click.option(
            "--runner-heartbeat-interval",
            type=float,
            help="Seconds between runner heartbeats (900).",
        ),
        click.option(
            "--lease-timeout",
            type=float,
            help="Seconds without a good heartbeat before a task is given up (240).",
        ),
        click.option("--kill-grace", type=float, help="SIGTERM to SIGKILL (10)."),
        click.option(
            "--drain-timeout",
            type=float,
            help="Seconds SIGTERM lets running tasks finish (60).",
        ),
        click.option(
            "--work-dir",
            type=click.Path(path_type=Path),
            help="Attempt folders, logs and state.",
        ),
        click.option("--log-format", type=click.Choice(["auto", "json", "console"])),
        click.option(
            "--log-level", type=click.Choice(["debug", "info", "warning", "error"])
        ),
        click.option("--log-uri", help="S3 URI for the runner's own log."),
        click.option(
            "--keep-attempts", type=float, help="Days to keep attempt folders (7)."
        ),
        click.option(
            "--local",
            "local_definition",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Run PIPELINE.json to completion on an embedded local service.",
        ),
        click.option(
            "--time-scale",
            type=float,
            default=localrun.DEFAULT_TIME_SCALE,
            show_default=True,
            help="With --local: the service's clock scale.",
        ),
        click.option(
            localrun.VALUES_FLAG,
            multiple=True,
            metavar="ID=VALUE...",
            help="With --local: parameter values, instead of the file's.",
        ),
        click.option(
            "--parameter-values-uri",
            metavar="file://FILE",
            help='With --local: a {"values": {...}} file, instead of the file\'s.',
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


class _RunCommand(click.Command):
    """``run``, whose ``--parameter-values`` takes several values after one flag."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, localrun.spread_values(args))


@main.command(cls=_RunCommand)
@_run_options
def run(
    config_file: Path | None,
    local_definition: Path | None,
    time_scale: float,
    parameter_values: tuple[str, ...],
    parameter_values_uri: str | None,
    **flags: Any,
) -> None:
    """Serve worker groups: poll, run tasks, report (design.md §2)."""
    values, values_uri = parameter_values, parameter_values_uri
    if values and values_uri is not None:
        raise click.UsageError("--parameter-values-uri excludes --parameter-values")
    if (values or values_uri is not None) and local_definition is None:
        raise click.UsageError("parameter values go with --local")
    overrides = {k: v for k, v in flags.items() if v not in (None, ())}
    if "worker_groups" in overrides:
        overrides["worker_groups"] = list(overrides["worker_groups"])
    try:
        if local_definition is not None:
            defn = localrun.load(local_definition, pairs=values, values_uri=values_uri)
            code = _run_local(
                config_file, overrides, local_definition, defn, time_scale
            )
        else:
            settings = load_settings(config_file=config_file, overrides=overrides)
            code = _serve(settings)
    except RunnerError as exc:
        click.echo(f"dp-runner: {exc}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(code)


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; loopback unless you mean otherwise.",
)
@click.option("--port", default=8765, show_default=True, type=int)
@click.option(
    "--state",
    "state_path",
    type=click.Path(path_type=Path),
    help="SQLite state file (default: a temporary one).",
)
@click.option(
    "--time-scale",
    default=1.0,
    show_default=True,
    type=float,
    help="Multiplies every service window (ack, timeouts, retryDelay).",
)
@click.option(
    "--poll-hold",
    default=90.0,
    show_default=True,
    type=float,
    help="Seconds an empty PollForTask is held.",
)
@click.option(
    "--runs-on-worker-group",
    default=localrun.RUNS_ON_GROUP,
    show_default=True,
    help="Worker group that runsOn activities go to.",
)
def local(  # noqa: PLR0917 - click passes each option positionally
    host: str,
    port: int,
    state_path: Path | None,
    time_scale: float,
    poll_hold: float,
    runs_on_worker_group: str,
) -> None:
    """Serve the Data Pipeline API locally (AWS JSON 1.1 over HTTP)."""
    from runner.localservice import LocalService  # noqa: PLC0415 - only this command

    logs.configure()
    service = LocalService(
        host, port, state_path, time_scale, poll_hold, runs_on_worker_group
    )
    signals = Signals()
    signals.install()
    service.start()
    click.echo(
        f"dp-runner local: serving the Data Pipeline API on {service.endpoint_url}",
        err=True,
    )
    signals.stop.wait()
    service.stop()


def _settle_memory() -> None:
    """Once, before the first poll. The sessions behind the clients are garbage in
    reference cycles, and with them the endpoint table they parsed (aws/session.py):
    about 2 MB of RSS."""
    gc.collect()


def _components(
    settings: Settings, signals: Signals, session: Any = None
) -> tuple[structlog.typing.FilteringBoundLogger, Client, S3, WorkDir]:
    """Logs, the work dir (locked), the clients. ``session``: the boto3 session of
    the Data Pipeline client (``run --local``); None for boto3's chain."""
    logs.configure(log_format=settings.log_format, level=settings.log_level)
    log = logs.get_logger("dp-runner")
    work_dir = WorkDir(settings.work_dir)
    work_dir.lock()
    logs.add_file_log(work_dir.root / logs.LOG_DIR_NAME)
    client = Client(
        region=settings.region,
        endpoint_url=settings.endpoint_url,
        stop=signals.stop,
        abort=signals.fast_stop,
        log=log,
        session=session,
    )
    s3 = S3(
        region=settings.region, log=log, read_timeout_s=_s3_read_timeout_s(settings)
    )
    return log, client, s3, work_dir


def _s3_read_timeout_s(settings: Settings) -> float:
    """An attempt abandons a hung transfer on a stop: its thread must end within a
    read. A stopped attempt's log upload gets as long (one read)."""
    return max(S3_MIN_READ_TIMEOUT_S, settings.kill_grace)


def _worker(
    settings: Settings,
    client: Client,
    s3: S3,
    work_dir: WorkDir,
    log: structlog.typing.FilteringBoundLogger,
) -> Worker:
    return Worker(
        client=client,
        s3=s3,
        work_dir=work_dir,
        worker_groups=list(settings.worker_groups),
        hostname=settings.hostname or default_hostname(),
        taskrunner_id=settings.taskrunner_id or work_dir.taskrunner_id(),
        max_tasks=settings.max_tasks,
        runner_heartbeat_interval=settings.runner_heartbeat_interval,
        drain_timeout=settings.drain_timeout,
        keep_attempts=settings.keep_attempts,
        execution_settings=ExecutionSettings(
            heartbeat_interval=settings.heartbeat_interval,
            lease_timeout=settings.lease_timeout,
            kill_grace=settings.kill_grace,
            region=settings.region or client.region,
            wind_down_s=_s3_read_timeout_s(settings),
        ),
        log=log,
    )


def _serve(settings: Settings) -> int:
    """The daemon: run until a signal or ``terminate`` drains it. Returns 0."""
    settings.require_worker_groups()
    signals = Signals()
    signals.install()
    log, client, s3, work_dir = _components(settings, signals)
    runner_id = settings.taskrunner_id or settings.hostname or default_hostname()
    shipper = logship.start(settings.log_uri, s3=s3, runner_id=runner_id, log=log)
    supervisor.enable_subreaper()
    worker = _worker(settings, client, s3, work_dir, log)
    worker.preflight()
    _settle_memory()
    worker.start()
    systemd.ready()
    _block_until_drained(worker, signals, threading.Event())
    systemd.stopping()
    log.info("runner_stopped", **dataclasses.asdict(worker.statistics()))
    if shipper is not None:
        shipper.close(logship.CLOSE_TIMEOUT_S)
    return 0


def _block_until_drained(
    worker: Worker, signals: Signals, done: threading.Event
) -> None:
    """The main loop: turn signals into drain/hurry, reap, exit once drained.
    ``done`` lets ``run --local`` end the loop when its pipeline has ended."""
    while True:
        if signals.fast_stop.is_set():
            worker.hurry()
        if signals.stop.is_set() or done.is_set() or worker.terminate_requested:
            worker.drain()
            worker.expire()
        if worker.draining and worker.idle():
            break
        if signals.dump_stacks.is_set():
            signals.dump_stacks.clear()
            signals.dump()
        worker.housekeeping()
        systemd.watchdog()
        signals.wakeup.wait(MAIN_LOOP_S)
        signals.wakeup.clear()
    worker.wait_done(5.0)
    worker.stop()


def _run_local(
    config_file: Path | None,
    overrides: dict[str, Any],
    definition: Path,
    defn: Definition,
    time_scale: float,
) -> int:
    """``run --local``: the embedded service, one pipeline, to the end."""
    service = localrun.start_service(time_scale)
    try:
        settings = _local_settings(
            config_file, overrides, service.endpoint_url, defn, time_scale
        )
        signals = Signals()
        signals.install()
        local = new_session(settings.region, localrun.LOCAL_CREDENTIALS)
        log, client, s3, work_dir = _components(settings, signals, local)
        supervisor.enable_subreaper()
        pipeline_id = localrun.submit(client, defn, definition.stem)
        log.info(
            "local_pipeline_submitted",
            pipeline_id=pipeline_id,
            definition=str(definition),
            work_dir=str(settings.work_dir),
        )
        worker = _worker(settings, client, s3, work_dir, log)
        worker.start()
        done = localrun.start_watch(client, pipeline_id, signals.stop, log)
        _block_until_drained(worker, signals, done)
        rows = localrun.instance_rows(client, pipeline_id)
    finally:
        service.stop()
    click.echo(localrun.render_table(rows))
    click.echo(f"attempt folders: {settings.work_dir / 'attempts'}")
    ok = bool(rows) and all(row.status == "FINISHED" for row in rows)
    return 0 if ok else EXIT_UNFINISHED


def _local_settings(
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
        "worker_groups": localrun.groups_to_serve(defn),
        "heartbeat_interval": min(base.heartbeat_interval, max(0.1, 60 * time_scale)),
        "lease_timeout": min(base.lease_timeout, max(3.0, 240 * time_scale)),
        "runner_heartbeat_interval": min(
            base.runner_heartbeat_interval, max(1.0, 900 * time_scale)
        ),
        "drain_timeout": min(base.drain_timeout, 10.0),
    }
    if "work_dir" not in overrides:
        local["work_dir"] = Path(tempfile.mkdtemp(prefix="dp-runner-local-"))
    return load_settings(config_file=config_file, overrides={**overrides, **local})
