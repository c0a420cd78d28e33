"""The ``dp-runner`` command line: the composition root.

It loads ``Settings``, sets up logs and signals, builds the objects and wires them
together; it is the only module that reads ``Settings``, imports click, echoes or
exits. An error becomes a message and an exit code here and nowhere else, through
one table (``EXIT_CODES``, click style): 0 clean stop, 1 crash (or a ``RunnerError``
with no row), 2 usage, 4 ``run --local`` ended with instances that did not finish,
75 the host failed the start for now (the unit restarts), 78 configuration;
``exec`` adds 3 (a precondition FALSE), 4 (the activity FAILED) and 5 (stopped by a
signal).

The daemon itself is put together and dispatched by ``daemon.py`` (and ``run
--local`` by ``localrun.py``): they are the rest of the composition root.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from runner import daemon, execone, localflags, localrun, localshow, logs, migration
from runner.config import load_settings
from runner.errors import (
    EX_CONFIG,
    EX_TEMPFAIL,
    ConfigError,
    HostFaultError,
    RunnerError,
)
from runner.execslot import ExecUsageError
from runner.pipelinefile import Definition
from runner.signals import STOP_SIGNALS, Signals

EXIT_UNFINISHED = 4
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


def _fail(command: str, exc: Exception) -> NoReturn:
    """Say why ``command`` cannot go on, and exit with the code ``exc`` maps to."""
    click.echo(f"{command}: {exc}", err=True)
    sys.exit(exit_code(exc))


class _Main(click.Group):
    """The group: the Java runner's flags, and ``run``'s options given without
    ``run``, are answered before click parses them (``_migration_hints``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        _migration_hints(ctx, args, self.commands.get("run"))
        return super().parse_args(ctx, args)


def _migration_hints(
    ctx: click.Context, args: list[str], run_command: click.Command | None
) -> None:
    """One line on stderr and exit 2 for a Java Task Runner flag (its dp-runner
    equivalent) or for ``dp-runner --worker-group wg`` (the ``run`` it needs)."""
    answer = migration.java_flag_answer(args)
    if answer is None and run_command is not None:
        options = {o for p in run_command.params for o in getattr(p, "opts", ())}
        answer = migration.misplaced_run_option(args, options)
    if answer is not None:
        click.echo(f"dp-runner: {answer}", err=True)
        ctx.exit(2)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
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
        click.option("--run-as", help="When root: run tasks as this user."),
        click.option(
            "--keep-attempts", type=float, help="Days to keep attempt folders (7)."
        ),
        click.option(
            "--http-address",
            metavar="HOST:PORT",
            help="Serve /healthz, /readyz and /metrics there (default: off).",
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
        click.option(
            "--keep",
            is_flag=True,
            help="With --local: keep the work dir it made, even when all finished.",
        ),
        click.option(
            "--quiet",
            is_flag=True,
            help="With --local: do not show each finished attempt's output.",
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
    *,
    keep: bool,
    quiet: bool,
    **flags: Any,
) -> None:
    """Serve worker groups: poll, run tasks, report (docs/configuration.md)."""
    values, values_uri = parameter_values, parameter_values_uri
    if values and values_uri is not None:
        raise click.UsageError("--parameter-values-uri excludes --parameter-values")
    if (values or values_uri is not None) and local_definition is None:
        raise click.UsageError("parameter values go with --local")
    if keep and local_definition is None:
        raise click.UsageError("--keep goes with --local")
    if quiet and local_definition is None:
        raise click.UsageError("--quiet goes with --local")
    overrides = {k: v for k, v in flags.items() if v not in (None, ())}
    unused = localflags.unused_flags(overrides)
    if unused and local_definition is not None:
        raise click.UsageError(
            f"run --local does not use {', '.join(unused)}: it serves the "
            "definition's own worker groups on its own embedded service"
        )
    if "worker_groups" in overrides:
        overrides["worker_groups"] = list(overrides["worker_groups"])
    try:
        if local_definition is not None:
            defn = localrun.load(local_definition, pairs=values, values_uri=values_uri)
            code = _run_local(
                config_file,
                overrides,
                local_definition,
                defn,
                time_scale,
                keep=keep,
                quiet=quiet,
            )
        else:
            settings = load_settings(config_file=config_file, overrides=overrides)
            code = daemon.serve(settings)
    except RunnerError as exc:
        _fail("dp-runner", exc)
    sys.exit(code)


def _run_local(
    config_file: Path | None,
    overrides: dict[str, Any],
    definition: Path,
    defn: Definition,
    time_scale: float,
    *,
    keep: bool,
    quiet: bool,
) -> int:
    """``run --local``: the closing table, the work dir removed when every
    instance FINISHED (unless ``keep``), and 0 when every instance FINISHED."""
    outcome = localrun.run(
        config_file, overrides, definition, defn, time_scale, click.echo, quiet=quiet
    )
    removed = localrun.clean_up(outcome, keep=keep)
    for line in localshow.closing_lines(outcome, removed=removed):
        click.echo(line)
    return 0 if outcome.finished else EXIT_UNFINISHED


class _ExecCommand(click.Command):
    """``exec``, whose ``--parameter-values`` takes several values after one flag."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, execone.spread_values(args))


@main.command(name="exec", cls=_ExecCommand)
@click.argument(
    "definition", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--object", "target", required=True, help="Activity or precondition id.")
@click.option(
    "--scheduled-start",
    required=True,
    metavar="TIME",
    help="The slot's @scheduledStartTime, ISO 8601 (UTC unless an offset is given).",
)
@click.option(
    localrun.VALUES_FLAG,
    "parameter_values",
    multiple=True,
    metavar="ID=VALUE...",
    help="Parameter values, instead of the file's (masked *my... never here).",
)
@click.option(
    "--parameter-values-uri",
    metavar="file://FILE",
    help='A {"values": {...}} file, instead of the file\'s.',
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    envvar="DP_RUNNER_CONFIG",
    help="TOML file (config.example.toml).",
)
@click.option(
    "--work-dir",
    type=click.Path(path_type=Path),
    help="Attempt folders, logs and state (default: a temporary one).",
)
@click.option("--kill-grace", type=float, help="SIGTERM to SIGKILL (10).")
@click.option("--run-as", help="When root: run the task as this user.")
@click.option("--log-format", type=click.Choice(["auto", "json", "console"]))
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--keep", is_flag=True, help="Keep the work dir it made, even on exit 0.")
def exec_(  # noqa: PLR0917 - click passes each option
    definition: Path,
    target: str,
    scheduled_start: str,
    parameter_values: tuple[str, ...],
    parameter_values_uri: str | None,
    config_file: Path | None,
    *,
    keep: bool,
    **flags: Any,
) -> None:
    """Run one instance of one activity or precondition of DEFINITION, here.

    Masked *my... values come from DP_PARAMETER_<name> (for *myPassword:
    DP_PARAMETER_myPassword) or the values file. Exit 0 FINISHED, 3 the
    precondition is FALSE, 4 FAILED, 5 stopped by a signal, 78 a definition or
    configuration error, 2 usage (docs/install.md)."""
    if parameter_values and parameter_values_uri is not None:
        raise click.UsageError("--parameter-values-uri excludes --parameter-values")
    overrides = {k: v for k, v in flags.items() if v is not None}
    try:
        defn = execone.load(
            definition, pairs=parameter_values, values_uri=parameter_values_uri
        )
        slot = execone.slot_of(defn, target, scheduled_start)
        outcome = execone.run(
            config_file, overrides, definition, defn, slot, say=click.echo
        )
    except ExecUsageError as exc:
        raise click.UsageError(str(exc)) from exc
    except RunnerError as exc:
        _fail("dp-runner exec", exc)
    verdict = outcome.verdict
    if verdict.code != 0:
        click.echo(f"dp-runner exec: {slot.instance_id} {verdict.line()}", err=True)
    if not execone.clean_up(outcome, keep=keep):
        click.echo(f"attempt folders: {outcome.work_dir / 'attempts'}", err=True)
    sys.exit(verdict.code)


@main.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    envvar="DP_RUNNER_CONFIG",
    help="TOML file (config.example.toml).",
)
@click.option("--worker-group", "worker_groups", multiple=True)
@click.option("--region", help="AWS region (default: boto3's chain).")
@click.option("--endpoint-url", help="Data Pipeline endpoint override.")
@click.option("--work-dir", type=click.Path(path_type=Path))
@click.option(
    "--probe-poll",
    is_flag=True,
    help="Also try PollForTask, on a worker group of its own (up to 90 s).",
)
def doctor(config_file: Path | None, probe_poll: bool, **flags: Any) -> None:
    """Check credentials, endpoint, permissions, worker groups, IMDS, work dir.

    One line per check, with a fix for what fails; exit 0 when none fails."""
    from runner import doctor as diagnosis  # noqa: PLC0415 - only this command

    overrides = {k: v for k, v in flags.items() if v not in (None, ())}
    if "worker_groups" in overrides:
        overrides["worker_groups"] = list(overrides["worker_groups"])
    try:
        settings = load_settings(config_file=config_file, overrides=overrides)
        logs.configure(log_format="json", level="critical")  # the lines are the output
    except ConfigError as exc:
        _fail("dp-runner doctor", exc)
    target = diagnosis.Target(
        region=settings.region,
        endpoint_url=settings.endpoint_url,
        worker_groups=settings.worker_groups,
        work_dir=settings.work_dir,
        probe_poll=probe_poll,
    )
    if probe_poll:
        click.echo("PollForTask is probed: this takes up to 90 s", err=True)
    failed = 0
    for check in diagnosis.checks(target, logs.get_logger("dp-runner-doctor")):
        click.echo(f"{check.verdict:<5} {check.name:<26} {check.detail}")
        if check.fix:
            click.echo(f"{'':<5} {'':<26} fix: {check.fix}")
        if check.expected:
            click.echo(f"{'':<5} {'':<26} expected here: {check.expected}")
        failed += check.failed
    sys.exit(1 if failed else 0)


@main.command(
    context_settings={
        "ignore_unknown_options": True,
        "allow_extra_args": True,
        "help_option_names": [],
    }
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def healthcheck(args: tuple[str, ...]) -> None:
    """Exit 0 when the runner at http_address is healthy, else 1.

    ``dp-runner healthcheck`` never gets here: ``__main__`` branches to
    ``healthprobe`` before click is imported. This command lists it in ``--help``
    and serves callers of ``cli.main`` itself."""
    from runner import healthprobe  # noqa: PLC0415 - only this command

    sys.exit(healthprobe.main(list(args)))


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
@click.option(
    "--throttle",
    type=click.Choice(["off", "aws"]),
    default="off",
    show_default=True,
    help="aws: AWS's per-account call rates and bursts, in real time.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="info: one line per request (operation, pipeline, outcome, time).",
)
def local(  # noqa: PLR0917 - click passes each option positionally
    host: str,
    port: int,
    state_path: Path | None,
    time_scale: float,
    poll_hold: float,
    runs_on_worker_group: str,
    throttle: str,
    log_level: str,
) -> None:
    """Serve the Data Pipeline API locally (AWS JSON 1.1 over HTTP)."""
    from runner.localservice import (  # noqa: PLC0415 - only this command
        LocalService,
        StartupError,
    )

    try:
        localflags.check_service_flags(port, time_scale, poll_hold)
    except ConfigError as exc:
        _fail("dp-runner local", exc)
    logs.configure(level=log_level)
    try:
        service = LocalService(
            host,
            port,
            state_path,
            time_scale,
            poll_hold,
            runs_on_worker_group,
            throttle=throttle,
        )
        service.start()
    except StartupError as exc:  # a port in use, a state file it cannot use
        _fail("dp-runner local", exc)
    signals = Signals()
    signals.install()
    click.echo(
        f"dp-runner local: serving the Data Pipeline API on {service.endpoint_url}",
        err=True,
    )
    while signals.next(None) not in STOP_SIGNALS:
        continue  # SIGUSR1 and the like: keep serving
    service.stop()


@main.group()
def export() -> None:
    """Turn a definition into another scheduler's file (docs/airflow.md)."""


@export.command(name="airflow", cls=_ExecCommand)
@click.argument(
    "definition", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
@click.option("--dag-id", help="The DAG id (default: the file's name).")
@click.option(localrun.VALUES_FLAG, "pairs", multiple=True, metavar="ID=VALUE...")
@click.option("--parameter-values-uri", metavar="file://FILE")
@click.option("--queues", is_flag=True, help="workerGroup becomes each task's queue.")
@click.option(
    "--short-delays", is_flag=True, help="1 s retry delays and pokes (tests)."
)
def export_airflow(definition: Path, output: Path, **flags: Any) -> None:
    """Write DEFINITION as an Airflow DAG file that runs the same activities."""
    from runner.airflow import export as airflow_export  # noqa: PLC0415 - lazy

    try:
        lines = airflow_export.command(definition, output, **flags)
    except RunnerError as exc:
        _fail("dp-runner export airflow", exc)
    click.echo("\n".join(lines))
