"""The wire protocol and request validation, over raw HTTP and through boto3."""

from __future__ import annotations

import http.client
import json
import socket
import statistics
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from runner.localservice import LocalService
from tests.support.localservice import run_pipeline, shell, wait_for


def post(service: LocalService, target: str, body: Any) -> tuple[int, dict[str, Any]]:
    url = urlsplit(service.endpoint_url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request(
            "POST",
            "/",
            raw,
            {
                "X-Amz-Target": target,
                "Content-Type": "application/x-amz-json-1.1",
            },
        )
        response = conn.getresponse()
        assert response.getheader("Content-Type") == "application/x-amz-json-1.1"
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_missing_member_is_invalid_request(service: LocalService) -> None:
    status, body = post(service, "DataPipeline.PollForTask", {})
    assert status == 400
    assert body["__type"] == "InvalidRequestException"
    assert "workerGroup" in body["message"]


def test_wrong_type_and_unknown_member(service: LocalService) -> None:
    status, body = post(service, "DataPipeline.PollForTask", {"workerGroup": 5})
    assert (status, body["__type"]) == (400, "InvalidRequestException")
    assert "workerGroup must be a string" in body["message"]
    status, body = post(
        service, "DataPipeline.PollForTask", {"workerGroup": "a", "bogus": 1}
    )
    assert "unknown member bogus" in body["message"]


def test_unknown_operation_and_bad_json(service: LocalService) -> None:
    status, body = post(service, "DataPipeline.Nope", {})
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    status, body = post(service, "DataPipeline.PollForTask", b"{not json")
    assert (status, body["__type"]) == (400, "SerializationException")


def test_bad_enum_is_invalid_request(dp: Any) -> None:
    with pytest.raises(ClientError) as exc:
        dp.set_task_status(taskId="t", taskStatus="BOGUS")
    assert exc.value.response["Error"]["Code"] == "InvalidRequestException"
    assert "taskStatus must be one of FINISHED, FAILED, FALSE" in str(exc.value)


def test_too_long_field_is_invalid_request(dp: Any) -> None:
    with pytest.raises(ClientError) as exc:
        dp.set_task_status(taskId="t", taskStatus="FAILED", errorStackTrace="x" * 1025)
    assert "errorStackTrace must have at most 1024 characters" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        dp.report_task_progress(taskId="t" * 2049)
    assert "taskId must have at most 2048" in str(exc.value)


def test_control_characters_are_invalid_request(dp: Any) -> None:
    with pytest.raises(ClientError) as exc:
        dp.set_task_status(taskId="t", taskStatus="FAILED", errorId="bad\x1b[31m")
    assert exc.value.response["Error"]["Code"] == "InvalidRequestException"
    assert "errorId contains a character" in str(exc.value)
    # tab, CR, LF and astral characters are allowed by the pattern
    with pytest.raises(ClientError) as exc:
        dp.set_task_status(
            taskId="t", taskStatus="FAILED", errorId="a\tb\r\n\U0001f600"
        )
    assert exc.value.response["Error"]["Code"] == "TaskNotFoundException"


def test_service_prefixed_error_id_is_rejected(dp: Any) -> None:
    run_pipeline(dp, [shell("A")])
    task = wait_for(lambda: dp.poll_for_task(workerGroup="wg").get("taskObject"))
    with pytest.raises(ClientError) as exc:
        dp.set_task_status(
            taskId=task["taskId"], taskStatus="FAILED", errorId="Service_Oops"
        )
    assert exc.value.response["Error"]["Code"] == "InvalidRequestException"
    assert "Service_" in str(exc.value)


def test_nested_list_members_are_checked(dp: Any) -> None:
    pipeline_id = dp.create_pipeline(name="n", uniqueId="n")["pipelineId"]
    with pytest.raises(ClientError) as exc:
        dp.put_pipeline_definition(
            pipelineId=pipeline_id,
            pipelineObjects=[
                {
                    "id": "A",
                    "name": "A",
                    "fields": [{"key": "k" * 300, "stringValue": "v"}],
                }
            ],
        )
    assert "pipelineObjects[0].fields[0].key must have at most 256" in str(exc.value)


def test_keep_alive_without_delayed_ack_stall(service: LocalService) -> None:
    url = urlsplit(service.endpoint_url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    headers = {"X-Amz-Target": "DataPipeline.ListPipelines"}
    conn.request("POST", "/", b"{}", headers)
    conn.getresponse().read()
    sock = conn.sock
    conn.request("POST", "/", b"{}", headers)  # same connection, no reconnect
    response = conn.getresponse()
    response.read()
    assert response.status == 200
    assert conn.sock is sock
    assert sock is not None
    conn.close()
    # Nagle on the server plus delayed ACK on the client would add ~40 ms a call;
    # a raw client with Nagle on that sends each request in one write shows it.
    request = (
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: DataPipeline.ListPipelines\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    durations = []
    with socket.create_connection(
        (url.hostname or "", url.port or 0), timeout=10
    ) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
        reader = raw.makefile("rb")
        for _ in range(15):
            started = time.perf_counter()
            raw.sendall(request)
            length = 0
            while (line := reader.readline()) not in {b"\r\n", b""}:
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            reader.read(length)
            durations.append(time.perf_counter() - started)
    assert statistics.median(durations) < 0.02
