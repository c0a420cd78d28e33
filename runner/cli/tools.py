"""The commands beside the runner: ``doctor`` (checks with fixes), ``healthcheck``
(listed here; ``__main__`` answers it before click is imported) and ``local`` (the
local Data Pipeline service). Each imports its own module only when it runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from runner import localflags
from runner.cli.exits import fail
from runner.errors import ConfigError


@click.command()
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
    from runner import logs  # noqa: PLC0415 - only this command
    from runner.config import load_settings  # noqa: PLC0415 - only this command

    overrides = {k: v for k, v in flags.items() if v not in (None, ())}
    if "worker_groups" in overrides:
        overrides["worker_groups"] = list(overrides["worker_groups"])
    try:
        settings = load_settings(config_file=config_file, overrides=overrides)
        logs.configure(log_format="json", level="critical")  # the lines are the output
    except ConfigError as exc:
        fail("dp-runner doctor", exc)
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


@click.command(
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


@click.command()
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
    default=localflags.RUNS_ON_GROUP,
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
    from runner import logs  # noqa: PLC0415 - only this command
    from runner.localservice import (  # noqa: PLC0415 - only this command
        LocalService,
        StartupError,
    )
    from runner.signals import STOP_SIGNALS, Signals  # noqa: PLC0415 - only this command

    try:
        localflags.check_service_flags(port, time_scale, poll_hold)
    except ConfigError as exc:
        fail("dp-runner local", exc)
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
        fail("dp-runner local", exc)
    signals = Signals()
    signals.install()
    click.echo(
        f"dp-runner local: serving the Data Pipeline API on {service.endpoint_url}",
        err=True,
    )
    while signals.next(None) not in STOP_SIGNALS:
        continue  # SIGUSR1 and the like: keep serving
    service.stop()
