"""Every malformed body is a 400 in AWS's error shape, never a 500: huge numbers,
nulls in place of lists or refs, bad spheres and statuses, and a fuzz run of
every operation with hostile members."""

from __future__ import annotations

import http.client
import json
import logging
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.localservice import LocalService
from runner.localservice.protocol import service_model
from tests.support.localservice import make_client, run_pipeline, shell, wait_for

HUGE = "__HUGE_NUMBER__"
HUGE_DIGITS = "9" * 5000


def post(service: LocalService, operation: str, body: Any) -> tuple[int, Any]:
    """POST a raw JSON body (HUGE stands for a 5000-digit number)."""
    text = json.dumps(body).replace(f'"{HUGE}"', HUGE_DIGITS)
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    try:
        connection.request(
            "POST",
            "/",
            body=text.encode(),
            headers={
                "X-Amz-Target": f"DataPipeline.{operation}",
                "Content-Type": "application/x-amz-json-1.1",
            },
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


@pytest.fixture(scope="module")
def hostile_service() -> Iterator[tuple[LocalService, str, list[str]]]:
    """A service with one activated pipeline: (service, its id, instance ids)."""
    with LocalService(time_scale=0.01, poll_hold_s=0.0) as svc:
        dp = make_client(svc.endpoint_url)
        pipeline_id = run_pipeline(dp, [shell("A"), shell("B", ref_dependsOn="A")])
        ids: list[str] = wait_for(
            lambda: dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE")["ids"]
        )
        yield svc, pipeline_id, ids


def aws_error(status: int, answer: Any) -> None:
    assert status == 400, (status, answer)
    assert set(answer) == {"__type", "message"}, answer


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("ListPipelines", {"marker": HUGE}),
        ("ActivatePipeline", {"pipelineId": "df-X", "startTimestamp": HUGE}),
        ("ActivatePipeline", {"pipelineId": "df-X", "startTimestamp": 1e308}),
        ("QueryObjects", {"pipelineId": "df-X", "sphere": "INSTANCE", "limit": HUGE}),
    ],
)
def test_a_huge_number_is_a_400(
    hostile_service: tuple[LocalService, str, list[str]],
    operation: str,
    body: dict[str, Any],
) -> None:
    service, pipeline_id, _ = hostile_service
    if body.get("pipelineId") == "df-X":
        body = body | {"pipelineId": pipeline_id}
    aws_error(*post(service, operation, body))


def test_nulls_in_place_of_lists_and_refs_are_never_a_500(
    hostile_service: tuple[LocalService, str, list[str]],
) -> None:
    service, pipeline_id, _ = hostile_service
    objects = [
        {"id": "Default", "name": "Default", "fields": []},
        {
            "id": "A",
            "name": "A",
            "fields": [
                {"key": "type", "stringValue": "ShellCommandActivity"},
                {"key": "command", "stringValue": "true"},
                {"key": "dependsOn", "refValue": None},
            ],
        },
    ]
    for operation, body in [
        ("ActivatePipeline", {"pipelineId": pipeline_id, "parameterValues": None}),
        (
            "PutPipelineDefinition",
            {"pipelineId": pipeline_id, "pipelineObjects": objects},
        ),
        (
            "PutPipelineDefinition",
            {
                "pipelineId": pipeline_id,
                "pipelineObjects": objects[:1],
                "parameterObjects": [{"id": "myX", "attributes": None}],
            },
        ),
        ("DescribeObjects", {"pipelineId": pipeline_id, "objectIds": [None]}),
        ("PutPipelineDefinition", {"pipelineId": pipeline_id, "pipelineObjects": None}),
    ]:
        status, answer = post(service, operation, body)
        assert status < 500, (operation, body, answer)
        if status != 200:
            aws_error(status, answer)


def test_a_bad_sphere_and_a_bad_status_are_400s_naming_them(
    hostile_service: tuple[LocalService, str, list[str]],
) -> None:
    service, pipeline_id, ids = hostile_service
    status, answer = post(
        service, "QueryObjects", {"pipelineId": pipeline_id, "sphere": "BOGUS"}
    )
    aws_error(status, answer)
    assert "sphere 'BOGUS'" in answer["message"]
    for object_ids in (["A"], ids[:1]):
        status, answer = post(
            service,
            "SetStatus",
            {"pipelineId": pipeline_id, "objectIds": object_ids, "status": "BOGUS"},
        )
        aws_error(status, answer)
        assert "status 'BOGUS' is not one of" in answer["message"]


HOSTILE: list[Any] = [
    None,
    HUGE,
    -1,
    0,
    2**63,
    1e308,
    math.inf,
    math.nan,
    True,
    "",
    "\x00",
    "#{" * 40,
    "9" * 5000,
    "df-NOPE",
    [],
    [None],
    {},
    {"key": None},
]


def shape_values(shape: Any, known: dict[str, list[str]], depth: int = 0) -> Any:
    """A strategy for a member of `shape`: a plausible value or a hostile one."""
    hostile = st.sampled_from(HOSTILE)
    name = getattr(shape, "name", "")
    if depth > 4:
        return hostile
    kind = shape.type_name
    if kind == "structure":
        members = {
            key: shape_values(member, known, depth + 1)
            for key, member in shape.members.items()
        }
        plausible: Any = st.fixed_dictionaries({}, optional=members)
    elif kind == "list":
        plausible = st.lists(shape_values(shape.member, known, depth + 1), max_size=3)
    elif kind == "map":
        plausible = st.dictionaries(
            st.text(max_size=5), shape_values(shape.value, known, depth + 1), max_size=2
        )
    elif kind == "string":
        choices = known.get(name, []) + shape.metadata.get("enum", [])
        plausible = st.one_of(st.text(max_size=20), st.sampled_from(choices or [""]))
    elif kind in {"integer", "long"}:
        plausible = st.integers(min_value=-(2**70), max_value=2**70)
    elif kind == "timestamp":
        plausible = st.floats(allow_nan=True, allow_infinity=True)
    else:
        plausible = st.booleans()
    return st.one_of(plausible, plausible, hostile)


def known_values(pipeline_id: str, ids: list[str]) -> dict[str, list[str]]:
    """Values that reach past the lookups: shape name -> real values."""
    return {
        "id": [pipeline_id, "A", "B", *ids],
        "fieldNameString": ["type", "command", "dependsOn", "@status"],
        "string": [pipeline_id, "A", *ids, "#{@pipelineId}", "#{format(@x,'Y')}"],
    }


@pytest.mark.parametrize("operation", sorted(service_model().operation_names))
def test_fuzz_every_operation_gets_no_5xx(
    hostile_service: tuple[LocalService, str, list[str]], operation: str
) -> None:
    service, pipeline_id, ids = hostile_service
    shape = service_model().operation_model(operation).input_shape
    known = known_values(pipeline_id, ids)
    bodies = shape_values(shape, known) if shape is not None else st.just({})

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=bodies)
    def answered_below_500(body: Any) -> None:
        status, answer = post(service, operation, body)
        assert status < 500, (operation, body, answer)

    answered_below_500()


def test_a_bug_is_a_500_in_one_log_line_with_the_traceback_only_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug in an operation answers 500 as AWS would, and says so in one line
    before the first status line of ``run --local``: the traceback (whose locals
    may hold values) only at debug."""

    def broken(answer: Any) -> Any:
        raise RuntimeError("the bug")

    with LocalService(time_scale=0.01, poll_hold_s=0.0) as svc:
        svc.faults.add("ListPipelines", rewrite=broken)
        with caplog.at_level(logging.DEBUG, logger="runner.localservice.server"):
            status, answer = post(svc, "ListPipelines", {})
    assert status == 500
    assert answer["__type"].endswith("InternalServiceError"), answer
    failed = [r for r in caplog.records if "operation_failed" in r.getMessage()]
    errors = [r for r in failed if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is None
    assert "RuntimeError: the bug" in errors[0].getMessage()
    assert "\n" not in errors[0].getMessage()
    assert [r for r in failed if r.levelno == logging.DEBUG and r.exc_info]
