"""The Airflow home of the tests marked ``airflow``: one per module (sqlite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.airflowlive import migrated_home


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Airflow home whose database is migrated."""
    return migrated_home(tmp_path_factory)
