"""Validation as AWS does it, one rule at a time, accepted and refused.

The accepted definitions are the Developer Guide's own examples (DG page named on
each), completed only with what the example leaves to the reader (a `Default`
with roles and a worker group); the refused ones are the same examples with the
one thing the rule is about taken away or misspelled.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from runner.pipelinefile import definition_from_json

# What a definition gets from its Default in the DG's examples: the roles, a
# worker group, an ondemand schedule (so that no Schedule is needed).
DEFAULT = {
    "id": "Default",
    "name": "Default",
    "scheduleType": "ondemand",
    "role": "DataPipelineDefaultRole",
    "resourceRole": "DataPipelineDefaultResourceRole",
    "workerGroup": "wg",
}
Answer = dict[str, Any]


def validate(dp: Any, *objects: dict[str, Any], **doc: Any) -> Answer:
    """ValidatePipelineDefinition of a definition file's objects (Default first,
    unless one is given)."""
    given = [o for o in objects if o["id"] == "Default"]
    defn = definition_from_json(
        {"objects": [*(given or [DEFAULT]), *(o for o in objects if o not in given)]}
        | doc
    )
    pipeline_id = dp.create_pipeline(name="v", uniqueId=str(time.monotonic_ns()))[
        "pipelineId"
    ]
    answer: Answer = dp.validate_pipeline_definition(
        pipelineId=pipeline_id,
        pipelineObjects=defn.pipeline_objects,
        parameterObjects=defn.parameter_objects,
        parameterValues=defn.parameter_values,
    )
    return answer


def errors(answer: Answer) -> dict[str, list[str]]:
    return {e["id"]: e["errors"] for e in answer["validationErrors"]}


def warnings(answer: Answer) -> dict[str, list[str]]:
    return {w["id"]: w["warnings"] for w in answer["validationWarnings"]}


# ---- types -----------------------------------------------------------------------


def test_an_unknown_type_is_an_error_naming_the_closest(dp: Any) -> None:
    answer = validate(
        dp, {"id": "A", "type": "ShellComandActivity", "command": "mkdir d"}
    )
    assert answer["errored"] is True
    assert errors(answer)["A"] == [
        "Unknown object type 'ShellComandActivity'; did you mean "
        "'ShellCommandActivity'?"
    ]


def test_an_undocumented_type_is_an_error(dp: Any) -> None:
    answer = validate(dp, {"id": "P", "type": "RdsSqlPrecondition"})
    assert errors(answer)["P"][0].startswith("Unknown object type 'RdsSqlPrecondition'")


# Each type's DG example (or the smallest object its page allows), and a
# required field or group taken out of it.
REQUIRED = [
    # DG dp-object-emractivity
    (
        {
            "id": "MyEmrActivity",
            "type": "EmrActivity",
            "runsOn": {"ref": "MyEmrCluster"},
            "step": ["s3://mybucket/myPath/myStep.jar,firstArg,secondArg"],
        },
        "step",
        "Missing required field: 'step'",
    ),
    # DG dp-object-shellcommandactivity
    (
        {"id": "CreateDirectory", "type": "ShellCommandActivity", "command": "mkdir d"},
        "command",
        "ShellCommandActivity requires one of 'command' or 'scriptUri'",
    ),
    # DG dp-object-hiveactivity
    (
        {
            "id": "MyHiveActivity",
            "type": "HiveActivity",
            "hiveScript": "INSERT OVERWRITE TABLE ${output1} select * from ${input1};",
            "runsOn": {"ref": "MyEmrCluster"},
        },
        "hiveScript",
        "HiveActivity requires one of 'hiveScript' or 'scriptUri'",
    ),
    # DG dp-object-hadoopactivity
    (
        {
            "id": "MyHadoopActivity",
            "type": "HadoopActivity",
            "jarUri": "/home/hadoop/contrib/streaming/hadoop-streaming.jar",
            "runsOn": {"ref": "MyEmrCluster"},
        },
        "jarUri",
        "Missing required field: 'jarUri'",
    ),
    # DG dp-object-sqlactivity
    (
        {
            "id": "MySqlActivity",
            "type": "SqlActivity",
            "database": {"ref": "MyDatabaseID"},
            "script": "SQLQuery",
        },
        "database",
        "Missing required field: 'database'",
    ),
    # DG dp-object-redshiftcopyactivity
    (
        {
            "id": "Copy",
            "type": "RedshiftCopyActivity",
            "insertMode": "KEEP_EXISTING",
            "runsOn": {"ref": "MyEc2"},
        },
        "insertMode",
        "Missing required field: 'insertMode'",
    ),
    # DG dp-object-dynamodbdatanode
    (
        {"id": "MyDynamoDBTable", "type": "DynamoDBDataNode", "tableName": "adEvents"},
        "tableName",
        "Missing required field: 'tableName'",
    ),
    # DG dp-object-sqldatanode
    (
        {"id": "SqlTable", "type": "SqlDataNode", "table": "adEvents"},
        "table",
        "Missing required field: 'table'",
    ),
    # DG dp-dynamodbtableexists
    (
        {"id": "Ready", "type": "DynamoDBTableExists", "tableName": "t"},
        "tableName",
        "Missing required field: 'tableName'",
    ),
    # DG dp-object-schedule
    (
        {
            "id": "S",
            "type": "Schedule",
            "period": "1 day",
            "startAt": "FIRST_ACTIVATION_DATE_TIME",
        },
        "startAt",
        "Schedule requires one of 'startAt' or 'startDateTime'",
    ),
    # DG dp-object-snsalarm (role comes from Default)
    (
        {
            "id": "SuccessNotify",
            "type": "SnsAlarm",
            "topicArn": "arn:aws:sns:us-east-1:28619EXAMPLE:ExampleTopic",
            "subject": "COPY SUCCESS: #{node.@scheduledStartTime}",
            "message": "Files were copied from #{node.input} to #{node.output}.",
        },
        "topicArn",
        "Missing required field: 'topicArn'",
    ),
    # DG dp-object-jdbcdatabase
    (
        {
            "id": "MyJdbcDatabase",
            "type": "JdbcDatabase",
            "connectionString": "jdbc:redshift://hostname:portnumber/dbname",
            "jdbcDriverClass": "com.amazon.redshift.jdbc41.Driver",
            "username": "user_name",
            "*password": "my_password",
        },
        "*password",
        "Missing required field: '*password'",
    ),
    # DG dp-object-custom
    (
        {"id": "MyOutputDataType", "type": "Custom", "columnSeparator": ","},
        "columnSeparator",
        "Missing required field: 'columnSeparator'",
    ),
    # DG dp-object-property
    (
        {"id": "io", "type": "Property", "key": "io.file.buffer.size", "value": "4096"},
        "value",
        "Missing required field: 'value'",
    ),
]
SUPPORT = [
    {"id": "MyEmrCluster", "type": "EmrCluster"},
    {"id": "MyEc2", "type": "Ec2Resource"},
    {
        "id": "MyDatabaseID",
        "type": "RdsDatabase",
        "rdsInstanceId": "db",
        "username": "u",
        "*password": "a-password",
    },
]


@pytest.mark.parametrize(
    ("example", "field", "message"), REQUIRED, ids=[r[0]["type"] for r in REQUIRED]
)
def test_required_fields_and_groups_of_each_type(
    dp: Any, example: dict[str, Any], field: str, message: str
) -> None:
    accepted = validate(dp, example, *SUPPORT)
    assert accepted["errored"] is False, accepted
    assert example["id"] not in warnings(accepted)
    lacking = {k: v for k, v in example.items() if k != field}
    refused = validate(dp, lacking, *SUPPORT)
    assert refused["errored"] is True
    assert errors(refused) == {example["id"]: [message]}


def test_an_activity_needs_runs_on_or_a_worker_group(dp: Any) -> None:
    default = {k: v for k, v in DEFAULT.items() if k != "workerGroup"}
    shell = {"id": "A", "type": "ShellCommandActivity", "command": "true"}
    refused = validate(dp, default, shell)
    assert errors(refused)["A"] == [
        "ShellCommandActivity requires one of 'runsOn' or 'workerGroup'"
    ]
    on_ec2 = validate(
        dp, default, shell | {"runsOn": {"ref": "E"}}, SUPPORT[1] | {"id": "E"}
    )
    assert on_ec2["errored"] is False, on_ec2


def test_required_fields_may_come_from_default_or_a_parent(dp: Any) -> None:
    """DG dp-object-schedule's third example: the schedule comes from a parent
    object that has no type; the Ec2Resource's roles come from Default."""
    answer = validate(
        dp,
        {
            "id": "Default",
            "failureAndRerunMode": "cascade",
            "resourceRole": "DataPipelineDefaultResourceRole",
            "role": "DataPipelineDefaultRole",
            "pipelineLogUri": "s3://myLogsbucket",
            "scheduleType": "cron",
        },
        {"id": "parent1", "schedule": {"ref": "DefaultSchedule"}},
        {
            "type": "Schedule",
            "id": "DefaultSchedule",
            "occurrences": "1",
            "period": "1 Day",
            "startAt": "FIRST_ACTIVATION_DATE_TIME",
        },
        {
            "id": "A_Fresh_NewEC2Instance",
            "type": "Ec2Resource",
            "terminateAfter": "1 Hour",
        },
        {
            "id": "ShellCommandActivity_HelloWorld",
            "runsOn": {"ref": "A_Fresh_NewEC2Instance"},
            "parent": {"ref": "parent1"},
            "type": "ShellCommandActivity",
            "command": "echo 'Hello World!'",
        },
    )
    assert answer["errored"] is False, answer
    assert answer["validationWarnings"] == []


def test_an_object_without_type_that_is_no_parent_is_an_error(dp: Any) -> None:
    answer = validate(dp, {"id": "Loose", "command": "true"})
    assert errors(answer) == {"Loose": ["Missing required field: 'type'"]}


def test_a_field_the_page_forbids_is_an_error(dp: Any) -> None:
    """DG dp-object-ec2resource: runsOn and workerGroup are "not allowed on this
    object" (when set on it; Default's workerGroup is not the resource's)."""
    answer = validate(dp, SUPPORT[1] | {"workerGroup": "wg"})
    assert errors(answer) == {
        "MyEc2": ["Field 'workerGroup' is not allowed on Ec2Resource"]
    }
    assert validate(dp, SUPPORT[1])["errored"] is False


# ---- unknown fields ----------------------------------------------------------------


def test_a_misspelled_field_is_a_warning_naming_the_closest(dp: Any) -> None:
    answer = validate(
        dp,
        {
            "id": "A",
            "type": "ShellCommandActivity",
            "command": "true",
            "maximumRetires": "1",
            "myComment": "a user field",
            "my_reference": {"ref": "Default"},
        },
    )
    assert answer["errored"] is False, answer
    assert warnings(answer)["A"] == [
        "Unknown field 'maximumRetires' on ShellCommandActivity; did you mean "
        "'maximumRetries'?"
    ]


def test_fields_of_default_are_checked_against_every_type(dp: Any) -> None:
    answer = validate(
        dp, DEFAULT | {"failureAndRerunMode": "CASCADE", "pipelineLogUrl": "s3://b/l"}
    )
    assert answer["errored"] is False
    assert warnings(answer)["Default"] == [
        "Unknown field 'pipelineLogUrl'; did you mean 'pipelineLogUri'?"
    ]


def test_any_field_starting_with_my_is_a_user_field(dp: Any) -> None:
    """No warning for a field of the user's own: it starts with "my" (the DG's
    "my" and a capital letter or underscore included)."""
    answer = validate(
        dp,
        {
            "id": "A",
            "type": "ShellCommandActivity",
            "command": "true",
            "myfield": "x",
            "myOther": "y",
            "*mySecret": "z",
            "mistyped": "w",
        },
    )
    assert warnings(answer)["A"] == [
        "Unknown field 'mistyped' on ShellCommandActivity; did you mean 'type'?"
    ]


# ---- S3 locations -------------------------------------------------------------------


def test_malformed_s3_locations_are_errors_and_a_log_uri_a_warning(dp: Any) -> None:
    answer = validate(
        dp,
        DEFAULT | {"pipelineLogUri": "logs/"},
        {"id": "Dir", "type": "S3DataNode", "directoryPath": "/local/dir"},
        {"id": "File", "type": "S3DataNode", "filePath": "bucket/key.csv"},
        {"id": "Script", "type": "ShellCommandActivity", "scriptUri": "https://x/s.sh"},
    )
    assert errors(answer) == {
        "Dir": ["Field 'directoryPath': '/local/dir' is not an s3://bucket/key URI"],
        "File": ["Field 'filePath': 'bucket/key.csv' is not an s3://bucket/key URI"],
        "Script": ["Field 'scriptUri': 'https://x/s.sh' is not an s3://bucket/key URI"],
    }
    assert warnings(answer)["Default"] == [
        "Field 'pipelineLogUri': 'logs/' is not an s3://bucket/key URI"
    ]


def test_s3_locations_are_checked_as_they_evaluate(dp: Any) -> None:
    """DG dp-object-s3datanode and dp-writing-pipeline-definition examples:
    `s3://myBucket/#{@scheduledStartTime}.csv`, `s3://bucket_name`."""
    node = {"id": "In", "type": "S3DataNode", "directoryPath": "#{myIn}"}
    parameters = [{"id": "myIn", "type": "String"}]
    accepted = validate(
        dp,
        node,
        {
            "id": "OutputData",
            "type": "S3DataNode",
            "filePath": "s3://myBucket/#{@scheduledStartTime}.csv",
        },
        {"id": "S3DataInput", "type": "S3DataNode", "filePath": "s3://bucket_name"},
        parameters=parameters,
        values={"myIn": "s3://b/in/"},
    )
    assert accepted["errored"] is False, accepted
    refused = validate(dp, node, parameters=parameters, values={"myIn": "/tmp/in"})
    assert errors(refused) == {
        "In": ["Field 'directoryPath': '/tmp/in' is not an s3://bucket/key URI"]
    }


# ---- periods --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "refused"),
    [("15 minutes", False), ("1 hour", False), ("14 minutes", True), ("4 years", True)],
)
def test_a_schedule_period_is_15_minutes_to_3_years(
    dp: Any, period: str, refused: bool
) -> None:
    answer = validate(
        dp,
        DEFAULT | {"scheduleType": "cron", "schedule": {"ref": "S"}},
        {
            "id": "S",
            "type": "Schedule",
            "period": period,
            "startDateTime": "2024-01-01T00:00:00",
        },
        {"id": "A", "type": "ShellCommandActivity", "command": "true"},
    )
    assert answer["errored"] is refused, answer
    if refused:
        assert errors(answer)["S"][0].startswith(
            f"Field 'period': '{period}' is outside"
        )


@pytest.mark.parametrize(
    ("delay", "refused", "warned"),
    [
        ("2 minutes", False, False),
        ("1 hour", False, False),
        ("1 minutes", True, False),
        ("30 seconds", False, True),  # local seconds: accepted, with a warning
    ],
)
def test_retry_delay_is_at_least_2_minutes_in_aws_units(
    dp: Any, delay: str, refused: bool, warned: bool
) -> None:
    answer = validate(
        dp,
        {
            "id": "A",
            "type": "ShellCommandActivity",
            "command": "true",
            "retryDelay": delay,
        },
    )
    assert answer["errored"] is refused, answer
    assert ("A" in warnings(answer)) is warned
    if refused:
        assert errors(answer)["A"] == [
            f"Field 'retryDelay': '{delay}' is below AWS's minimum of 2 minutes "
            "(DG dp-limits)"
        ]


def test_a_schedule_is_required_of_scheduled_pipelines_only(dp: Any) -> None:
    activity = {"id": "A", "type": "ShellCommandActivity", "command": "true"}
    assert validate(dp, activity)["errored"] is False  # Default is ondemand
    cron = validate(dp, DEFAULT | {"scheduleType": "cron"}, activity)
    assert errors(cron) == {"A": ["scheduleType cron needs a 'schedule'"]}


def test_schedule_either_or_fields(dp: Any) -> None:
    """DG dp-object-schedule: startDateTime or startAt, not both; occurrences
    not with endDateTime."""
    answer = validate(
        dp,
        {
            "id": "S",
            "type": "Schedule",
            "period": "1 day",
            "startAt": "FIRST_ACTIVATION_DATE_TIME",
            "startDateTime": "2024-01-01T00:00:00",
            "occurrences": "3",
            "endDateTime": "2024-02-01T00:00:00",
        },
    )
    assert errors(answer) == {
        "S": [
            "Use either 'startDateTime' or 'startAt', not both",
            "'occurrences' cannot be used with 'endDateTime'",
        ]
    }


def test_script_argument_with_script_uri_is_accepted_with_a_warning(dp: Any) -> None:
    """DG dp-object-shellcommandactivity says scriptArgument with scriptUri
    "causes an error", but AWS's HadoopTerasort sample uses both and AWS runs
    it: accepted, with a warning that cites the Developer Guide."""
    base = {"id": "A", "type": "ShellCommandActivity", "scriptArgument": ["a", "b"]}
    assert validate(dp, base | {"command": "echo $1 $2"})["errored"] is False
    answer = validate(dp, base | {"scriptUri": "s3://b/s.sh"})
    assert answer["errored"] is False
    (warning,) = warnings(answer)["A"]
    assert "scriptArgument with scriptUri" in warning
    assert "dp-object-shellcommandactivity" in warning


def test_emr_log_uri_is_a_known_emr_cluster_field(dp: Any) -> None:
    """The Developer Guide's EMR log page names `emrLogUri` on EmrCluster."""
    answer = validate(
        dp,
        {"id": "E", "type": "EmrCluster", "emrLogUri": "s3://b/emr-logs"},
    )
    assert "E" not in warnings(answer), warnings(answer)


# ---- parameters and limits ---------------------------------------------------------


def test_a_parameter_of_an_unknown_type_is_an_error(dp: Any) -> None:
    answer = validate(
        dp,
        {"id": "A", "type": "ShellCommandActivity", "command": "echo #{myX}"},
        parameters=[{"id": "myX", "type": "Strin", "default": "x"}],
    )
    assert errors(answer) == {
        "myX": [
            "Parameter 'myX': unknown type 'Strin' (one of String, Integer, Double, "
            "AWS::S3::ObjectKey)"
        ]
    }


def test_object_limits_of_the_limits_page(dp: Any) -> None:
    """DG dp-limits: 50 fields per object, 15,360 UTF-8 bytes per object."""
    wide = {"id": "Wide", "type": "ShellCommandActivity", "command": "true"}
    wide |= {f"myField{i}": "x" for i in range(49)}  # 51 fields with type, command
    heavy = {
        "id": "Heavy",
        "type": "ShellCommandActivity",
        "command": "true",
        "myA": "é" * 4000,  # 8,000 bytes
        "myB": "é" * 4000,
    }
    answer = validate(dp, wide, heavy)
    assert errors(answer)["Wide"] == [
        "An object has at most 50 fields; this one has 51"
    ]
    assert errors(answer)["Heavy"][0].startswith(
        "An object holds at most 15360 UTF-8 bytes"
    )
    assert (
        validate(dp, {k: v for k, v in wide.items() if k != "myField0"})["errored"]
        is False
    )


def test_a_redshift_database_names_its_cluster_one_way(dp: Any) -> None:
    """DG dp-object-redshiftdatabase: clusterId or connectionString, not both."""
    database = {
        "id": "RedshiftCluster",
        "type": "RedshiftDatabase",
        "username": "user_name",
        "*password": "a-password",
        "clusterId": "mydb",
    }
    assert validate(dp, database)["errored"] is False
    both = validate(dp, database | {"connectionString": "jdbc:redshift://h:5439/d"})
    assert errors(both) == {
        "RedshiftCluster": ["Specify 'clusterId' or 'connectionString', not both"]
    }


def test_an_unknown_schedule_type_is_an_error_where_it_is_set(dp: Any) -> None:
    """The activity pages: scheduleType is cron, ondemand or timeseries (any case:
    DG dp-object-pigactivity's example writes "CRON")."""
    activity = {"id": "A", "type": "ShellCommandActivity", "command": "true"}
    assert validate(dp, activity | {"scheduleType": "ONDEMAND"})["errored"] is False
    answer = validate(dp, activity | {"scheduleType": "hourly"})
    assert errors(answer) == {"A": ["Unknown scheduleType 'hourly'"]}
