"""One definition run twice, by an exported DAG in a real Airflow and by ``run
--local``, and what each run did, for the tests marked ``airflow`` that compare
them (tests/airflow/test_live_samples.py).

What each side ran is read from its own record, never from our own code's
word: Airflow's task instances from its database (the sqlite file in the
``airflow_home``: state, start and end of each task of the DAG), and ``run
--local``'s instances from its closing summary (``local_run_instance`` events).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.airflowlive import dags_test, export_file
from tests.support.dagfile import read_dag
from tests.support.runners import run_local

_MOMENT = re.compile(r"dt\.datetime\(([\d, ]+), tzinfo=dt\.timezone\.utc\)")


@dataclass(frozen=True)
class TaskRow:
    """One task instance of the DAG run, as Airflow's database holds it.
    ``start`` is None on Airflow 2.x, whose ``dags test`` records none."""

    state: str
    start: dt.datetime | None
    end: dt.datetime
    tries: int


@dataclass(frozen=True)
class Both:
    """The two runs of one definition."""

    dag_file: Path
    logical_date: str
    airflow: subprocess.CompletedProcess[str]
    local: subprocess.CompletedProcess[str]
    tasks: dict[str, TaskRow]
    instances: dict[str, str]
    activities: set[str]

    def check_same_activities(self) -> None:
        """Both ran to success, and ran the same activities: every task of the
        DAG succeeded, every instance of ``run --local`` FINISHED, and the
        DAG's tasks are the local run's components."""
        out = self.airflow.stdout[-4000:] + self.airflow.stderr[-4000:]
        assert self.airflow.returncode == 0, out
        assert {row.state for row in self.tasks.values()} == {"success"}, self.tasks
        local = self.local.stdout[-4000:] + self.local.stderr[-3000:]
        assert self.local.returncode == 0, local
        assert set(self.instances.values()) == {"FINISHED"}, self.instances
        # run --local also lists the resources it stood in for (Ec2Resource)
        ran_locally = {component_of(i) for i in self.instances} & self.activities
        assert set(self.tasks) == ran_locally, (self.tasks, ran_locally)
        assert self.tasks, "the DAG ran no task"

    def check_edges_held(self) -> set[tuple[str, str]]:
        """Every edge of the DAG file: the upstream ended before the
        downstream started. The edges, for the test to compare."""
        edges = read_dag(self.dag_file).edges
        check_order(self.tasks, edges)
        return edges


def check_order(tasks: dict[str, TaskRow], edges: set[tuple[str, str]]) -> None:
    """Each upstream task ended before its downstream task started. Airflow
    2.x's ``dags test`` records no start; it runs one task at a time, so there
    the downstream's end after the upstream's is the order."""
    for upstream, downstream in edges:
        later = tasks[downstream].start or tasks[downstream].end
        assert tasks[upstream].end <= later, (upstream, downstream, tasks)


def component_of(instance_id: str) -> str:
    """``@Copy_2026-06-01T00:00:00`` -> ``Copy``."""
    return instance_id.removeprefix("@").rsplit("_", 1)[0]


def run_both(
    tmp_path: Path,
    home: Path,
    definition: Path,
    dag_id: str,
    values: dict[str, str],
    *,
    local_values: dict[str, str] | None = None,
    airflow_env: dict[str, str] | None = None,
    local_env: dict[str, str] | None = None,
    prefix: Sequence[str] = (),
) -> Both:
    """Export ``definition`` with ``values`` (a values file: masked ones are
    moved to Airflow Variables, given in ``airflow_env``; retry delays
    shortened), run it with
    ``airflow dags test`` for the DAG's first instant, then ``run --local`` with
    ``local_values`` (default: the same). ``prefix``: the argv both are run
    through (say, ``unshare``)."""
    given = tmp_path / "values-airflow.json"
    given.write_text(json.dumps({"values": values}))
    dag_file = export_file(
        tmp_path,
        definition,
        dag_id,
        "--parameter-values-uri",
        f"file://{given}",
        "--short-delays",  # a failure shows in seconds, not after two 10-min retries
    )
    date = first_instant(dag_file)
    done = dags_test(home, dag_file, dag_id, date, prefix=prefix, **(airflow_env or {}))
    local_file = tmp_path / "values-local.json"
    local_file.write_text(json.dumps({"values": local_values or values}))
    local = run_local(
        definition,
        tmp_path,
        "--parameter-values-uri",
        f"file://{local_file}",
        env=local_env,
        prefix=prefix,
    )
    objects = json.loads(definition.read_text())["objects"]
    activities = {o["id"] for o in objects if o.get("type", "").endswith("Activity")}
    rows = task_rows(home, dag_id)
    return Both(dag_file, date, done, local, rows, instances(local.stdout), activities)


def first_instant(dag_file: Path) -> str:
    """The DAG's ``start_date`` (ISO 8601), as the export wrote it."""
    found = _MOMENT.search(read_dag(dag_file).dag_args["start_date"])
    assert found is not None, "the DAG has no start_date"
    parts = [int(p) for p in found.group(1).split(",")]
    return dt.datetime(*parts, tzinfo=dt.UTC).isoformat()  # type: ignore[misc]


def task_rows(home: Path, dag_id: str) -> dict[str, TaskRow]:
    """The DAG's task instances in Airflow's database (one run per test)."""
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute(
            "SELECT task_id, state, start_date, end_date, try_number"
            " FROM task_instance WHERE dag_id = ?",
            (dag_id,),
        ).fetchall()
    return {
        task: TaskRow(
            str(state),
            None if start is None else _moment(start),
            _moment(end),
            int(tries),
        )
        for task, state, start, end, tries in rows
    }


def _moment(text: str | None) -> dt.datetime:
    assert text is not None, "a task instance without an end"
    return dt.datetime.fromisoformat(text)


def instances(stdout: str) -> dict[str, str]:
    """``run --local``'s closing summary: instance id -> status."""
    rows = {}
    for line in stdout.splitlines():
        fields = json.loads(line) if line.startswith("{") else {}
        if fields.get("event") == "local_run_instance":
            rows[fields["instance_id"]] = fields["status"]
    return rows
