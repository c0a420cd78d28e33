"""``dp-runner export airflow``: a Schedule becomes a timetable with the same
instants (timeseries at the end of each slot, cron at its start), ``occurrences``
and ``endDateTime`` become ``end_date``, months are calendar months, and a
Schedule without instants is exit 78 with no file written.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from runner.airflow.schedule import Period, timing
from runner.errors import ConfigError
from tests.support.dagfile import exported, scheduled, shell


def test_timeseries_runs_at_the_end_of_each_slot(tmp_path: Path) -> None:
    doc = scheduled(
        "timeseries",
        {"period": "1 day", "startDateTime": "2026-06-01T00:00:00", "occurrences": "3"},
        shell("A"),
    )
    dag, _ = exported(tmp_path, doc)
    assert dag.dag_args["schedule"] == "data_interval_timetable(dt.timedelta(days=1))"
    assert dag.dag_args["start_date"] == (
        "dt.datetime(2026, 6, 1, 0, 0, tzinfo=dt.timezone.utc)"
    )
    # three occurrences: the last slot starts two periods after the first
    assert dag.dag_args["end_date"] == (
        "dt.datetime(2026, 6, 3, 0, 0, tzinfo=dt.timezone.utc)"
    )
    assert dag.dag_args["catchup"] == "True"


def test_cron_runs_at_the_start_and_end_date_time_is_exclusive(tmp_path: Path) -> None:
    doc = scheduled(
        "cron",
        {
            "period": "2 hours",
            "startDateTime": "2026-06-01T00:00:00",
            "endDateTime": "2026-06-02T00:00:00",
        },
        shell("A"),
    )
    dag, _ = exported(tmp_path, doc)
    assert dag.dag_args["schedule"] == "trigger_timetable(dt.timedelta(hours=2))"
    assert dag.dag_args["end_date"] == (
        "dt.datetime(2026, 6, 1, 23, 59, 59, tzinfo=dt.timezone.utc)"
    )


def test_months_are_calendar_months() -> None:
    fields = {"period": "1 Month", "startDateTime": "2026-01-31T00:00:00"}
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    got = timing("timeseries", {**fields, "occurrences": "2"}, now)
    assert got.period == Period(1, "months")
    assert got.end == dt.datetime(2026, 2, 28, tzinfo=dt.UTC)


def test_first_activation_is_the_export_time_and_says_so() -> None:
    now = dt.datetime(2026, 6, 1, 12, 34, 56, tzinfo=dt.UTC)
    fields = {"period": "1 day", "startAt": "FIRST_ACTIVATION_DATE_TIME"}
    got = timing("cron", {**fields, "occurrences": "1"}, now)
    assert got.start == got.end == dt.datetime(2026, 6, 1, 12, 34, tzinfo=dt.UTC)
    assert "FIRST_ACTIVATION_DATE_TIME" in got.notes[0]


def test_a_schedule_without_instants_is_exit_78_and_writes_nothing(
    tmp_path: Path,
) -> None:
    doc = scheduled("cron", {"period": "1 fortnight", "startAt": "NOW"}, shell("A"))
    with pytest.raises(ConfigError, match="S: period"):
        exported(tmp_path, doc)
    assert not (tmp_path / "dag.py").exists()
