"""``dp-runner run --local``: the one-command demo, as a newcomer runs it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from runner import localflags
from tests.support.runners import REPO, run_local

EXAMPLES = REPO / "examples"


def table(stdout: str) -> dict[str, list[str]]:
    """The closing summary (JSON lines): instance id -> [status, attempts,
    error...]."""
    rows = {}
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        fields = json.loads(line)
        if fields.get("event") == "local_run_instance":
            rows[fields["instance_id"]] = [
                fields["status"],
                fields["attempts"],
                *fields.get("error", "").split(),
            ]
    return rows


def test_hello_runs_to_completion(tmp_path: Path) -> None:
    result = run_local(EXAMPLES / "hello.json", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = table(result.stdout)
    assert [row[0] for row in rows.values()] == ["FINISHED"]
    (output,) = (tmp_path / "work").glob("attempts/*/*/*/*/StdOutput")
    assert output.read_text().startswith("hello, Data Pipeline, from ")


def test_demo_needs_no_aws_credentials(tmp_path: Path) -> None:
    """A newcomer's machine: no credentials anywhere, no instance role."""
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    bare |= {
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = run_local(EXAMPLES / "hello.json", tmp_path, env=bare)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [row[0] for row in table(result.stdout).values()] == ["FINISHED"]


def test_dependencies_precondition_and_retry(tmp_path: Path) -> None:
    result = run_local(EXAMPLES / "retry-and-depend.json", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    rows = table(result.stdout)
    by_component = {iid.split("_")[0].lstrip("@"): row for iid, row in rows.items()}
    assert by_component["Transform"][:2] == ["FINISHED", "2"]
    assert all(row[0] == "FINISHED" for row in rows.values())
    loads = list((tmp_path / "work").glob("attempts/*/Load/*/*/StdOutput"))
    assert [p.read_text() for p in loads] == ["loaded sum 15\n"]


def test_unfinished_pipeline_exits_4(tmp_path: Path) -> None:
    definition = tmp_path / "fails.json"
    definition.write_text(
        json.dumps(
            {
                "objects": [
                    {
                        "id": "Default",
                        "name": "Default",
                        "scheduleType": "ondemand",
                        "workerGroup": "wg",
                    },
                    {
                        "id": "Fail",
                        "name": "Fail",
                        "type": "ShellCommandActivity",
                        "command": "exit 7",
                        "maximumRetries": "1",
                    },
                ]
            }
        )
    )
    result = run_local(definition, tmp_path)
    assert result.returncode == 4, result.stdout + result.stderr[-3000:]
    ((status, attempts, *error),) = table(result.stdout).values()
    assert (status, attempts) == ("FAILED", "2")
    assert error == ["ExitCode:7"]


def test_invalid_definition_exits_78(tmp_path: Path) -> None:
    definition = tmp_path / "bad.json"
    definition.write_text('{"objects": [{"name": "no id"}]}')
    result = run_local(definition, tmp_path)
    assert result.returncode == 78
    assert "id" in result.stderr


def greetings(tmp_path: Path) -> str:
    (output,) = (tmp_path / "work").glob("attempts/*/Greet/*/*/StdOutput")
    return output.read_text()


def test_parameter_values_after_one_flag(tmp_path: Path) -> None:
    result = run_local(
        EXAMPLES / "greeting.json",
        tmp_path,
        *("--parameter-values", "myGreeting=hi", "myNames=Ann", "myNames=Bob"),
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert greetings(tmp_path) == "hi, Ann\nhi, Bob\n"


def test_parameter_values_from_a_values_file(tmp_path: Path) -> None:
    """As the docs show it (docs/local-service.md), from the repository's root."""
    values = "file://examples/greeting-values.json"
    result = run_local(
        EXAMPLES / "greeting.json", tmp_path, "--parameter-values-uri", values
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert greetings(tmp_path) == "good morning, Ann\ngood morning, Bob\n"


def test_values_on_the_command_line_replace_the_files_values(tmp_path: Path) -> None:
    """As with the AWS CLI's put-pipeline-definition: one set of values or the other."""
    doc = json.loads((EXAMPLES / "greeting.json").read_text())
    doc["values"] = {"myGreeting": "hello", "myNames": "Cy"}
    definition = tmp_path / "greeting.json"
    definition.write_text(json.dumps(doc))
    assert run_local(definition, tmp_path / "a").returncode == 0
    assert greetings(tmp_path / "a") == "hello, Cy\n"
    result = run_local(definition, tmp_path / "b", "--parameter-values", "myNames=Di")
    assert result.returncode == 78
    assert "Parameter 'myGreeting' needs a value" in result.stderr


def test_a_value_outside_allowed_values_is_refused_naming_it(tmp_path: Path) -> None:
    result = run_local(
        EXAMPLES / "greeting.json",
        tmp_path,
        *("--parameter-values", "myGreeting=howdy", "myNames=Ann"),
    )
    assert result.returncode == 78
    assert "'myGreeting': 'howdy' is not one of its allowedValues" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["--parameter-values", "myGreeting=hi", "--parameter-values-uri", "x"],
            2,
            "--parameter-values-uri excludes --parameter-values",
        ),
        (["--parameter-values", "myGreeting"], 78, "'myGreeting' is not PARAMETER="),
        (["--parameter-values-uri", "file:///nonexistent.json"], 78, "nonexistent"),
        (["--parameter-values-uri", "s3://bucket/values.json"], 78, "only file://"),
        (["--parameter-values-uri", str(EXAMPLES / "hello.json")], 78, "hello.json"),
    ],
)
def test_bad_parameter_values_are_refused(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    result = run_local(EXAMPLES / "greeting.json", tmp_path, *args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr


SECRET = "Sup3r-s3cret"  # noqa: S105 - the masked value the test looks for
NEEDS_A_SECRET = {
    "objects": [
        {"id": "Default", "scheduleType": "ondemand", "workerGroup": "#{myGroup}"},
        {
            "id": "Check",
            "type": "ShellCommandActivity",
            # the task gets the value; it prints only whether it got the right one
            "command": "test \"$(printf %s '#{*myToken}' | md5sum | cut -c1-8)\" = "
            f"{hashlib.md5(SECRET.encode()).hexdigest()[:8]} && echo right",  # noqa: S324 - a check, not a protection
            "*password": "#{*myToken}",
        },
    ],
    "parameters": [
        {"id": "myGroup", "default": "secret-workers"},
        {"id": "*myToken", "description": "masked: never in a log"},
    ],
}


def test_masked_values_never_reach_any_log_of_run_local(tmp_path: Path) -> None:
    definition = tmp_path / "secret.json"
    definition.write_text(json.dumps(NEEDS_A_SECRET))
    result = run_local(
        definition,
        tmp_path,
        *("--log-level", "debug", "--parameter-values", f"*myToken={SECRET}"),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (output,) = (tmp_path / "work").glob("attempts/*/Check/*/*/StdOutput")
    assert output.read_text() == "right\n"
    # debug level: botocore's own DEBUG lines (request and answer bodies, headers)
    # never reach the output; the runner's do
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert any(line["level"] == "debug" for line in lines)
    noisy = ("botocore", "boto3", "urllib3", "s3transfer")
    assert not [
        line
        for line in lines
        if line["level"] == "debug" and str(line.get("logger")).startswith(noisy)
    ]
    logs = [*(tmp_path / "work").rglob("*.log"), *(tmp_path / "work").rglob("*.log.*")]
    assert any(path.name == "TaskRunner.log" for path in logs)
    for text in [result.stdout, result.stderr, *(p.read_text() for p in logs)]:
        assert SECRET not in text


@pytest.mark.parametrize(
    ("args", "spread"),
    [
        (
            ["--local", "f", "--parameter-values", "a=1", "b=2", "--region", "r"],
            [
                *("--local", "f", "--parameter-values", "a=1"),
                *("--parameter-values", "b=2", "--region", "r"),
            ],
        ),
        (
            ["--parameter-values=a=1", "b=2"],
            ["--parameter-values=a=1", "--parameter-values", "b=2"],
        ),
        (
            ["--parameter-values", "a=1", "--", "b=2"],
            ["--parameter-values", "a=1", "--", "b=2"],
        ),
        (["--local", "f", "b=2"], ["--local", "f", "b=2"]),
    ],
)
def test_several_values_after_one_flag_become_one_flag_each(
    args: list[str], spread: list[str]
) -> None:
    assert localflags.spread_run_values(args) == spread


def test_an_8_s_command_under_terminate_after_10_minutes_finishes(
    tmp_path: Path,
) -> None:
    """At the default clock factor (x0.01), "10 Minutes" scaled would be 6 s:
    terminateAfter bounds real work, so it is never scaled."""
    definition = tmp_path / "long.json"
    definition.write_text(
        json.dumps(
            {
                "objects": [
                    {"id": "Default", "scheduleType": "ondemand"},
                    {
                        "id": "Box",
                        "type": "Ec2Resource",
                        "terminateAfter": "10 Minutes",
                        "role": "DataPipelineDefaultRole",
                        "resourceRole": "DataPipelineDefaultResourceRole",
                    },
                    {
                        "id": "Work",
                        "type": "ShellCommandActivity",
                        "runsOn": {"ref": "Box"},
                        "command": "sleep 8; echo done",
                    },
                ]
            }
        )
    )
    result = run_local(definition, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = table(result.stdout)
    assert {row[0] for row in rows.values()} == {"FINISHED"}, rows
    (output,) = (tmp_path / "work").glob("attempts/*/Work/*/*/StdOutput")
    assert output.read_text() == "done\n"
