"""A start in the past, as AWS handles it: more than a day ago is refused at
activation; what is allowed runs in passes bounded by maxActiveInstances."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest

from runner.localservice import LocalService
from tests.support.localservice import make_client, wait_for

TIME_SCALE = 0.01


def scheduled(start: dt.datetime, **activity: str) -> list[dict[str, Any]]:
    """A timeseries pipeline: one activity every 15 minutes from `start`."""
    fields: dict[str, list[tuple[str, str, bool]]] = {
        "Default": [("scheduleType", "timeseries", False)],
        "Every15": [
            ("type", "Schedule", False),
            ("period", "15 minutes", False),
            ("startDateTime", start.strftime("%Y-%m-%dT%H:%M:%S"), False),
        ],
        "Work": [
            ("type", "ShellCommandActivity", False),
            ("command", "true", False),
            ("workerGroup", "nobody", False),
            ("schedule", "Every15", True),
            *((key, value, False) for key, value in activity.items()),
        ],
    }
    return [
        {
            "id": obj_id,
            "name": obj_id,
            "fields": [
                {"key": k, "refValue" if ref else "stringValue": v}
                for k, v, ref in pairs
            ],
        }
        for obj_id, pairs in fields.items()
    ]


def put(dp: Any, objects: list[dict[str, Any]]) -> str:
    pipeline_id: str = dp.create_pipeline(name="p", uniqueId=str(time.monotonic_ns()))[
        "pipelineId"
    ]
    answer = dp.put_pipeline_definition(pipelineId=pipeline_id, pipelineObjects=objects)
    assert not answer["errored"], answer
    return pipeline_id


def work_instances(dp: Any, pipeline_id: str) -> list[str]:
    selectors = [
        {
            "fieldName": "@componentParent",
            "operator": {"type": "REF_EQ", "values": ["Work"]},
        }
    ]
    found: list[str] = dp.query_objects(
        pipelineId=pipeline_id, sphere="INSTANCE", query={"selectors": selectors}
    )["ids"]
    return found


def test_a_start_more_than_a_day_ago_is_refused_at_activation(
    service: LocalService, dp: Any
) -> None:
    pipeline_id = put(dp, scheduled(dt.datetime(1970, 1, 1, tzinfo=dt.UTC)))
    with pytest.raises(dp.exceptions.InvalidRequestException, match="startDateTime"):
        dp.activate_pipeline(pipelineId=pipeline_id)
    assert work_instances(dp, pipeline_id) == []
    (described,) = dp.describe_pipelines(pipelineIds=[pipeline_id])[
        "pipelineDescriptionList"
    ]
    state = [f for f in described["fields"] if f["key"] == "@pipelineState"]
    assert state[0]["stringValue"] == "PENDING"


def probe_s(dp: Any) -> float:
    began = time.monotonic()
    dp.list_pipelines()
    return time.monotonic() - began


@pytest.mark.parametrize("max_active", [None, "3"])
def test_an_allowed_backfill_holds_at_most_max_active_instances(
    tmp_path: Path, max_active: str | None
) -> None:
    """23 hours of quarter-hour slots are due at activation (92). The service
    keeps answering, makes at most maxActiveInstances (default 1) of them, and
    so again after a restart on the same state; the next comes when one ends."""
    state = tmp_path / "state.db"
    start = dt.datetime.now(tz=dt.UTC).replace(microsecond=0) - dt.timedelta(hours=23)
    extra = {"maxActiveInstances": max_active} if max_active else {}
    limit = int(max_active or 1)
    with LocalService(state_path=state, time_scale=TIME_SCALE, poll_hold_s=0.2) as svc:
        dp = make_client(svc.endpoint_url)
        pipeline_id = put(dp, scheduled(start, **extra))
        dp.activate_pipeline(pipelineId=pipeline_id)
        wait_for(lambda: len(work_instances(dp, pipeline_id)) == limit)
        assert max(probe_s(dp) for _ in range(20)) < 5.0
        assert len(work_instances(dp, pipeline_id)) == limit
    with LocalService(state_path=state, time_scale=TIME_SCALE, poll_hold_s=0.2) as svc:
        dp = make_client(svc.endpoint_url)
        assert max(probe_s(dp) for _ in range(20)) < 5.0
        held = work_instances(dp, pipeline_id)
        assert len(held) == limit
        dp.set_status(
            pipelineId=pipeline_id, objectIds=held[:1], status="MARK_FINISHED"
        )
        wait_for(lambda: len(work_instances(dp, pipeline_id)) == limit + 1)
        assert len(work_instances(dp, pipeline_id)) == limit + 1
