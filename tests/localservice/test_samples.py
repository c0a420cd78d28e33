"""AWS's own sample definitions against ``dp-runner local``, through the AWS CLI.

``samples/`` holds eleven definitions written by AWS with their values
(samples/README.md). Each is put by the ``aws`` command (``aws datapipeline
put-pipeline-definition --pipeline-definition file://... --parameter-values-uri
file://...``: the CLI's own translation of the definition file and of the values
file is what is under test), against ``dp-runner local`` started as a process;
create, validate and activate go over the same HTTP through boto3, in process,
since the CLI adds nothing to those but a process each. Nine are accepted with no
validation error and activate, and two are refused, as AWS refuses them. The
flows run side by side (one service for all, a module-scoped fixture) to keep the
module to seconds; the tests then read each flow's outcome.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.localservice import fields_of, make_client, wait_for

translator = pytest.importorskip("awscli.customizations.datapipeline.translator")

AWS = Path(sys.executable).parent / "aws"
SAMPLES = Path(__file__).resolve().parent / "samples"
NAMES = sorted(p.name for p in (SAMPLES / "definitions").glob("*.json"))
REFUSED = {
    "json-to-dynamodb__definition.json": "references unknown object 'DefaultSchedule'",
    "kinesis__kinesis-to-s3.json": "invalid period '15 Period'",
}
ACCEPTED = [name for name in NAMES if name not in REFUSED]
# What an instance may be doing after activation: nothing here runs their
# activities (EMR, Redshift, runsOn resources), so they wait; a resource is being
# created for an activity that waits for a runner; an input data node without
# preconditions is ready at once.
WAITING = {"WAITING_FOR_RUNNER", "WAITING_ON_DEPENDENCIES"}
NOT_FAILED = {
    "Ec2Resource": WAITING | {"CREATING"},
    "EmrCluster": WAITING | {"CREATING"},
    "S3DataNode": WAITING | {"FINISHED"},
    "DynamoDBDataNode": WAITING | {"FINISHED"},
    "MySqlDataNode": WAITING | {"FINISHED"},
    "RedshiftDataNode": WAITING | {"FINISHED"},
}
SERVING = re.compile(r"serving the Data Pipeline API on (http://\S+)")

pytestmark = [
    pytest.mark.skipif(not AWS.exists(), reason="no aws command here"),
    # The hang guard, not a speed bound: the module fixture runs 11 aws processes,
    # about 8 s of CPU, which a loaded machine stretches past the suite's 60 s.
    pytest.mark.timeout(240),
]


@dataclass
class Service:
    """``dp-runner local`` as a process; its output goes to ``output``."""

    process: subprocess.Popen[bytes]
    output: Path
    endpoint_url: str = ""


@dataclass
class Outcome:
    """What the AWS CLI got for one sample."""

    pipeline_id: str
    put: dict[str, Any]
    validated: dict[str, Any]
    refusal: str | None  # activate's error code, None once activated
    instances: dict[str, list[str]] = field(default_factory=dict)


def clean_env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DP_RUNNER_"))
    }
    return env | {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture(scope="module")
def local_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("local-service")
    output = folder / "output.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "runner", "local", "--port", "0"),
                *("--time-scale", "0.01", "--state", str(folder / "state.db")),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=clean_env(),
        )
    service = Service(process, output)
    try:
        found = wait_for(lambda: SERVING.search(output.read_text()), timeout=20)
        service.endpoint_url = found.group(1)
        yield service
    finally:
        process.terminate()
        process.wait(10)


def aws(service: Service, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AWS), "datapipeline", *args, "--endpoint-url", service.endpoint_url],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def aws_json(service: Service, *args: str) -> dict[str, Any]:
    result = aws(service, *args)
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def api_shapes(name: str) -> dict[str, Any]:
    """The sample in the API's shapes, as ValidatePipelineDefinition takes it
    (the AWS CLI's own translator, which put-pipeline-definition uses)."""
    doc = json.loads((SAMPLES / "definitions" / name).read_text())
    values = json.loads((SAMPLES / "values" / name).read_text())
    return {
        "pipelineObjects": translator.definition_to_api_objects(doc),
        "parameterObjects": translator.definition_to_api_parameters(doc) or [],
        "parameterValues": translator.definition_to_parameter_values(values) or [],
    }


def try_sample(service: Service, dp: Any, name: str) -> Outcome:
    """create, put, validate, activate: the flow of the samples' READMEs."""
    pipeline_id = dp.create_pipeline(name=name, uniqueId=name)["pipelineId"]
    put = aws_json(
        service,
        *("put-pipeline-definition", "--pipeline-id", pipeline_id),
        *("--pipeline-definition", f"file://{SAMPLES / 'definitions' / name}"),
        *("--parameter-values-uri", f"file://{SAMPLES / 'values' / name}"),
    )
    validated = dp.validate_pipeline_definition(
        pipelineId=pipeline_id, **api_shapes(name)
    )
    try:
        dp.activate_pipeline(pipelineId=pipeline_id)
    except ClientError as exc:
        return Outcome(pipeline_id, put, validated, exc.response["Error"]["Code"])
    return Outcome(pipeline_id, put, validated, None)


@pytest.fixture(scope="module")
def outcomes(local_service: Service) -> dict[str, Outcome]:
    dp = make_client(local_service.endpoint_url)  # one client: its threads share it
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            name: pool.submit(try_sample, local_service, dp, name) for name in NAMES
        }
        return {name: future.result() for name, future in futures.items()}


def errors_of(answer: dict[str, Any]) -> list[str]:
    return [
        f"{item['id']}: {error}"
        for item in answer["validationErrors"]
        for error in item["errors"]
    ]


@pytest.mark.parametrize("name", ACCEPTED)
def test_sample_is_accepted_and_activates(
    name: str, outcomes: dict[str, Outcome], local_service: Service
) -> None:
    outcome = outcomes[name]
    assert outcome.put["errored"] is False, errors_of(outcome.put)
    assert outcome.validated["errored"] is False, errors_of(outcome.validated)
    unknown = [
        warning
        for item in outcome.validated["validationWarnings"]
        for warning in item["warnings"]
        if warning.startswith("Unknown field")
    ]
    assert unknown == []  # AWS wrote them: every field is one AWS knows
    assert outcome.refusal is None
    dp = make_client(local_service.endpoint_url)

    def instances() -> list[dict[str, Any]]:
        ids = dp.query_objects(pipelineId=outcome.pipeline_id, sphere="INSTANCE")["ids"]
        objects = dp.describe_objects(pipelineId=outcome.pipeline_id, objectIds=ids)
        found: list[dict[str, Any]] = objects["pipelineObjects"]
        return found

    # Activation made the first slot's instances, which wait for a runner or for
    # the instances they depend on; none failed (an expression that did not
    # evaluate fails its attempt at once), and the service is still up.
    for obj in wait_for(instances):
        fields = fields_of(obj)
        allowed = NOT_FAILED.get(fields["type"][0], WAITING)
        assert fields["@status"][0] in allowed, (obj["id"], fields)
        assert "errorId" not in fields, (obj["id"], fields)
    assert local_service.process.poll() is None


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_sample_is_refused_as_aws_refuses_it(
    name: str, outcomes: dict[str, Outcome]
) -> None:
    outcome = outcomes[name]
    for answer in (outcome.put, outcome.validated):
        assert answer["errored"] is True
        assert [e for e in errors_of(answer) if REFUSED[name] in e], errors_of(answer)
    assert outcome.refusal == "InvalidRequestException"


def test_masked_values_work_and_never_reach_the_service_output(
    outcomes: dict[str, Outcome], local_service: Service
) -> None:
    """LoadTsv's `*password` field uses an undeclared parameter; RDStoS3's uses
    `#{*myRDSPassword}`. The task object carries the value (AWS hands it to the
    runner), GetPipelineDefinition returns it (as AWS does), the service's own
    output never shows it."""
    name = "RDStoS3__RDStoS3Pipeline.json"
    password = json.loads((SAMPLES / "values" / name).read_text())["values"][
        "*myRDSPassword"
    ]
    dp = make_client(local_service.endpoint_url)
    pipeline_id = outcomes[name].pipeline_id
    defined = dp.get_pipeline_definition(pipelineId=pipeline_id)
    assert {"id": "*myRDSPassword", "stringValue": password} in defined[
        "parameterValues"
    ]
    source = dp.evaluate_expression(
        pipelineId=pipeline_id,
        objectId="SourceRDSTable",
        expression="#{*password}",
    )
    assert source["evaluatedExpression"] == password
    bad = dp.validate_pipeline_definition(
        pipelineId=pipeline_id,
        pipelineObjects=[
            {
                "id": "Default",
                "name": "Default",
                "fields": [{"key": "myX", "stringValue": "#{*myRDSPassword - 1}"}],
            }
        ],
        parameterObjects=[{"id": "*myRDSPassword", "attributes": []}],
        parameterValues=[{"id": "*myRDSPassword", "stringValue": password}],
    )
    assert bad["errored"] is True
    assert password not in json.dumps(bad)  # the message quotes the value, masked
    assert "****" in json.dumps(bad)
    output = local_service.output.read_text()
    assert "serving the Data Pipeline API" in output
    assert password not in output
