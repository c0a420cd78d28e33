"""``dp-runner exec``: one instance of one activity or precondition, here.

It owns the options and the exit code of the verdict; ``execone.py`` builds and
runs the instance. Like every command, it imports its work (``execone``, and with it
the daemon and boto3) only when it runs: building the options needs ``localflags``
alone, so ``--version`` or ``doctor`` never pays for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from runner import localflags
from runner.cli.exits import fail, leave
from runner.errors import RunnerError


class ExecCommand(click.Command):
    """``exec`` (and ``export airflow``), whose ``--parameter-values`` takes several
    values after one flag."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, localflags.spread_exec_values(args))


def _pipeline_id(value: str | None) -> str | None:
    """``--pipeline-id``: a folder name of the attempts too, so a safe one."""
    if value is not None and not localflags.PIPELINE_ID.fullmatch(value):
        raise click.BadParameter(
            "letters, digits, '_', '.' and '-' (at most 128), a letter or digit first"
        )
    return value


@click.command(name="exec", cls=ExecCommand)
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
    localflags.VALUES_FLAG,
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
@click.option(
    "--pipeline-id",
    callback=lambda _ctx, _param, value: _pipeline_id(value),
    metavar="ID",
    help="The pipeline id (@pipelineId, DP_PIPELINE_ID) the slot runs under "
    "(default: a new one): a scheduler passes one per run.",
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
    pipeline_id: str | None,
    **flags: Any,
) -> None:
    """Run one instance of one activity or precondition of DEFINITION, here.

    Masked *my... values come from DP_PARAMETER_<name> (for *myPassword:
    DP_PARAMETER_myPassword) or the values file. Exit 0 FINISHED, 3 the
    precondition is FALSE, 4 FAILED, 5 stopped by a signal, 78 a definition or
    configuration error, 2 usage (docs/install.md)."""
    from runner import execone  # noqa: PLC0415 - only this command
    from runner.execslot import ExecUsageError  # noqa: PLC0415 - only this command

    if parameter_values and parameter_values_uri is not None:
        raise click.UsageError("--parameter-values-uri excludes --parameter-values")
    overrides = {k: v for k, v in flags.items() if v is not None}
    try:
        defn = execone.load(
            definition, pairs=parameter_values, values_uri=parameter_values_uri
        )
        slot = execone.slot_of(defn, target, scheduled_start)
        outcome = execone.run(
            config_file,
            overrides,
            definition,
            defn,
            slot,
            say=click.echo,
            pipeline_id=pipeline_id,
        )
    except ExecUsageError as exc:
        raise click.UsageError(str(exc)) from exc
    except RunnerError as exc:
        fail("dp-runner exec", exc)
    verdict = outcome.verdict
    if verdict.code != 0:
        click.echo(f"dp-runner exec: {slot.instance_id} {verdict.line()}", err=True)
    if not execone.clean_up(outcome, keep=keep):
        click.echo(f"attempt folders: {outcome.work_dir / 'attempts'}", err=True)
    leave(verdict.code)
