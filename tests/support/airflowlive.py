"""Running an exported DAG in a real Airflow, for the tests marked ``airflow``.

Airflow runs from the venv ``DP_AIRFLOW_VENV`` names (``.venv-airflow``, 3.x, by
default; ``make test-airflow`` runs the tests once per venv), as its own CLI:
``airflow dags test DAG DATE`` for one logical date, with AIRFLOW_HOME in a temp
dir and sqlite (the ``airflow_home`` fixture, tests/airflow/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.support.runners import REPO

#: The Airflow under test: .venv-airflow (3.x) unless DP_AIRFLOW_VENV names another
#: (make test-airflow runs the tests once per venv: .venv-airflow2 holds 2.11).
AIRFLOW = REPO / os.environ.get("DP_AIRFLOW_VENV", ".venv-airflow") / "bin" / "airflow"
DEFS = Path(__file__).parent.parent / "airflow" / "defs"
EXAMPLES = REPO / "examples"
SCRIPTS = REPO / "tests" / "scripts"


def migrated_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Airflow home (sqlite) for the module, its database migrated."""
    assert AIRFLOW.exists(), "make test-airflow installs .venv-airflow first"
    home = tmp_path_factory.mktemp("airflow-home")
    done = subprocess.run(
        [str(AIRFLOW), "db", "migrate"],
        env=airflow_env(home, home / "dags"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return home


def airflow_env(home: Path, dags: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        **extra,
    )
    return env


def export(tmp_path: Path, name: str, dag_id: str, *args: str) -> Path:
    """``dp-runner export airflow defs/NAME.json`` into a DAGs folder of its own."""
    return export_file(tmp_path, DEFS / f"{name}.json", dag_id, *args)


def export_file(tmp_path: Path, definition: Path, dag_id: str, *args: str) -> Path:
    dags = tmp_path / "dags"
    dags.mkdir()
    out = dags / f"{dag_id}.py"
    command = [sys.executable, "-m", "runner", "export", "airflow"]
    done = subprocess.run(
        [
            *command,
            str(definition),
            "-o",
            str(out),
            "--dag-id",
            dag_id,
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    return out


def dags_test(
    home: Path,
    dag_file: Path,
    dag_id: str,
    date: str,
    *,
    prefix: Sequence[str] = (),
    **extra: str,
) -> subprocess.CompletedProcess[str]:
    """``airflow dags test DAG DATE``, run through ``prefix`` (say, ``unshare``)."""
    return subprocess.run(
        [*prefix, str(AIRFLOW), "dags", "test", dag_id, date],
        env=airflow_env(home, dag_file.parent, **extra),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def stamps(out: Path, name: str) -> tuple[int, int]:
    start = int((out / f"{name}.start").read_text())
    return start, int((out / f"{name}.end").read_text())
