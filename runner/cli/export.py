"""``dp-runner export airflow``: a definition becomes an Airflow DAG file.

It owns the command's options; the translation is ``runner.airflow``'s, imported
only when the command runs (it is no part of ``run``'s start-up).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from runner import localflags
from runner.cli.execute import ExecCommand
from runner.cli.exits import fail
from runner.errors import RunnerError


@click.group()
def export() -> None:
    """Turn a definition into another scheduler's file (docs/airflow.md)."""


@export.command(name="airflow", cls=ExecCommand)
@click.argument(
    "definition", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
@click.option("--dag-id", help="The DAG id (default: the file's name).")
@click.option(localflags.VALUES_FLAG, "pairs", multiple=True, metavar="ID=VALUE...")
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
        fail("dp-runner export airflow", exc)
    click.echo("\n".join(lines))
