"""The listener under load and abuse: every request of a crowd answered, a slow
client dropped, idle connections closed, held polls untouched, bodies over the
limit refused unread, deep nesting refused with a 400. Raw sockets, so that
nothing between the test and the service hides what the service does."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from runner.localservice import LocalService, RecordedCall
from runner.localservice.faults import CallLog
from tests.support.localservice import make_client


def request(target: str, body: bytes, *, length: int | None = None) -> bytes:
    """An HTTP/1.1 request of the AWS JSON protocol."""
    head = (
        "POST / HTTP/1.1\r\nHost: local\r\n"
        "Content-Type: application/x-amz-json-1.1\r\n"
        f"X-Amz-Target: DataPipeline.{target}\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\n\r\n"
    )
    return head.encode() + body


def read_answer(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of one answer (Content-Length framed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    length = next(
        int(line.split(":")[1])
        for line in lines
        if line.lower().startswith("content-length")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed mid-body"
        body += chunk
    return int(lines[0].split()[1]), json.loads(body or b"{}")


def closed_within(sock: socket.socket, timeout: float) -> float:
    """Seconds until the service closes the connection (fails after timeout)."""
    sock.settimeout(timeout)
    started = time.monotonic()
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def trickle(sock: socket.socket, payload: bytes, every_s: float) -> float:
    """Send a byte every `every_s` (waiting on the socket, which wakes at once if
    the service closes it); seconds until the service dropped the connection."""
    started = time.monotonic()
    for byte in payload:
        try:
            sock.sendall(bytes([byte]))
            readable, _, _ = select.select([sock], [], [], every_s)
            if readable and not sock.recv(1):
                break  # closed by the service
        except (BrokenPipeError, ConnectionResetError):
            break
    else:
        pytest.fail("the whole request went through: the slow client was not dropped")
    return time.monotonic() - started


def connect(service: LocalService) -> socket.socket:
    url = urlsplit(service.endpoint_url)
    return socket.create_connection((url.hostname or "", url.port or 0), timeout=10)


@pytest.fixture
def quick() -> Iterator[LocalService]:
    """Short limits: a request whole in 1 s, idle connections closed after 1.5 s,
    polls held 2 s."""
    with LocalService(
        poll_hold_s=2.0, request_timeout_s=1.0, idle_timeout_s=1.5
    ) as service:
        yield service


def test_a_crowd_of_300_clients_is_all_answered(service: LocalService) -> None:
    url = urlsplit(service.endpoint_url)
    payload = request("ListPipelines", b"{}")

    async def one() -> int:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        writer.write(payload)
        await writer.drain()
        status = (await reader.readline()).split()[1]
        writer.close()
        return int(status)

    async def crowd() -> list[int]:
        # 500 at once is the bench's; 300 is over any small backlog and keeps the
        # test quick on a loaded machine (bench/bench_localservice_load.py)
        return await asyncio.wait_for(asyncio.gather(*(one() for _ in range(300))), 45)

    assert asyncio.run(crowd()) == [200] * 300


def test_a_slow_client_is_dropped_after_the_request_timeout(
    quick: LocalService,
) -> None:
    sock = connect(quick)
    elapsed = trickle(sock, request("ListPipelines", b"{}"), every_s=0.1)
    assert 1.0 <= elapsed < 3.0, elapsed
    sock.close()


def test_an_idle_keep_alive_connection_is_closed(quick: LocalService) -> None:
    sock = connect(quick)
    sock.sendall(request("ListPipelines", b"{}"))
    assert read_answer(sock)[0] == 200
    assert 1.4 <= closed_within(sock, 5) < 3.0
    sock.close()


def test_a_held_poll_is_answered_and_its_connection_kept(quick: LocalService) -> None:
    """The poll is held 2 s, longer than a request may take to arrive (1 s) and
    than a connection may idle (1.5 s): neither limit touches it."""
    sock = connect(quick)
    started = time.monotonic()
    sock.sendall(request("PollForTask", json.dumps({"workerGroup": "none"}).encode()))
    assert read_answer(sock) == (200, {})
    assert time.monotonic() - started >= 1.9
    sock.sendall(request("ListPipelines", b"{}"))
    assert read_answer(sock)[0] == 200
    sock.close()


def test_a_body_over_the_limit_is_refused_before_it_is_read(
    service: LocalService,
) -> None:
    sock = connect(service)
    sock.sendall(request("PutPipelineDefinition", b"", length=50 * 1024 * 1024))
    status, answer = read_answer(sock)  # not one byte of the 50 MB was sent
    assert status == 413
    assert answer["__type"] == "RequestEntityTooLargeException"
    assert "over the limit of 8388608" in answer["message"]
    sock.close()
    (call,) = service.calls("PutPipelineDefinition")
    assert call.error == "RequestEntityTooLargeException"


def test_a_client_that_expects_100_continue_is_refused_before_sending(
    service: LocalService,
) -> None:
    sock = connect(service)
    head = request("PutPipelineDefinition", b"", length=50 * 1024 * 1024)
    sock.sendall(head.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n"))
    status, answer = read_answer(sock)
    assert (status, answer["__type"]) == (413, "RequestEntityTooLargeException")
    sock.close()


def test_boto3_reads_the_refusal_of_an_oversized_body(service: LocalService) -> None:
    """The client sends its whole body before it reads: the service drops what
    it still receives and then closes, so the client reads the answer."""
    dp = make_client(service.endpoint_url)
    with pytest.raises(ClientError) as exc:
        dp.validate_pipeline_definition(
            pipelineId="df-ANY",
            pipelineObjects=[
                {
                    "id": f"o{i}",
                    "name": "o",
                    "fields": [{"key": "myX", "stringValue": "x" * 10_000}],
                }
                for i in range(900)
            ],
        )
    assert exc.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_a_chunked_body_is_refused(service: LocalService) -> None:
    sock = connect(service)
    head = (
        "POST / HTTP/1.1\r\nHost: local\r\nTransfer-Encoding: chunked\r\n"
        "X-Amz-Target: DataPipeline.ListPipelines\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    )
    sock.sendall(head.encode())
    status, answer = read_answer(sock)
    assert (status, answer["__type"]) == (411, "LengthRequiredException")
    sock.close()


@pytest.mark.parametrize("depth", [65, 100_000])
def test_deep_nesting_is_a_400_not_a_500(service: LocalService, depth: int) -> None:
    sock = connect(service)
    sock.sendall(request("ListPipelines", b"[" * depth + b"]" * depth))
    status, answer = read_answer(sock)
    assert status == 400
    assert answer == {
        "__type": "SerializationException",
        "message": "body nests deeper than 64 levels",
    }
    sock.close()


def test_nesting_within_the_bound_is_parsed(service: LocalService) -> None:
    sock = connect(service)
    nested = b'{"marker": ' + b"[" * 60 + b"]" * 60 + b"}"
    sock.sendall(request("ListPipelines", nested))
    status, answer = read_answer(sock)
    assert (status, answer["__type"]) == (400, "InvalidRequestException")
    sock.close()


def test_the_call_log_keeps_no_big_body_and_is_bounded(service: LocalService) -> None:
    objects = [
        {
            "id": f"o{i}",
            "name": "o",
            "fields": [{"key": "myX", "stringValue": "x" * 5000}],
        }
        for i in range(20)
    ]
    body = json.dumps({"pipelineId": "df-NONE", "pipelineObjects": objects}).encode()
    sock = connect(service)
    sock.sendall(request("ValidatePipelineDefinition", body))
    assert read_answer(sock)[1]["__type"] == "PipelineNotFoundException"
    sock.close()
    (call,) = service.calls("ValidatePipelineDefinition")
    assert call.request == {"pipelineId": "df-NONE", "...": len(body)}
    log = CallLog()
    for n in range(CallLog.MAX_CALLS + 5):
        log.append(RecordedCall("ListPipelines", {"n": n}, None, 0.0, 0.0))
    kept = log.calls()
    assert len(kept) == CallLog.MAX_CALLS
    assert kept[0].request == {"n": 5}
