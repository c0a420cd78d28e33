"""``dp-runner export airflow``: read a definition, write its DAG file.

Owns: ``export``: the definition with its values (as ``run --local`` takes them),
its plan, its secrets moved out (``secrets``), and the rendered file, written
with mode 0644 through a temporary file and a rename, so that a DAG folder never
holds half a file; and the ``Report`` the command prints: the Airflow Variables
to set and what was not carried.

Must not: import airflow, boto3 or click, even indirectly (an import contract
holds it: the export runs where neither is installed, and ``localrun``, whose
``load`` this mirrors, imports boto3); write a file when the definition cannot be
translated (a ConfigError, exit 78, naming the object and field).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runner.airflow.plan import Options, PlanError, make_plan
from runner.airflow.render import render
from runner.airflow.secrets import strip_secrets
from runner.errors import ConfigError
from runner.execslot import MASKED_ENV_PREFIX
from runner.pipelinefile import (
    Definition,
    load_definition,
    load_values,
    values_from_pairs,
)

_DAG_ID = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class Report:
    """What the command prints: the DAG id, the Airflow Variables that hold the
    masked values (``{"*myX": "dag.myX"}``), and what the DAG does not carry."""

    dag_id: str
    variables: dict[str, str]
    not_carried: list[str]


def export(
    definition: Path,
    out: Path,
    *,
    dag_id: str | None = None,
    pairs: Sequence[str] = (),
    values_uri: str | None = None,
    options: Options | None = None,
) -> Report:
    """Write the DAG file of ``definition`` to ``out``; ConfigError when the
    definition cannot be exported (nothing is written then)."""
    for pair in pairs:
        if pair.startswith("*"):
            name = pair.partition("=")[0]
            raise ConfigError(
                f"--parameter-values {name}=…: a masked value never goes on the "
                "command line, nor into the DAG file: it is read from an Airflow "
                f"Variable at run time (exec takes it as {MASKED_ENV_PREFIX}…)"
            )
    dag_id = dag_id or re.sub(r"[^A-Za-z0-9_.-]", "_", definition.stem)
    if not _DAG_ID.fullmatch(dag_id):
        raise ConfigError(f"--dag-id {dag_id!r}: letters, digits, _ . - only")
    defn = _load(definition, pairs, values_uri)
    try:
        plan = make_plan(defn, options or Options(), dt.datetime.now(dt.UTC))
    except PlanError as exc:
        raise ConfigError(f"{definition}: {exc}") from exc
    kept, variables = strip_secrets(defn, dag_id)
    _write(out, render(plan, dag_id, definition.name, kept, variables))
    return Report(dag_id, variables, plan.not_carried)


def _load(path: Path, pairs: Sequence[str], values_uri: str | None) -> Definition:
    """The definition, its ``values`` replaced by the pairs or the values file,
    as ``run --local`` loads it. ConfigError (exit 78) naming the file."""
    try:
        defn = load_definition(path)
        values = None
        if values_uri is not None:
            location = values_uri.removeprefix("file://")
            if "://" in location:
                raise ConfigError(f"{values_uri}: only file:// values files are read")
            values = load_values(Path(location))
        if pairs:
            values = values_from_pairs(pairs)
    except ValueError as exc:  # a DefinitionError, which names the file
        raise ConfigError(str(exc)) from exc
    if values is None:
        return defn
    return Definition(defn.pipeline_objects, defn.parameter_objects, values)


def _write(out: Path, text: str) -> None:
    folder = out.parent if str(out.parent) else Path()
    handle, temp = tempfile.mkstemp(prefix=f".{out.name}.", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temp, 0o644)
        os.replace(temp, out)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def command(
    definition: Path,
    out: Path,
    *,
    dag_id: str | None,
    pairs: Sequence[str],
    parameter_values_uri: str | None,
    queues: bool,
    short_delays: bool,
) -> list[str]:
    """``dp-runner export airflow``'s work and the lines it prints."""
    if pairs and parameter_values_uri is not None:
        raise ConfigError("--parameter-values-uri excludes --parameter-values")
    report = export(
        definition,
        out,
        dag_id=dag_id,
        pairs=pairs,
        values_uri=parameter_values_uri,
        options=Options(queues=queues, short_delays=short_delays),
    )
    lines = [f"wrote DAG {report.dag_id!r} to {out}"]
    if report.variables:
        lines.append(
            "set these Airflow Variables (the masked values, never in the file):"
        )
        lines.extend(f"  {var}  for {name}" for name, var in report.variables.items())
    if report.not_carried:
        lines.append("not carried:")
        lines.extend(f"  {item}" for item in report.not_carried)
    return lines
