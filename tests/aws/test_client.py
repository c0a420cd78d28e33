"""Contract tests of ``runner.aws.client`` against the local service over real HTTP.

The service validates every request against botocore's model and scripts faults
(an AWS error or a dropped connection, injected before the operation commits), so
these tests assert what the service received and what it stored, not what the
client thinks it did.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
import urllib3.exceptions
from structlog.testing import capture_logs

from runner import logs
from runner.aws import management
from runner.aws.client import Client, RetryPolicies, RetryPolicy
from runner.aws.retries import call_with_retries
from runner.aws.translate import translate
from runner.errors import (
    ConfigError,
    CredentialsRejectedError,
    RejectedRequestError,
    TaskNotFoundError,
    TransientServiceError,
)
from runner.localservice import LocalService
from runner.taskmodel import FinalStatus, TaskStatus, digest
from runner.wakeup import Wakeable

WORKER_GROUP = "wg-client"
HOSTNAME = "host-1"
FAST = RetryPolicies.fast()
#: Waits long enough that only an interrupt can end them within the test.
SLOW = RetryPolicy(attempts=1000, budget_s=60.0, wait_initial_s=5.0, wait_max_s=10.0)
TRANSIENT = [
    "InternalServiceError",
    "ThrottlingException",
    "ServiceUnavailable",
    "drop",
]


def _wait_for(predicate: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, "condition not met in time"
        threading.Event().wait(0.02)
    return value


def _fields(obj: dict[str, Any]) -> dict[str, str]:
    return {
        f["key"]: f.get("stringValue", f.get("refValue", "")) for f in obj["fields"]
    }


def _definition(command: str, worker_group: str) -> list[dict[str, Any]]:
    default = {
        "id": "Default",
        "name": "Default",
        "fields": [
            {"key": "scheduleType", "stringValue": "ondemand"},
            {"key": "failureAndRerunMode", "stringValue": "CASCADE"},
        ],
    }
    activity = {
        "id": "Step",
        "name": "Step",
        "fields": [
            {"key": "type", "stringValue": "ShellCommandActivity"},
            {"key": "workerGroup", "stringValue": worker_group},
            {"key": "command", "stringValue": command},
        ],
    }
    return [default, activity]


@pytest.fixture
def new_client(service: LocalService) -> Callable[..., Client]:
    """Build a Client for the service; events default to fresh, unset ones."""

    def build(
        policies: RetryPolicies = FAST,
        stop: threading.Event | None = None,
        abort: threading.Event | None = None,
        **kwargs: Any,
    ) -> Client:
        return Client(
            region="us-east-1",
            endpoint_url=service.endpoint_url,
            stop=stop or Wakeable(),
            abort=abort or Wakeable(),
            policies=policies,
            log=logs.get_logger("test"),
            **kwargs,
        )

    return build


@pytest.fixture
def client(new_client: Callable[..., Client]) -> Client:
    return new_client()


@pytest.fixture
def make_task(dp: Any) -> Callable[..., dict[str, Any]]:
    """Submit a one-activity pipeline and poll its task with plain boto3."""

    def make(command: str = "true") -> dict[str, Any]:
        pipeline_id = dp.create_pipeline(name="t", uniqueId=uuid.uuid4().hex)[
            "pipelineId"
        ]
        answer = dp.put_pipeline_definition(
            pipelineId=pipeline_id, pipelineObjects=_definition(command, WORKER_GROUP)
        )
        assert not answer["errored"], answer
        dp.activate_pipeline(pipelineId=pipeline_id)
        task: dict[str, Any] = _wait_for(
            lambda: dp.poll_for_task(workerGroup=WORKER_GROUP).get("taskObject")
        )
        return task

    return make


def _attempt_status(dp: Any, task: dict[str, Any]) -> str:
    objects = dp.describe_objects(
        pipelineId=task["pipelineId"], objectIds=[task["attemptId"]]
    )["pipelineObjects"]
    return _fields(objects[0])["@status"]


def _errors(service: LocalService, operation: str) -> list[str | None]:
    return [call.error for call in service.calls(operation)]


# -- poll ----------------------------------------------------------------------------


def test_poll_returns_the_task_object(client: Client, dp: Any) -> None:
    pipeline_id = dp.create_pipeline(name="t", uniqueId="poll")["pipelineId"]
    dp.put_pipeline_definition(
        pipelineId=pipeline_id, pipelineObjects=_definition("echo hi", WORKER_GROUP)
    )
    dp.activate_pipeline(pipelineId=pipeline_id)
    task = _wait_for(lambda: client.poll_for_task(WORKER_GROUP, HOSTNAME))
    assert task["pipelineId"] == pipeline_id
    attempt = _fields(task["objects"][task["attemptId"]])
    assert attempt["command"] == "echo hi"
    assert attempt["workerGroup"] == WORKER_GROUP
    assert task["taskId"]


def test_poll_returns_none_when_no_task(client: Client, service: LocalService) -> None:
    assert client.poll_for_task("nobody-serves-this", HOSTNAME) is None
    (call,) = service.calls("PollForTask")
    assert call.request == {"workerGroup": "nobody-serves-this", "hostname": HOSTNAME}


def test_poll_read_timeout_is_no_task_not_an_error(
    new_client: Callable[..., Client], service: LocalService
) -> None:
    client = new_client(poll_read_timeout_s=0.1)  # the service holds for 0.5 s
    started = time.monotonic()
    assert client.poll_for_task("nobody-serves-this", HOSTNAME) is None
    assert time.monotonic() - started < 0.4  # did not wait out the service's hold
    assert client.statistics().calls == {"PollForTask": 1}  # and did not retry
    _wait_for(lambda: service.calls("PollForTask"))  # the held poll ends quietly


# -- progress ------------------------------------------------------------------------


def test_ack_then_cancel_answers_canceled(
    client: Client, dp: Any, make_task: Callable[..., dict[str, Any]]
) -> None:
    task = make_task()
    assert client.report_task_progress(task["taskId"], first=True) is False
    instance = _fields(task["objects"][task["attemptId"]])["@instanceParent"]
    dp.set_status(
        pipelineId=task["pipelineId"], objectIds=[instance], status="TRY_CANCEL"
    )
    assert client.report_task_progress(task["taskId"], deadline_s=1.0) is True


def test_progress_sends_fields(
    client: Client, service: LocalService, make_task: Callable[..., dict[str, Any]]
) -> None:
    task = make_task()
    client.report_task_progress(task["taskId"], fields=[("percentComplete", "50")])
    (call,) = service.calls("ReportTaskProgress")
    assert call.request["fields"] == [{"key": "percentComplete", "stringValue": "50"}]


def test_progress_of_deleted_pipeline_is_task_gone(
    client: Client, dp: Any, make_task: Callable[..., dict[str, Any]]
) -> None:
    task = make_task()
    dp.delete_pipeline(pipelineId=task["pipelineId"])
    with pytest.raises(TaskNotFoundError):
        client.report_task_progress(task["taskId"])


def test_progress_of_unknown_task_is_task_gone(client: Client) -> None:
    with pytest.raises(TaskNotFoundError) as caught:
        client.report_task_progress("no-such-task")
    assert caught.value.code == "TaskNotFoundException"


# -- final status --------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        (FinalStatus(TaskStatus.FINISHED), "FINISHED"),
        (FinalStatus.failed("ExitCode:2", "exit 2", "trace"), "FAILED"),
    ],
)
def test_set_task_status_lands(
    client: Client,
    dp: Any,
    service: LocalService,
    make_task: Callable[..., dict[str, Any]],
    case: tuple[FinalStatus, str],
) -> None:
    status, stored = case
    task = make_task()
    client.set_task_status(task["taskId"], status)
    assert _attempt_status(dp, task) == stored
    (call,) = service.calls("SetTaskStatus")
    assert call.request == {"taskId": task["taskId"], **status.to_api()}


def test_set_task_status_twice_is_task_not_found_on_first_try(
    client: Client, make_task: Callable[..., dict[str, Any]]
) -> None:
    task = make_task()
    client.set_task_status(task["taskId"], FinalStatus(TaskStatus.FINISHED))
    with pytest.raises(TaskNotFoundError):
        client.set_task_status(task["taskId"], FinalStatus(TaskStatus.FINISHED))


@pytest.mark.parametrize("error", TRANSIENT)
def test_transient_fault_on_set_task_status_lands_exactly_one_status(
    client: Client,
    dp: Any,
    service: LocalService,
    make_task: Callable[..., dict[str, Any]],
    error: str,
) -> None:
    task = make_task()
    service.faults.add("SetTaskStatus", error=error, times=2)
    with capture_logs() as logged:
        client.set_task_status(task["taskId"], FinalStatus(TaskStatus.FINISHED))
    assert _errors(service, "SetTaskStatus") == [error, error, None]
    assert _attempt_status(dp, task) == "FINISHED"
    retries = [e for e in logged if e["event"] == "client_retry_scheduled"]
    assert [e["attempt"] for e in retries] == [1, 2]
    assert all(e["task_id"] == digest(task["taskId"]) for e in retries)
    assert not any(task["taskId"] in str(e) for e in logged)  # never the full id


def test_task_not_found_after_a_failed_try_counts_as_delivered(
    client: Client,
    dp: Any,
    service: LocalService,
    make_task: Callable[..., dict[str, Any]],
) -> None:
    # The first try commits but its answer is lost (a 5xx after the commit): the
    # service records it as a status already set, so the retry gets TaskNotFound.
    task = make_task()
    dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    service.faults.add("SetTaskStatus", error="InternalServiceError", times=1)
    with capture_logs() as logged:
        client.set_task_status(task["taskId"], FinalStatus(TaskStatus.FINISHED))
    assert _errors(service, "SetTaskStatus") == [
        None,
        "InternalServiceError",
        "TaskNotFoundException",
    ]
    (assumed,) = [e for e in logged if e["event"] == "task_status_assumed_delivered"]
    assert assumed["task_id"] == digest(task["taskId"])
    assert assumed["earlier_error"] == "InternalServiceError"


def test_task_not_found_after_throttling_is_not_delivered(
    client: Client, dp: Any, service: LocalService, make_task: Callable[..., Any]
) -> None:
    task = make_task()  # throttling is a clean refusal: nothing was committed
    dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    service.faults.add("SetTaskStatus", error="ThrottlingException", times=1)
    with pytest.raises(TaskNotFoundError):
        client.set_task_status(task["taskId"], FinalStatus(TaskStatus.FINISHED))


def test_invalid_request_is_never_retried(
    client: Client, service: LocalService, make_task: Callable[..., dict[str, Any]]
) -> None:
    task = make_task()
    raw = FinalStatus(TaskStatus.FAILED, error_id="Service_x", error_message="m")
    with capture_logs() as logged, pytest.raises(RejectedRequestError) as caught:
        client.set_task_status(task["taskId"], raw)
    assert caught.value.code == "InvalidRequestException"
    assert _errors(service, "SetTaskStatus") == ["InvalidRequestException"]
    (rejected,) = [e for e in logged if e["event"] == "service_rejected_request"]
    assert rejected["log_level"] == "error"
    assert client.statistics().retries == 0


# -- every operation retries transient faults ---------------------------------------


@pytest.mark.parametrize("error", ["InternalServiceError", "drop"])
def test_transient_faults_on_every_worker_call_are_retried(
    client: Client,
    service: LocalService,
    make_task: Callable[..., dict[str, Any]],
    error: str,
) -> None:
    task = make_task()
    operations = (
        "PollForTask",
        "ReportTaskProgress",
        "ReportTaskRunnerHeartbeat",
        "DescribeObjects",
        "SetTaskStatus",
    )
    before = {operation: len(service.calls(operation)) for operation in operations}
    for operation in operations:
        service.faults.add(operation, error=error, times=1)
    assert client.poll_for_task("nobody-serves-this", HOSTNAME) is None
    assert client.report_task_progress(task["taskId"], first=True) is False
    assert (
        client.report_task_runner_heartbeat("runner-1", WORKER_GROUP, HOSTNAME) is False
    )
    (attempt,) = client.describe_objects(task["pipelineId"], [task["attemptId"]])
    assert attempt["id"] == task["attemptId"]
    client.set_task_status(task["taskId"], FinalStatus(TaskStatus.FINISHED))
    stats = client.statistics()
    for operation in operations:
        assert _errors(service, operation)[before[operation] :] == [error, None]
        assert stats.calls[operation] == 2
    assert stats.retries == 5
    assert stats.errors == {("ConnectionClosedError" if error == "drop" else error): 5}


def test_runner_heartbeat_returns_terminate(
    client: Client, service: LocalService
) -> None:
    assert client.report_task_runner_heartbeat("r-1", WORKER_GROUP, HOSTNAME) is False
    service.set_terminate(True)
    assert client.report_task_runner_heartbeat("r-1", WORKER_GROUP, HOSTNAME) is True
    assert service.calls("ReportTaskRunnerHeartbeat")[0].request == {
        "taskrunnerId": "r-1",
        "workerGroup": WORKER_GROUP,
        "hostname": HOSTNAME,
    }


def test_retries_stop_after_the_policys_attempts(
    new_client: Callable[..., Client], service: LocalService
) -> None:
    policy = RetryPolicy(attempts=3, budget_s=10.0, wait_initial_s=0.0, wait_max_s=0.0)
    client = new_client(RetryPolicies(*[policy] * 6))
    service.faults.add(
        "ReportTaskRunnerHeartbeat", error="ServiceUnavailable", times=None
    )
    with pytest.raises(TransientServiceError) as caught:
        client.report_task_runner_heartbeat("r-1", WORKER_GROUP, HOSTNAME)
    assert caught.value.code == "ServiceUnavailable"
    assert len(service.calls("ReportTaskRunnerHeartbeat")) == 3


def test_progress_retries_end_by_the_callers_deadline(
    new_client: Callable[..., Client],
    service: LocalService,
    make_task: Callable[..., dict[str, Any]],
) -> None:
    policy = RetryPolicy(
        attempts=1000, budget_s=60.0, wait_initial_s=0.1, wait_max_s=0.1
    )
    client = new_client(RetryPolicies(*[policy] * 6))
    task = make_task()
    service.faults.add("ReportTaskProgress", error="InternalServiceError", times=None)
    started = time.monotonic()
    with pytest.raises(TransientServiceError):
        client.report_task_progress(task["taskId"], deadline_s=0.3)
    assert time.monotonic() - started < 1.0


# -- shutdown interrupts backoff ------------------------------------------------------


class _Later:
    """Set an event from a timer thread; remembers when it did."""

    def __init__(self, event: threading.Event, delay_s: float) -> None:
        self.event = event
        self.set_at: float | None = None
        self.timer = threading.Timer(delay_s, self._fire)
        self.timer.start()

    def _fire(self) -> None:
        self.set_at = time.monotonic()
        self.event.set()

    def seconds_since(self) -> float:
        return time.monotonic() - self.fired_at()

    def fired_at(self) -> float:
        self.timer.join()
        assert self.set_at is not None
        return self.set_at


def test_stop_interrupts_the_backoff_of_the_runner_heartbeat(
    new_client: Callable[..., Client], service: LocalService
) -> None:
    stop = Wakeable()
    client = new_client(RetryPolicies(*[SLOW] * 6), stop=stop)
    service.faults.add(
        "ReportTaskRunnerHeartbeat", error="ThrottlingException", times=None
    )
    later = _Later(stop, 0.2)
    with pytest.raises(TransientServiceError) as caught:
        client.report_task_runner_heartbeat("r-1", WORKER_GROUP, HOSTNAME)
    assert later.seconds_since() < 0.5
    assert caught.value.code == "ThrottlingException"


def test_set_task_status_retries_until_its_deadline_which_may_move_closer(
    new_client: Callable[..., Client],
    service: LocalService,
    make_task: Callable[..., dict[str, Any]],
) -> None:
    """Neither ``stop`` nor ``abort`` ends the final status: only its deadline does
    (the shutdown's status deadline), re-read whenever a ``wake`` event is set."""
    stop, abort, moved = Wakeable(), Wakeable(), Wakeable()
    client = new_client(RetryPolicies(*[SLOW] * 6), stop=stop, abort=abort)
    task = make_task()
    service.faults.add("SetTaskStatus", error="InternalServiceError", times=None)
    deadline: list[float | None] = [None]
    _Later(stop, 0.05), _Later(abort, 0.1)
    mover = threading.Timer(
        0.4, lambda: (deadline.__setitem__(0, time.monotonic()), moved.set())
    )
    mover.start()
    with pytest.raises(TransientServiceError):
        client.set_task_status(
            task["taskId"],
            FinalStatus(TaskStatus.FINISHED),
            until=lambda: deadline[0],
            wake=(moved,),
        )
    ended = time.monotonic()
    mover.join()
    moved_at = deadline[0]
    assert moved_at is not None
    assert ended >= moved_at  # stop and abort at 0.05 s and 0.1 s did not end it
    tries = service.calls("SetTaskStatus")
    # the moved deadline did, at once: its last try reached the service within
    # 0.5 s of the move (its arrival, not the answer's return, which a loaded
    # machine took 3.9 s to make)
    assert tries[-1].at - moved_at < 0.5
    assert [c.at >= moved_at for c in tries][-1]  # one last try after the move
    assert sum(c.at >= moved_at for c in tries) == 1


def test_abort_interrupts_the_backoff_of_the_poll(
    new_client: Callable[..., Client], service: LocalService
) -> None:
    abort = Wakeable()
    client = new_client(RetryPolicies(*[SLOW] * 6), abort=abort)
    service.faults.add("PollForTask", error="drop", times=None)
    later = _Later(abort, 0.2)
    with pytest.raises(TransientServiceError) as caught:
        client.poll_for_task(WORKER_GROUP, HOSTNAME)
    assert later.seconds_since() < 0.5
    assert caught.value.code == "ConnectionClosedError"


# -- paging and management calls -----------------------------------------------------


def test_describe_objects_batches_25_ids_and_query_pages(
    client: Client, service: LocalService
) -> None:
    objects = _definition("true", "wg-never-polled")
    for n in range(30):
        objects.append({**objects[1], "id": f"Step{n}", "name": f"Step{n}"})
    pipeline_id = management.create_pipeline(client, "many", uuid.uuid4().hex)
    answer = management.put_pipeline_definition(client, pipeline_id, objects)
    assert answer["errored"] is False
    management.activate_pipeline(client, pipeline_id)
    ids = management.query_objects(client, pipeline_id, "COMPONENT")
    assert {"Default", "Step", "Step29"} <= set(ids)
    described = client.describe_objects(pipeline_id, ids, evaluate_expressions=False)
    assert sorted(obj["id"] for obj in described) == sorted(ids)
    batches = [len(c.request["objectIds"]) for c in service.calls("DescribeObjects")]
    assert batches == [25, len(ids) - 25]


def test_errored_definition_is_returned_not_raised(client: Client) -> None:
    pipeline_id = management.create_pipeline(client, "bad", uuid.uuid4().hex)
    bad = [{"id": "X", "name": "X", "fields": [{"key": "parent", "refValue": "Gone"}]}]
    answer = management.put_pipeline_definition(client, pipeline_id, bad)
    assert answer["errored"] is True
    assert answer["validationErrors"]
    assert "ResponseMetadata" not in answer


# -- configuration and credentials ----------------------------------------------------


def test_no_region_and_no_endpoint_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    empty = tmp_path / "config"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    with pytest.raises(ConfigError, match="set --region or AWS_REGION"):
        Client(
            region=None,
            endpoint_url=None,
            stop=Wakeable(),
            abort=Wakeable(),
            log=logs.get_logger("test"),
        )


def test_region_comes_from_the_flag_then_aws_region_then_boto3(
    monkeypatch: pytest.MonkeyPatch, service: LocalService
) -> None:
    kwargs: dict[str, Any] = {
        "endpoint_url": service.endpoint_url,
        "stop": Wakeable(),
        "abort": Wakeable(),
        "log": logs.get_logger("test"),
    }
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert Client(region=None, **kwargs).region == "us-west-2"
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # boto3 alone would ignore it
    assert Client(region=None, **kwargs).region == "eu-west-1"
    assert Client(region="ap-northeast-1", **kwargs).region == "ap-northeast-1"


def test_missing_credentials_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, client: Client, service: LocalService
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    bare = Client(
        region="us-east-1",
        endpoint_url=service.endpoint_url,
        stop=Wakeable(),
        abort=Wakeable(),
        log=logs.get_logger("test"),
    )
    with pytest.raises(ConfigError, match="no AWS credentials found"):
        bare.report_task_runner_heartbeat("r-1", WORKER_GROUP, HOSTNAME)
    assert service.calls("ReportTaskRunnerHeartbeat") == []


# -- translation and the retry loop (pure) -------------------------------------------


def _client_error(code: str, http_status: int) -> botocore.exceptions.ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": http_status},
    }
    return botocore.exceptions.ClientError(response, "PollForTask")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_client_error("ThrottlingException", 400), TransientServiceError),
        (_client_error("RequestLimitExceeded", 400), TransientServiceError),
        (_client_error("SomethingNew", 502), TransientServiceError),
        (_client_error("PipelineDeletedException", 400), TaskNotFoundError),
        (_client_error("PipelineNotFoundException", 400), TaskNotFoundError),
        (_client_error("InvalidRequestException", 400), RejectedRequestError),
        (_client_error("ExpiredTokenException", 400), CredentialsRejectedError),
        (_client_error("AccessDeniedException", 400), CredentialsRejectedError),
        (botocore.exceptions.ReadTimeoutError(endpoint_url="u"), TransientServiceError),
        (
            botocore.exceptions.ConnectTimeoutError(endpoint_url="u"),
            TransientServiceError,
        ),
        (
            botocore.exceptions.EndpointConnectionError(endpoint_url="u"),
            TransientServiceError,
        ),
        (urllib3.exceptions.ProtocolError("reset"), TransientServiceError),
        (botocore.exceptions.NoCredentialsError(), ConfigError),
        (botocore.exceptions.ParamValidationError(report="bad"), RejectedRequestError),
    ],
)
def test_translate(exc: Exception, expected: type[Exception]) -> None:
    translated = translate("PollForTask", exc)
    assert type(translated) is expected


def test_an_event_set_before_the_call_still_allows_one_try() -> None:
    stop = Wakeable()
    stop.set()
    tries: list[int] = []

    def attempt() -> int:
        tries.append(1)
        raise TransientServiceError("Op", "InternalServiceError", "m")

    with pytest.raises(TransientServiceError):
        call_with_retries(
            attempt,
            SLOW,
            retry_on=TransientServiceError,
            interrupt=[stop],
            on_retry=lambda *_: None,
        )
    assert tries == [1]


def test_an_outage_warns_once_then_says_when_the_service_answers_again(
    new_client: Callable[..., Client], service: LocalService
) -> None:
    patient = RetryPolicy(10, 10.0, 0.01, 0.05)
    client = new_client(dataclasses.replace(FAST, poll=patient))
    service.faults.add("PollForTask", error="InternalServiceError", times=6)
    with capture_logs() as logged:
        assert client.poll_for_task(WORKER_GROUP, "host") is None
    retries = [e for e in logged if e["event"] == "client_retry_scheduled"]
    assert [e["log_level"] for e in retries] == ["warning"] + ["debug"] * 5
    assert retries[0]["error"] == "InternalServiceError"
    (again,) = [e for e in logged if e["event"] == "service_answers_again"]
    assert (again["operation"], again["retries"]) == ("PollForTask", 6)
