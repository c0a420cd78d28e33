"""The task API over real HTTP: polls, leases, acks, statuses and their timeouts."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from runner.localservice import LocalService
from tests.support.localservice import (
    fields_of,
    instance_status,
    make_client,
    run_pipeline,
    shell,
    wait_for,
)


def poll(dp: Any, group: str = "wg") -> dict[str, Any]:
    task: dict[str, Any] = wait_for(
        lambda: dp.poll_for_task(workerGroup=group).get("taskObject")
    )
    return task


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_empty_poll_answers_without_task_object(dp: Any) -> None:
    answer = dp.poll_for_task(workerGroup="nobody")
    assert "taskObject" not in answer


def test_task_object_has_the_real_shape(dp: Any) -> None:
    pipeline_id = run_pipeline(
        dp,
        [
            shell(
                "Act",
                "echo #{myGreeting} $1",
                scriptArgument="a",
                ref_input="In",
                ref_schedule="Sched",
            ),
            {
                "id": "In",
                "name": "In",
                "fields": [
                    {"key": "type", "stringValue": "S3DataNode"},
                    {"key": "directoryPath", "stringValue": "s3://b/#{myGreeting}"},
                ],
            },
            {
                "id": "Sched",
                "name": "Sched",
                "fields": [
                    {"key": "type", "stringValue": "Schedule"},
                    {"key": "period", "stringValue": "1 day"},
                    {"key": "startAt", "stringValue": "FIRST_ACTIVATION_DATE_TIME"},
                ],
            },
        ],
        parameterObjects=[
            {
                "id": "myGreeting",
                "attributes": [{"key": "type", "stringValue": "String"}],
            }
        ],
        parameterValues=[{"id": "myGreeting", "stringValue": "hello"}],
    )
    task = poll(dp)
    assert task["pipelineId"] == pipeline_id
    attempt_id = task["attemptId"]
    assert attempt_id.startswith("@Act_")
    assert attempt_id.endswith("_Attempt=1")
    assert 200 < len(task["taskId"]) <= 2048
    attempt = fields_of(task["objects"][attempt_id])
    assert attempt["command"] == ["echo hello $1"]
    assert attempt["scriptArgument"] == ["a"]
    assert attempt["@sphere"] == ["ATTEMPT"]
    assert attempt["@componentParent"] == ["Act"]
    instance_id = attempt["@instanceParent"][0]
    # AWS's shape (API reference, PollForTask): inherited fields are flattened into
    # the attempt; only the objects its other references name travel with it
    assert set(task["objects"]) == {attempt_id, "In"}
    assert attempt["scheduleType"] == ["ondemand"]  # set on Default
    assert attempt["schedule"] == ["Sched"]
    assert attempt["type"] == ["ShellCommandActivity"]
    assert "parent" not in attempt
    assert fields_of(task["objects"]["In"])["directoryPath"] == ["s3://b/hello"]
    scheduled = attempt["@scheduledStartTime"][0]
    assert instance_id == f"@Act_{scheduled}"


def test_full_cycle_finishes_instance(dp: Any) -> None:
    pipeline_id = run_pipeline(dp, [shell("A")])
    task = poll(dp)
    assert dp.report_task_progress(taskId=task["taskId"])["canceled"] is False
    instance_id = task["attemptId"].rsplit("_Attempt", 1)[0]
    assert instance_status(dp, pipeline_id, instance_id) == "RUNNING"
    dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    assert instance_status(dp, pipeline_id, instance_id) == "FINISHED"
    state = dp.describe_pipelines(pipelineIds=[pipeline_id])["pipelineDescriptionList"][
        0
    ]
    assert fields_of(state)["@pipelineState"] == ["FINISHED"]


def test_second_status_for_finished_task_is_task_not_found(dp: Any) -> None:
    run_pipeline(dp, [shell("A")])
    task = poll(dp)
    dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    with pytest.raises(ClientError) as exc:
        dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    assert error_code(exc) == "TaskNotFoundException"
    with pytest.raises(ClientError) as exc:
        dp.report_task_progress(taskId=task["taskId"])
    assert error_code(exc) == "TaskNotFoundException"


def test_unknown_task_id_is_task_not_found(dp: Any) -> None:
    with pytest.raises(ClientError) as exc:
        dp.report_task_progress(taskId="nope")
    assert error_code(exc) == "TaskNotFoundException"


def test_worker_groups_are_isolated(dp: Any) -> None:
    run_pipeline(dp, [shell("A", group="one"), shell("B", group="two")])
    task = poll(dp, "two")
    assert task["attemptId"].startswith("@B_")
    assert "taskObject" not in dp.poll_for_task(workerGroup="two")
    assert poll(dp, "one")["attemptId"].startswith("@A_")


def test_held_poll_wakes_when_a_task_is_ready() -> None:
    with LocalService(time_scale=0.01, poll_hold_s=5.0) as svc:
        dp = make_client(svc.endpoint_url)
        result: dict[str, Any] = {}

        def hold() -> None:
            started = time.monotonic()
            result["answer"] = dp.poll_for_task(workerGroup="wg")
            result["waited"] = time.monotonic() - started

        thread = threading.Thread(target=hold)
        thread.start()
        time.sleep(0.3)  # let the poll arrive first (the test holds either way)
        run_pipeline(make_client(svc.endpoint_url), [shell("A")])
        thread.join(timeout=10)
        assert "taskObject" in result["answer"]
        assert result["waited"] < 4.0


def test_missed_ack_window_reoffers_with_new_task_id(dp: Any) -> None:
    run_pipeline(dp, [shell("A")])
    first = poll(dp)
    assert "taskObject" not in dp.poll_for_task(workerGroup="wg")
    second = poll(dp)  # after 120 s x 0.01 the same attempt comes back
    assert second["attemptId"] == first["attemptId"]
    assert second["taskId"] != first["taskId"]
    with pytest.raises(ClientError) as exc:
        dp.report_task_progress(taskId=first["taskId"])
    assert error_code(exc) == "TaskNotFoundException"
    dp.report_task_progress(taskId=second["taskId"])
    dp.set_task_status(taskId=second["taskId"], taskStatus="FINISHED")


def test_progress_timeout_times_out_and_retries(dp: Any) -> None:
    pipeline_id = run_pipeline(
        dp, [shell("A", reportProgressTimeout="2 minutes", retryDelay="2 minutes")]
    )
    first = poll(dp)
    dp.report_task_progress(taskId=first["taskId"])
    second = poll(dp)
    assert second["attemptId"].endswith("_Attempt=2")
    attempt = dp.describe_objects(
        pipelineId=pipeline_id, objectIds=[first["attemptId"]]
    )
    fields = fields_of(attempt["pipelineObjects"][0])
    assert fields["@status"] == ["TIMEDOUT"]
    with pytest.raises(ClientError) as exc:
        dp.set_task_status(taskId=first["taskId"], taskStatus="FINISHED")
    assert error_code(exc) == "TaskNotFoundException"
    instance = fields_of(
        dp.describe_objects(
            pipelineId=pipeline_id,
            objectIds=[first["attemptId"].rsplit("_Attempt", 1)[0]],
        )["pipelineObjects"][0]
    )
    assert instance["@attemptCount"] == ["2"]
    assert instance["@triesLeft"] == ["1"]
    assert instance["@headAttempt"] == [second["attemptId"]]


def test_progress_reports_keep_the_lease(dp: Any) -> None:
    run_pipeline(dp, [shell("A", reportProgressTimeout="2 minutes")])
    task = poll(dp)
    deadline = time.monotonic() + 2.5  # longer than the 1.2 s progress window
    while time.monotonic() < deadline:
        dp.report_task_progress(taskId=task["taskId"])
        time.sleep(0.3)
    dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")


def test_failures_retry_after_retry_delay_then_fail_and_cascade(dp: Any) -> None:
    pipeline_id = run_pipeline(
        dp,
        [
            shell("A", maximumRetries="1", retryDelay="2 minutes"),
            shell("B", ref_dependsOn="A"),
        ],
    )
    first = poll(dp)
    failed_at = time.monotonic()
    dp.set_task_status(
        taskId=first["taskId"],
        taskStatus="FAILED",
        errorId="ExitCode:1",
        errorMessage="boom",
        errorStackTrace="trace",
    )
    second = poll(dp)
    assert time.monotonic() - failed_at >= 1.0  # retryDelay 120 s x 0.01
    assert second["attemptId"].endswith("_Attempt=2")
    dp.set_task_status(
        taskId=second["taskId"], taskStatus="FAILED", errorId="ExitCode:2"
    )
    instance_id = first["attemptId"].rsplit("_Attempt", 1)[0]
    assert instance_status(dp, pipeline_id, instance_id) == "FAILED"
    attempt = fields_of(
        dp.describe_objects(pipelineId=pipeline_id, objectIds=[first["attemptId"]])[
            "pipelineObjects"
        ][0]
    )
    assert attempt["errorId"] == ["ExitCode:1"]
    assert attempt["errorMessage"] == ["boom"]
    assert attempt["errorStackTrace"] == ["trace"]
    b_instance = instance_id.replace("@A_", "@B_")
    assert instance_status(dp, pipeline_id, b_instance) == "CASCADE_FAILED"
    health = dp.describe_pipelines(pipelineIds=[pipeline_id])[
        "pipelineDescriptionList"
    ][0]
    assert fields_of(health)["@healthStatus"] == ["ERROR"]


def test_depends_on_orders_tasks(dp: Any) -> None:
    run_pipeline(
        dp, [shell("C", ref_dependsOn="B"), shell("B", ref_dependsOn="A"), shell("A")]
    )
    order = []
    for _ in range(3):
        task = poll(dp)
        assert "taskObject" not in dp.poll_for_task(workerGroup="wg")
        order.append(task["attemptId"].split("_")[0])
        dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    assert order == ["@A", "@B", "@C"]


def test_precondition_false_then_finished(dp: Any) -> None:
    pipeline_id = run_pipeline(
        dp,
        [
            shell("A", ref_precondition="Ready"),
            {
                "id": "Ready",
                "name": "Ready",
                "fields": [
                    {"key": "type", "stringValue": "ShellCommandPrecondition"},
                    {"key": "command", "stringValue": "test -f /tmp/x"},
                    {"key": "retryDelay", "stringValue": "2 minutes"},
                ],
            },
        ],
    )
    check = poll(dp)
    assert check["attemptId"].startswith("@Ready_")
    assert fields_of(check["objects"][check["attemptId"]])["type"] == [
        "ShellCommandPrecondition"
    ]
    dp.set_task_status(taskId=check["taskId"], taskStatus="FALSE")
    again = poll(dp)
    assert again["attemptId"].startswith("@Ready_")
    assert again["attemptId"].endswith("=2")
    dp.set_task_status(taskId=again["taskId"], taskStatus="FINISHED")
    task = poll(dp)
    assert task["attemptId"].startswith("@A_")
    instance = task["attemptId"].rsplit("_Attempt", 1)[0]
    assert instance_status(dp, pipeline_id, instance) == "WAITING_FOR_RUNNER"


def test_precondition_timeout_cascades(dp: Any) -> None:
    pipeline_id = run_pipeline(
        dp,
        [
            shell("A", ref_precondition="Ready"),
            {
                "id": "Ready",
                "name": "Ready",
                "fields": [
                    {"key": "type", "stringValue": "ShellCommandPrecondition"},
                    {"key": "command", "stringValue": "false"},
                    {"key": "retryDelay", "stringValue": "2 minutes"},
                    {"key": "preconditionTimeout", "stringValue": "1 minutes"},
                ],
            },
        ],
    )
    check = poll(dp)
    dp.set_task_status(taskId=check["taskId"], taskStatus="FALSE")
    instance = check["attemptId"].rsplit("_Attempt", 1)[0]
    assert instance_status(dp, pipeline_id, instance) == "TIMEDOUT"
    assert instance_status(dp, pipeline_id, instance.replace("@Ready_", "@A_")) == (
        "CASCADE_FAILED"
    )


def test_cancel_answers_canceled_and_late_status_is_accepted(dp: Any) -> None:
    pipeline_id = run_pipeline(dp, [shell("A"), shell("B", ref_dependsOn="A")])
    task = poll(dp)
    dp.report_task_progress(taskId=task["taskId"])
    instance = task["attemptId"].rsplit("_Attempt", 1)[0]
    dp.set_status(pipelineId=pipeline_id, objectIds=[instance], status="try_cancel")
    assert dp.report_task_progress(taskId=task["taskId"])["canceled"] is True
    assert instance_status(dp, pipeline_id, instance) == "CANCELED"
    dp.set_task_status(taskId=task["taskId"], taskStatus="FAILED")  # ignored, no error
    assert instance_status(dp, pipeline_id, instance) == "CANCELED"
    with pytest.raises(ClientError) as exc:
        dp.report_task_progress(taskId=task["taskId"])
    assert error_code(exc) == "TaskNotFoundException"
    assert instance_status(dp, pipeline_id, instance.replace("@A_", "@B_")) == (
        "CASCADE_FAILED"
    )


def test_deleted_pipeline_answers_pipeline_deleted(dp: Any) -> None:
    pipeline_id = run_pipeline(dp, [shell("A"), shell("B")])
    task = poll(dp)
    dp.delete_pipeline(pipelineId=pipeline_id)
    for call in (
        lambda: dp.report_task_progress(taskId=task["taskId"]),
        lambda: dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED"),
        lambda: dp.describe_pipelines(pipelineIds=[pipeline_id]),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert error_code(exc) == "PipelineDeletedException"
    assert "taskObject" not in dp.poll_for_task(workerGroup="wg")


def test_attempt_timeout_reported_by_runner_is_recorded(dp: Any) -> None:
    pipeline_id = run_pipeline(
        dp, [shell("A", attemptTimeout="1 minutes", maximumRetries="0")]
    )
    task = poll(dp)
    dp.report_task_progress(taskId=task["taskId"])
    dp.set_task_status(
        taskId=task["taskId"], taskStatus="FAILED", errorId="AttemptTimeout"
    )
    attempt = fields_of(
        dp.describe_objects(pipelineId=pipeline_id, objectIds=[task["attemptId"]])[
            "pipelineObjects"
        ][0]
    )
    assert attempt["@status"] == ["FAILED"]
    assert attempt["errorId"] == ["AttemptTimeout"]


def test_attempt_timeout_on_service_side(dp: Any) -> None:
    # The runner enforces attemptTimeout in real seconds, so the service's backstop
    # never scales below it: 1 s + the 2 s floor (a scaled minute would be 0.6 s).
    pipeline_id = run_pipeline(
        dp, [shell("A", attemptTimeout="1 seconds", maximumRetries="0")]
    )
    task = poll(dp)
    deadline = time.monotonic() + 10
    attempt: dict[str, list[str]] = {}
    while time.monotonic() < deadline:  # keep the lease alive; the service must end it
        try:
            dp.report_task_progress(taskId=task["taskId"])
        except ClientError:
            attempt = fields_of(
                dp.describe_objects(
                    pipelineId=pipeline_id, objectIds=[task["attemptId"]]
                )["pipelineObjects"][0]
            )
            break
        time.sleep(0.2)
    assert attempt["@status"] == ["TIMEDOUT"]
    assert attempt["errorId"] == ["AttemptTimeout"]


def test_runner_heartbeat_and_terminate(service: LocalService, dp: Any) -> None:
    answer = dp.report_task_runner_heartbeat(
        taskrunnerId="r1", workerGroup="wg", hostname="h"
    )
    assert answer["terminate"] is False
    service.set_terminate(True, "r2")
    assert dp.report_task_runner_heartbeat(taskrunnerId="r1")["terminate"] is False
    assert dp.report_task_runner_heartbeat(taskrunnerId="r2")["terminate"] is True
    service.set_terminate(True)
    assert dp.report_task_runner_heartbeat(taskrunnerId="r1")["terminate"] is True


def test_concurrent_pollers_never_share_a_task(service: LocalService, dp: Any) -> None:
    run_pipeline(dp, [shell(f"A{i}") for i in range(40)])
    seen: list[str] = []
    lock = threading.Lock()

    def runner() -> None:
        client = make_client(service.endpoint_url)
        while True:
            task = client.poll_for_task(workerGroup="wg").get("taskObject")
            if task is None:
                return
            client.report_task_progress(taskId=task["taskId"])
            client.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
            with lock:
                seen.append(task["attemptId"])

    threads = [threading.Thread(target=runner) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(seen) == 40
    assert len(set(seen)) == 40
