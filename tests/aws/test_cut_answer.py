"""A cut answer is an error, retried like a broken connection.

botocore reads a body that is not JSON as ``{"message": body}`` and does not make
urllib3 enforce Content-Length, so a 200 answer cut mid-body used to pass for a
success with no fields: a cut DescribeObjects answer failed a good task with
MissingField. The local service's "cut" fault sends half of a committed answer
with no Content-Length and closes; "cut-length" sends a Content-Length that
promises the whole answer. Both run over real HTTP; the tests assert what the
service received.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3.exceptions
from botocore.config import Config
from structlog.testing import capture_logs

from runner import logs
from runner.aws import management
from runner.aws.client import Client, RetryPolicies
from runner.aws.translate import (
    IncompleteAnswerError,
    refuse_cut_answer,
    translate,
)
from runner.errors import TransientServiceError
from runner.localservice import LocalService
from runner.taskmodel import FinalStatus, TaskStatus, digest
from runner.wakeup import Wakeable
from tests.support.pipelines import default_object, fields_of, shell, submit
from tests.support.waiting import wait_for

WORKER_GROUP = "wg-cut"
HOSTNAME = "host-1"
CUTS = ["cut", "cut-length"]
CODE = "IncompleteAnswerError"


def _client(endpoint_url: str) -> Client:
    return Client(
        region="us-east-1",
        endpoint_url=endpoint_url,
        stop=Wakeable(),
        abort=Wakeable(),
        policies=RetryPolicies.fast(),
        log=logs.get_logger("test"),
    )


def _boto3(endpoint_url: str) -> Any:
    config = Config(retries={"total_max_attempts": 1})
    return boto3.client(
        "datapipeline",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        config=config,
    )


@pytest.fixture
def client(service: LocalService) -> Client:
    return _client(service.endpoint_url)


@pytest.fixture
def task(dp: Any) -> dict[str, Any]:
    """One ShellCommandActivity's task, polled (not acked) with plain boto3."""
    submit(dp, [default_object(WORKER_GROUP), shell("Step", "echo whole")])
    found: dict[str, Any] = wait_for(
        lambda: dp.poll_for_task(workerGroup=WORKER_GROUP).get("taskObject")
    )
    return found


def _errors(service: LocalService, operation: str) -> list[str | None]:
    return [call.error for call in service.calls(operation)]


@pytest.mark.parametrize("cut", CUTS)
def test_cut_describe_objects_answer_is_retried_and_whole(
    client: Client, service: LocalService, task: dict[str, Any], cut: str
) -> None:
    service.faults.add("DescribeObjects", error=cut)
    with capture_logs() as logged:
        (attempt,) = client.describe_objects(task["pipelineId"], [task["attemptId"]])
    assert attempt["id"] == task["attemptId"]
    fields = fields_of(attempt)
    assert fields["command"] == "echo whole"
    assert fields["@status"] == "WAITING_FOR_RUNNER"
    assert _errors(service, "DescribeObjects") == [cut, None]
    (retry,) = [e for e in logged if e["event"] == "client_retry_scheduled"]
    assert retry["operation"] == "DescribeObjects"
    assert retry["error"] == CODE
    assert client.statistics().errors == {CODE: 1}


@pytest.mark.parametrize("cut", CUTS)
def test_cut_set_task_status_answer_is_in_doubt_then_delivered(
    client: Client, dp: Any, service: LocalService, task: dict[str, Any], cut: str
) -> None:
    # The cut try committed; its retry finds the task gone, which then means
    # "delivered", exactly as after a 5xx (and never as after throttling).
    service.faults.add("SetTaskStatus", error=cut)
    with capture_logs() as logged:
        client.set_task_status(task["taskId"], FinalStatus(TaskStatus.FINISHED))
    assert _errors(service, "SetTaskStatus") == [cut, "TaskNotFoundException"]
    (assumed,) = [e for e in logged if e["event"] == "task_status_assumed_delivered"]
    assert assumed["task_id"] == digest(task["taskId"])
    assert assumed["earlier_error"] == CODE
    instance = fields_of(task["objects"][task["attemptId"]])["@instanceParent"]
    described = dp.describe_objects(pipelineId=task["pipelineId"], objectIds=[instance])
    assert fields_of(described["pipelineObjects"][0])["@status"] == "FINISHED"


def test_cut_answers_to_every_worker_call_are_retried(
    client: Client, service: LocalService, task: dict[str, Any]
) -> None:
    operations = (
        "PollForTask",
        "ReportTaskProgress",
        "ReportTaskRunnerHeartbeat",
        "DescribeObjects",
        "QueryObjects",
    )
    for operation in operations:
        service.faults.add(operation, error="cut")
    assert client.poll_for_task("nobody-serves-this", HOSTNAME) is None
    assert client.report_task_progress(task["taskId"], first=True) is False
    assert client.report_task_runner_heartbeat("r-1", WORKER_GROUP, HOSTNAME) is False
    (attempt,) = client.describe_objects(task["pipelineId"], [task["attemptId"]])
    assert fields_of(attempt)["@status"] == "RUNNING"  # the cut ack committed
    assert management.query_objects(client, task["pipelineId"], "ATTEMPT") == [
        task["attemptId"]
    ]
    for operation in operations:
        assert _errors(service, operation)[-2:] == ["cut", None]
    stats = client.statistics()
    assert stats.errors == {CODE: len(operations)}
    assert stats.retries == len(operations)


def test_cut_poll_answer_loses_the_lease_until_the_ack_window_ends(
    tmp_path: Path,
) -> None:
    # The cut poll leased a task the runner never saw. The client retries the
    # poll, which finds nothing while that lease holds; once the ack window (2
    # minutes, 2.4 s here) ends unacked, the service offers the same attempt again
    # under a new task id, and nothing ran twice.
    with LocalService(
        state_path=tmp_path / "s.db", time_scale=0.02, poll_hold_s=0.5
    ) as service:
        dp, client = _boto3(service.endpoint_url), _client(service.endpoint_url)
        pipeline_id = submit(dp, [default_object(WORKER_GROUP), shell("Step", "true")])
        service.faults.add("PollForTask", error="cut")
        started = time.monotonic()
        assert client.poll_for_task(WORKER_GROUP, HOSTNAME) is None
        assert _errors(service, "PollForTask") == ["cut", None]
        assert client.statistics().errors == {CODE: 1}
        task = wait_for(lambda: client.poll_for_task(WORKER_GROUP, HOSTNAME))
        assert time.monotonic() - started >= 2.4 * 0.9  # not before the window ended
        (attempt_id,) = dp.query_objects(pipelineId=pipeline_id, sphere="ATTEMPT")[
            "ids"
        ]
        assert task["attemptId"] == attempt_id  # the same attempt, offered again
        assert client.report_task_progress(task["taskId"], first=True) is False


# -- the check itself (pure) ----------------------------------------------------------


def _answer(body: Any, status: int = 200, **headers: str) -> dict[str, Any]:
    return {"body": body, "status_code": status, "headers": headers}


@pytest.mark.parametrize(
    "answer",
    [
        _answer(b""),  # PollForTask with no task may answer an empty body
        _answer(b"{}"),
        _answer(b' {"taskObject": {}}\n', **{"content-length": "19"}),
        _answer(b"<html>Bad Gateway</html>", 502),  # the status decides
        _answer(object()),  # a streamed body is not read here
    ],
)
def test_a_whole_answer_passes(answer: dict[str, Any]) -> None:
    refuse_cut_answer(response_dict=answer)


@pytest.mark.parametrize(
    "answer",
    [
        _answer(b'{"pipelineObjects": [{"id"'),
        _answer(b"{"),
        _answer(b"[]"),  # JSON, but not an answer
        _answer('{"m": "\u00e9"}'.encode()[:-3]),  # cut inside a character
        _answer(b"{}", **{"content-length": "10"}),
        _answer(b'{"__type": "TaskNotF', 400, **{"content-length": "60"}),
    ],
)
def test_a_cut_answer_is_refused(answer: dict[str, Any]) -> None:
    with pytest.raises(IncompleteAnswerError):
        refuse_cut_answer(response_dict=answer)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (IncompleteAnswerError(detail="1 of 2 bytes"), CODE),
        (  # what urllib3 raises when it does enforce Content-Length
            urllib3.exceptions.ProtocolError(
                "Connection broken", urllib3.exceptions.IncompleteRead(5, 10)
            ),
            "ProtocolError",
        ),
    ],
)
def test_a_cut_answer_translates_to_transient(exc: Exception, code: str) -> None:
    translated = translate("DescribeObjects", exc)
    assert isinstance(translated, TransientServiceError)
    assert translated.code == code
