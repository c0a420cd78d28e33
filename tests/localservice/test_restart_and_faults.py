"""Restart on the same state file, the fault switch and the call record."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
)

from runner.localservice import LocalService
from tests.support.localservice import (
    TIME_SCALE,
    fields_of,
    instance_status,
    make_client,
    run_pipeline,
    shell,
    wait_for,
)


def test_restart_loses_nothing_including_a_lease(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    with LocalService(state_path=state, time_scale=TIME_SCALE, poll_hold_s=0.3) as svc:
        dp = make_client(svc.endpoint_url)
        pipeline_id = run_pipeline(
            dp, [shell("A"), shell("B", ref_dependsOn="A"), shell("C", group="other")]
        )
        task = wait_for(lambda: dp.poll_for_task(workerGroup="wg").get("taskObject"))
        dp.report_task_progress(taskId=task["taskId"])
    with LocalService(state_path=state, time_scale=TIME_SCALE, poll_hold_s=0.3) as svc:
        dp = make_client(svc.endpoint_url)
        listed = [p["id"] for p in dp.list_pipelines()["pipelineIdList"]]
        assert listed == [pipeline_id]
        instance = task["attemptId"].rsplit("_Attempt", 1)[0]
        assert instance_status(dp, pipeline_id, instance) == "RUNNING"
        dp.report_task_progress(taskId=task["taskId"])  # the lease survived
        dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
        follow = wait_for(lambda: dp.poll_for_task(workerGroup="wg").get("taskObject"))
        assert follow["attemptId"].startswith("@B_")
        other = wait_for(
            lambda: dp.poll_for_task(workerGroup="other").get("taskObject")
        )
        assert other["attemptId"].startswith("@C_")


def test_restart_keeps_an_unacked_lease_and_its_deadline(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    with LocalService(state_path=state, time_scale=TIME_SCALE, poll_hold_s=0.3) as svc:
        dp = make_client(svc.endpoint_url)
        run_pipeline(dp, [shell("A")])
        task = wait_for(lambda: dp.poll_for_task(workerGroup="wg").get("taskObject"))
    with LocalService(state_path=state, time_scale=TIME_SCALE, poll_hold_s=0.3) as svc:
        dp = make_client(svc.endpoint_url)
        again = wait_for(lambda: dp.poll_for_task(workerGroup="wg").get("taskObject"))
        assert again["attemptId"] == task["attemptId"]
        assert again["taskId"] != task["taskId"]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        ("InternalServiceError", 500),
        ("ThrottlingException", 400),
        ("ServiceUnavailable", 503),
    ],
)
def test_injected_error_comes_before_commit(
    service: LocalService, dp: Any, error: str, status: int
) -> None:
    pipeline_id = run_pipeline(dp, [shell("A")])
    task = wait_for(lambda: dp.poll_for_task(workerGroup="wg").get("taskObject"))
    service.faults.add("SetTaskStatus", error=error, times=1)
    with pytest.raises(ClientError) as exc:
        dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    assert exc.value.response["Error"]["Code"] == error
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    instance = task["attemptId"].rsplit("_Attempt", 1)[0]
    assert instance_status(dp, pipeline_id, instance) != "FINISHED"
    dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")  # retry succeeds
    assert instance_status(dp, pipeline_id, instance) == "FINISHED"
    assert [c.error for c in service.calls("SetTaskStatus")] == [error, None]


def test_botocore_retries_through_injected_throttling(service: LocalService) -> None:
    dp = boto3.client(
        "datapipeline",
        endpoint_url=service.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",  # noqa: S106 - dummy
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )
    service.faults.add("ListPipelines", error="ThrottlingException", times=2)
    dp.list_pipelines()
    assert [c.error for c in service.calls("ListPipelines")] == [
        "ThrottlingException",
        "ThrottlingException",
        None,
    ]


def test_drop_closes_the_connection_without_answer(
    service: LocalService, dp: Any
) -> None:
    service.faults.add("ListPipelines", error="drop")
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        dp.list_pipelines()
    assert dp.list_pipelines()["pipelineIdList"] == []
    assert [c.error for c in service.calls("ListPipelines")] == ["drop", None]


def test_latency_and_forever_and_clear(service: LocalService, dp: Any) -> None:
    service.faults.add("ListPipelines", latency_s=0.2, times=None)
    dp.list_pipelines()
    dp.list_pipelines()
    calls = service.calls("ListPipelines")
    assert len(calls) == 2
    service.faults.clear()
    dp.list_pipelines()
    with pytest.raises(ValueError, match="unknown fault"):
        service.faults.add("ListPipelines", error="Bogus")


def test_calls_record_requests(service: LocalService, dp: Any) -> None:
    dp.poll_for_task(workerGroup="wg", hostname="h1")
    [call] = service.calls("PollForTask")
    assert call.request == {"workerGroup": "wg", "hostname": "h1"}
    assert call.error is None


def test_task_object_fields_survive_restart(tmp_path: Path) -> None:
    state = tmp_path / "s.sqlite3"
    with LocalService(state_path=state, time_scale=TIME_SCALE, poll_hold_s=0.3) as svc:
        run_pipeline(make_client(svc.endpoint_url), [shell("A", "echo 1")])
    with LocalService(state_path=state, time_scale=TIME_SCALE, poll_hold_s=0.3) as svc:
        dp = make_client(svc.endpoint_url)
        task = wait_for(lambda: dp.poll_for_task(workerGroup="wg").get("taskObject"))
        assert fields_of(task["objects"][task["attemptId"]])["command"] == ["echo 1"]


def _raw_call(service: LocalService, operation: str) -> tuple[str, bytes]:
    """One request on its own connection: the answer's head and every body byte
    up to the close (the client shuts its side, so a whole answer ends too)."""
    request = (
        f"POST / HTTP/1.1\r\nHost: {service.host}\r\n"
        f"X-Amz-Target: DataPipeline.{operation}\r\n"
        "Content-Type: application/x-amz-json-1.1\r\nContent-Length: 2\r\n\r\n{}"
    )
    with socket.create_connection((service.host, service.port), timeout=5) as conn:
        conn.sendall(request.encode())
        conn.shutdown(socket.SHUT_WR)
        received = b"".join(iter(lambda: conn.recv(65536), b""))
    head, _, body = received.partition(b"\r\n\r\n")
    return head.decode().lower(), body


@pytest.mark.parametrize("cut", ["cut", "cut-length"])
def test_cut_sends_half_the_answer_then_closes(
    service: LocalService, dp: Any, cut: str
) -> None:
    run_pipeline(dp, [shell("A")])  # so that ListPipelines has something to say
    _, whole = _raw_call(service, "ListPipelines")
    assert json.loads(whole)["pipelineIdList"]
    service.faults.add("ListPipelines", error=cut)
    head, body = _raw_call(service, "ListPipelines")
    assert head.startswith("http/1.1 200 ok")
    assert body == whole[: len(whole) // 2]
    if cut == "cut":  # the body ends where the connection does
        assert "connection: close" in head
        assert "content-length" not in head
    else:  # a length that promises the whole answer
        assert f"content-length: {len(whole)}" in head
    assert [c.error for c in service.calls("ListPipelines")] == [None, cut]


@pytest.mark.parametrize("cut", ["cut", "cut-length"])
def test_cut_comes_after_commit_and_plain_boto3_takes_it_for_whole(
    service: LocalService, dp: Any, cut: str
) -> None:
    pipeline_id = run_pipeline(dp, [shell("A")])
    task = wait_for(lambda: dp.poll_for_task(workerGroup="wg").get("taskObject"))
    service.faults.add("SetTaskStatus", error=cut)
    dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")  # no error
    instance = task["attemptId"].rsplit("_Attempt", 1)[0]
    assert instance_status(dp, pipeline_id, instance) == "FINISHED"  # committed
    service.faults.add("DescribeObjects", error=cut)
    answer = dp.describe_objects(pipelineId=pipeline_id, objectIds=[instance])
    assert "pipelineObjects" not in answer  # botocore parses half a body as {}
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert [c.error for c in service.calls("SetTaskStatus")] == [cut]


def test_cut_leaves_an_error_answer_whole(service: LocalService, dp: Any) -> None:
    service.faults.add("SetTaskStatus", error="cut")
    with pytest.raises(ClientError) as exc:
        dp.set_task_status(taskId="no-such-task", taskStatus="FINISHED")
    assert exc.value.response["Error"]["Code"] == "TaskNotFoundException"
    assert [c.error for c in service.calls("SetTaskStatus")] == [
        "TaskNotFoundException"
    ]
    assert service.faults.take("SetTaskStatus") is None  # used up all the same
