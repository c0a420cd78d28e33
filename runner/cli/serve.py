"""``dp-runner run``: serve worker groups (``lifecycle.serve``), or with ``--local``
run one definition to completion on an embedded local service (``localrun``).

It owns the options and their checks; the daemon and the local run are put
together by ``lifecycle.py`` and ``localrun.py``, the rest of the composition root.
It imports them (and with them the daemon, boto3 and pydantic) only when ``run``
runs: the options' defaults come from ``localflags``, so that every other command,
and ``--help``, builds this one without them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from runner import localflags
from runner.cli.exits import EXIT_UNFINISHED, fail, leave
from runner.errors import RunnerError

if TYPE_CHECKING:
    from runner.pipelinefile import Definition


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
            default=localflags.DEFAULT_TIME_SCALE,
            show_default=True,
            help="With --local: the service's clock scale.",
        ),
        click.option(
            localflags.VALUES_FLAG,
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
        return super().parse_args(ctx, localflags.spread_run_values(args))


@click.command(cls=_RunCommand)
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
    from runner import lifecycle, localrun  # noqa: PLC0415 - only this command
    from runner.config import load_settings  # noqa: PLC0415 - only this command

    values, values_uri = parameter_values, parameter_values_uri
    overrides = {k: v for k, v in flags.items() if v not in (None, ())}
    _check_local_flags(
        local_definition is not None,
        values=bool(values),
        values_uri=values_uri is not None,
        keep=keep,
        quiet=quiet,
        overrides=overrides,
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
            code = lifecycle.serve(settings)
    except RunnerError as exc:
        fail("dp-runner", exc)
    leave(code)


def _check_local_flags(
    local: bool,
    *,
    values: bool,
    values_uri: bool,
    keep: bool,
    quiet: bool,
    overrides: dict[str, Any],
) -> None:
    """The flags that go with ``--local`` only, and those ``run --local`` has no
    use for: a ``click.UsageError`` (exit 2) that says which."""
    if values and values_uri:
        raise click.UsageError("--parameter-values-uri excludes --parameter-values")
    if not local:
        for given, why in (
            (values or values_uri, "parameter values go with --local"),
            (keep, "--keep goes with --local"),
            (quiet, "--quiet goes with --local"),
        ):
            if given:
                raise click.UsageError(why)
        return
    unused = localflags.unused_flags(overrides)
    if unused:
        raise click.UsageError(
            f"run --local does not use {', '.join(unused)}: it serves the "
            "definition's own worker groups on its own embedded service"
        )


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
    """``run --local``: the closing lines, the work dir removed when every
    instance FINISHED (unless ``keep``), and 0 when every instance FINISHED."""
    from runner import localrun, localshow  # noqa: PLC0415 - only this command

    outcome = localrun.run(
        config_file, overrides, definition, defn, time_scale, click.echo, quiet=quiet
    )
    removed = localrun.clean_up(outcome, keep=keep)
    for line in localshow.closing_lines(outcome, removed=removed):
        click.echo(line)
    return 0 if outcome.finished else EXIT_UNFINISHED
