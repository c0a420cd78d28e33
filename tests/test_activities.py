"""Activities: tasks built by hand in the PollForTask wire shape, turned into plans.

The produced argv is run for real where it matters (arguments arriving intact), so
these tests prove behaviour rather than the shape of a list.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import structlog

from runner.activities import (
    ActivityContext,
    Plan,
    Process,
    ShellCommandActivity,
    ShellCommandPrecondition,
    activity_for,
    attempt_timeout_s,
    component_ids,
    parse_period_s,
    plan,
    report_progress_timeout_s,
    safe_path_part,
    task_variables,
)
from runner.activities.ids import MAX_PART_BYTES
from runner.attempt import AttemptPaths
from runner.aws.s3 import S3
from runner.errors import ActivityError, SpawnError
from runner.taskmodel import Task
from tests.support.tasks import (
    ATTEMPT_ID,
    COMPONENT_ID,
    INSTANCE_ID,
    PIPELINE_ID,
    Fields,
    make_task,
)


def shell_task(command: str, *args: str, **kw: Any) -> Task:
    fields = [("type", "ShellCommandActivity"), ("command", command)]
    fields += [("scriptArgument", arg) for arg in args]
    return make_task(fields, **kw)


def process(made: Plan) -> Process:
    assert isinstance(made.main, Process)
    return made.main


def argv(made: Plan) -> tuple[str, ...]:
    return tuple(process(made).argv())


def run(made: Plan, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **process(made).env}
    return subprocess.run(
        argv(made), cwd=cwd, env=env, capture_output=True, timeout=10, check=False
    )


def context(tmp_path: Path, region: str | None = None) -> ActivityContext:
    paths = AttemptPaths(tmp_path / "attempt")
    paths.workdir.mkdir(parents=True)
    s3 = S3(region=region, log=structlog.get_logger())  # never called by planning
    return ActivityContext(paths=paths, s3=s3, region=region)


@pytest.fixture
def ctx(tmp_path: Path) -> ActivityContext:
    return context(tmp_path, "eu-west-1")


def error_of(task: Task, ctx: ActivityContext) -> ActivityError:
    with pytest.raises(ActivityError) as info:
        plan(task, ctx)
    return info.value


# --- ShellCommandActivity ---------------------------------------------------------


def test_command_is_written_to_a_private_script_run_by_bash(
    ctx: ActivityContext,
) -> None:
    made = plan(shell_task("echo hello\necho 'it''s' \"done\""), ctx)

    script = ctx.paths.workdir / "command.sh"
    assert argv(made) == (shutil.which("bash") or "/bin/sh", str(script))
    assert script.read_text() == "echo hello\necho 'it''s' \"done\"\n"
    assert stat.S_IMODE(script.stat().st_mode) == 0o700
    assert made.precondition is False
    assert made.timeout_s is None
    assert (made.before, made.after_success, made.deliver) == ((), (), ())
    result = run(made, ctx.paths.workdir)
    assert result.returncode == 0
    assert result.stdout == b"hello\nits done\n"


def test_script_arguments_arrive_verbatim_as_argv(ctx: ActivityContext) -> None:
    args = ["two words", 'it\'s "quoted"', "$(rm -rf ~)", "`id`", "*", "", "a\nb"]
    printer = 'for a in "$@"; do printf "%s\\0" "$a"; done'

    made = plan(shell_task(printer, *args), ctx)

    assert argv(made)[2:] == tuple(args)
    script_text = (ctx.paths.workdir / "command.sh").read_text()
    assert "rm -rf" not in script_text
    assert "two words" not in script_text
    result = run(made, ctx.paths.workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(b"\0")[:-1] == [arg.encode() for arg in args]


def test_environment_has_task_variables_and_region(ctx: ActivityContext) -> None:
    task = shell_task(
        'printf "%s|%s|%s" "$DP_ATTEMPT_ID" "$DP_COMPONENT_ID" "$AWS_REGION"',
        extra={"Secret": [("*password", "hunter2")]},
    )

    made = plan(task, ctx)

    assert process(made).env == {
        "DP_PIPELINE_ID": PIPELINE_ID,
        "DP_COMPONENT_ID": COMPONENT_ID,
        "DP_INSTANCE_ID": INSTANCE_ID,
        "DP_ATTEMPT_ID": ATTEMPT_ID,
        "DP_SCHEDULED_START_TIME": "2012-12-12T00:00:00",
        "DP_SCHEDULED_END_TIME": "2012-12-13T00:00:00",
        "DP_WORKER_GROUP": "wg-12345",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    assert not any(name.startswith("DP_RUNNER_") for name in process(made).env)
    assert "hunter2" not in process(made).env.values()
    result = run(made, ctx.paths.workdir)
    assert result.stdout.decode() == f"{ATTEMPT_ID}|{COMPONENT_ID}|eu-west-1"


def test_no_region_means_no_region_variables(tmp_path: Path) -> None:
    made = plan(shell_task("true"), context(tmp_path))

    assert "AWS_REGION" not in process(made).env
    assert "AWS_DEFAULT_REGION" not in process(made).env


def test_fields_are_inherited_from_component_parent_and_default(
    ctx: ActivityContext,
) -> None:
    task = make_task(
        [],
        component=[("type", "ShellCommandActivity"), ("parent", "ref", "Shared")],
        default=[("attemptTimeout", "2 hours"), ("command", "echo from-default")],
        extra={"Shared": [("scriptArgument", "x"), ("scriptArgument", "y")]},
    )

    made = plan(task, ctx)

    assert argv(made)[2:] == ("x", "y")
    assert made.timeout_s == 7200.0
    assert (ctx.paths.workdir / "command.sh").read_text() == "echo from-default\n"


def test_prepare_again_replaces_the_script(ctx: ActivityContext) -> None:
    plan(shell_task("echo a much longer first command"), ctx)
    plan(shell_task("echo b"), ctx)

    assert (ctx.paths.workdir / "command.sh").read_text() == "echo b\n"


def test_a_symlink_planted_as_the_script_is_not_followed(
    ctx: ActivityContext, tmp_path: Path
) -> None:
    target = tmp_path / "victim"
    target.write_text("keep me")
    (ctx.paths.workdir / "command.sh").symlink_to(target)

    with pytest.raises(SpawnError, match=r"command\.sh"):
        plan(shell_task("echo owned"), ctx)
    assert target.read_text() == "keep me"


def test_script_uri_is_fetched_by_a_step_before_the_process(
    ctx: ActivityContext,
) -> None:
    task = make_task(
        [
            ("type", "ShellCommandPrecondition"),
            ("scriptUri", "s3://bucket/scripts/check.sh"),
            ("attemptTimeout", "10 minutes"),
        ]
    )

    made = plan(task, ctx)

    assert [step.name for step in made.before] == ["fetch_script"]
    assert made.timeout_s == 600.0
    assert made.precondition is True
    assert process(made).env["DP_ATTEMPT_ID"] == ATTEMPT_ID
    assert list(ctx.paths.workdir.iterdir()) == []  # nothing fetched while planning
    fetched = ctx.paths.workdir / "check.sh"  # what the step writes, then runs
    fetched.write_text("#!/bin/sh\nexit 0\n")
    assert argv(made) == (str(fetched),)
    fetched.write_text("exit 0\n")
    assert argv(made) == (shutil.which("bash") or "/bin/sh", str(fetched))


def test_precondition_runs_the_same_way_and_fails_as_false(
    ctx: ActivityContext,
) -> None:
    task = make_task([("type", "ShellCommandPrecondition"), ("command", "exit 3")])

    made = plan(task, ctx)

    assert isinstance(activity_for(task), ShellCommandPrecondition)
    assert made.precondition is True
    assert run(made, ctx.paths.workdir).returncode == 3


def test_activity_type_is_chosen_by_type_field() -> None:
    assert isinstance(activity_for(shell_task("true")), ShellCommandActivity)
    assert not isinstance(activity_for(shell_task("true")), ShellCommandPrecondition)


# --- errors ---------------------------------------------------------------------


def test_unknown_type_is_unsupported_activity(ctx: ActivityContext) -> None:
    error = error_of(make_task([("type", "HiveActivity")]), ctx)

    assert error.error_id == "UnsupportedActivity"
    assert "'HiveActivity' is not supported by dp-runner" in error.message
    assert "ShellCommandActivity, ShellCommandPrecondition" in error.message


@pytest.mark.parametrize(
    ("fields", "error_id", "words"),
    [
        ([("command", "true")], "MissingField", "'type'"),
        ([("type", "ref", "Default")], "InvalidField", "'type'"),
        (
            [("type", "ShellCommandActivity")],
            "MissingField",
            "'command' or 'scriptUri'",
        ),
        (
            [("type", "ShellCommandActivity"), ("command", "  \n")],
            "MissingField",
            "'command' or 'scriptUri'",
        ),
        (
            [
                ("type", "ShellCommandActivity"),
                ("command", "true"),
                ("scriptUri", "s3://b/k.sh"),
            ],
            "InvalidField",
            "not both",
        ),
        (
            [("type", "ShellCommandActivity"), ("command", "ref", "Default")],
            "InvalidField",
            "'command'",
        ),
        (
            [
                ("type", "ShellCommandActivity"),
                ("command", "true"),
                ("scriptArgument", "ok"),
                ("scriptArgument", "ref", "Default"),
            ],
            "InvalidField",
            "scriptArgument #2",
        ),
        (
            [
                ("type", "ShellCommandActivity"),
                ("command", "true"),
                ("scriptArgument", "a\0b"),
            ],
            "InvalidField",
            "NUL",
        ),
        (
            [
                ("type", "ShellCommandActivity"),
                ("command", "true"),
                ("attemptTimeout", "soon"),
            ],
            "InvalidField",
            "'attemptTimeout' has an invalid value 'soon'",
        ),
    ],
)
def test_bad_definitions_fail_with_a_named_error(
    ctx: ActivityContext, fields: Fields, error_id: str, words: str
) -> None:
    error = error_of(make_task(fields), ctx)

    assert error.error_id == error_id
    assert words in error.message
    assert not (ctx.paths.workdir / "command.sh").exists()


def test_task_without_attempt_object_fails(ctx: ActivityContext) -> None:
    task = Task.from_wire({"taskId": "t", "pipelineId": "df-1", "attemptId": "@gone"})

    assert error_of(task, ctx).error_id == "MissingAttemptObject"


# --- periods and timeouts --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2 hours", 7200),
        ("1 Hour", 3600),
        ("30 minutes", 1800),
        ("1 minute", 60),
        ("1 day", 86400),
        ("3 Days", 3 * 86400),
        ("90 seconds", 90),
        ("1 second", 1),
        ("2 weeks", 14 * 86400),
        ("1 month", 30 * 86400),
        ("1 year", 365 * 86400),
        ("  15   MINUTES ", 900),
        ("3hours", 10800),
    ],
)
def test_periods_parse(text: str, seconds: float) -> None:
    assert parse_period_s(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", "hours", "2", "-1 hours", "0 minutes", "1.5 hours", "2 fortnights",
     "2 hourss", "1 h", "2 hours 30 minutes", "\uff11 hour"],
)  # fmt: skip
def test_malformed_periods_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"period|unit|positive"):
        parse_period_s(text)


def test_timeouts_come_from_their_fields() -> None:
    task = make_task(
        [("attemptTimeout", "20 minutes")],
        default=[("reportProgressTimeout", "1 hour")],
    )

    assert attempt_timeout_s(task) == 1200.0
    assert report_progress_timeout_s(task) == 3600.0
    assert attempt_timeout_s(make_task([])) is None
    assert report_progress_timeout_s(make_task([])) is None


def test_malformed_report_progress_timeout_names_field_and_value() -> None:
    task = make_task([("reportProgressTimeout", "5 parsecs")])

    with pytest.raises(ActivityError) as info:
        report_progress_timeout_s(task)
    assert info.value.error_id == "InvalidField"
    assert "'reportProgressTimeout'" in info.value.message
    assert "'5 parsecs'" in info.value.message


# --- ids and folder names ----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["../..", "..", ".", "/", "/etc/passwd", "a/../../b", "", "a\0b", "x\ny", "\\..\\",
     ".hidden", "…" * 200, "@" + "A" * 2000],
)  # fmt: skip
def test_safe_path_part_never_escapes(text: str, tmp_path: Path) -> None:
    part = safe_path_part(text)

    assert part
    assert "/" not in part
    assert "\\" not in part
    assert ".." not in part
    assert not part.startswith(".")
    assert part.isprintable()
    assert len(part.encode()) <= MAX_PART_BYTES
    assert (tmp_path / part).resolve().parent == tmp_path.resolve()


def test_safe_ids_keep_their_spelling() -> None:
    for text in (ATTEMPT_ID, INSTANCE_ID, "My Activity", "df-0937003356ZJEXAMPLE"):
        assert safe_path_part(text) == text


def test_distinct_ids_stay_distinct() -> None:
    long_a, long_b = "A" * 500 + "1", "A" * 500 + "2"

    assert safe_path_part("a/b") != safe_path_part("a_b")
    assert safe_path_part(long_a) != safe_path_part(long_b)
    assert safe_path_part(long_a) == safe_path_part(long_a)


def test_component_ids_come_from_parent_refs() -> None:
    assert component_ids(make_task([])) == (COMPONENT_ID, INSTANCE_ID, ATTEMPT_ID)


def test_component_ids_fall_back_to_the_attempt_id() -> None:
    task = Task.from_wire(
        {
            "taskId": "t",
            "pipelineId": PIPELINE_ID,
            "attemptId": ATTEMPT_ID,
            "objects": {ATTEMPT_ID: {"id": ATTEMPT_ID, "name": "a", "fields": []}},
        }
    )

    assert component_ids(task) == (COMPONENT_ID, INSTANCE_ID, ATTEMPT_ID)
    assert task_variables(task)["DP_COMPONENT_ID"] == COMPONENT_ID


def test_hostile_ids_become_safe_folder_names(tmp_path: Path) -> None:
    attempt_id = "../../../tmp/x"
    fields = [
        {"key": "@componentParent", "refValue": "../../etc"},
        {"key": "@instanceParent", "refValue": "/"},
    ]
    task = Task.from_wire(
        {
            "taskId": "t",
            "pipelineId": PIPELINE_ID,
            "attemptId": attempt_id,
            "objects": {attempt_id: {"id": attempt_id, "name": "a", "fields": fields}},
        }
    )

    parts = component_ids(task)

    assert parts[0] != "../../etc"
    assert parts[1] != "/"
    folder = tmp_path.joinpath(*parts).resolve()
    assert folder.is_relative_to(tmp_path.resolve())
    assert len(folder.relative_to(tmp_path.resolve()).parts) == 3


def test_python_is_not_required_to_run_the_script(ctx: ActivityContext) -> None:
    """The argv runs on its own: no interpreter of ours sits in between."""
    made = plan(shell_task("echo $0"), ctx)

    assert sys.executable not in argv(made)
    assert run(made, ctx.paths.workdir).stdout.decode().strip().endswith("command.sh")
